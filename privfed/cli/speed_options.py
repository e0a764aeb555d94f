"""The speed options ``privfed train`` and ``privfed compare`` share.

None changes what is trained. Precision and layout change how non-private training runs on
the hardware (DP-SGD steps refuse them; ``bench/precision.py`` measures what each is worth
per architecture and image size, which is why bf16 is opt-in while channels-last, faster
everywhere, is the default); ``--eval-every`` changes only how often the models are
measured on the test set.
"""

from __future__ import annotations

from typing import Optional

import typer

PRECISION_HELP = ("fp32 (default) or bf16: forward pass of non-private training under bfloat16 autocast "
                  "(weights, optimiser and loss stay fp32). Faster for 'simple' on GPUs and bf16-capable CPUs; "
                  "slower for MobileNetV3 on CPU (bench/precision.py).")
CHANNELS_LAST_HELP = ("NHWC activations and conv weights in non-private training: 1.1-1.7x faster on CPU for every "
                      "architecture (bench/precision.py); default on without DP, off (and refused) under --dp-level sample.")
EVAL_EVERY_HELP = ("Measure the models on the test set every N rounds and always in the last (default 1: every round). "
                   "Training is the same; skipped rounds have no test figures. At 224x224 on CPU the test evaluation "
                   "of five models takes about as long as a round's training.")


def precision_option() -> Optional[str]:
    return typer.Option(None, "--precision", help=PRECISION_HELP)


def channels_last_option() -> Optional[bool]:
    return typer.Option(None, "--channels-last/--no-channels-last", help=CHANNELS_LAST_HELP)


def eval_every_option() -> Optional[int]:
    return typer.Option(None, "--eval-every", min=1, help=EVAL_EVERY_HELP)
