"""Suite-wide settings.

Tiny models gain nothing from intra-op threads, and on a 2-core machine a second thread
only oversubscribes the CPU (measured here: 20x slower steps under load), so the suite and
the CLI subprocesses it starts use one thread each.
"""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import torch  # noqa: E402

torch.set_num_threads(1)
