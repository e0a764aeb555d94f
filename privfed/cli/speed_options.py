"""The speed options ``privfed train`` and ``privfed compare`` share.

Both change only how non-private training runs on the hardware, never what is trained
(DP-SGD steps refuse them); ``bench/precision.py`` measures what each is worth per
architecture and image size, which is why neither is on by default.
"""

from __future__ import annotations

from typing import Optional

import typer

PRECISION_HELP = ("fp32 (default) or bf16: forward pass of non-private training under bfloat16 autocast "
                  "(weights, optimiser and loss stay fp32). Faster for 'simple' on GPUs and bf16-capable CPUs; "
                  "slower for MobileNetV3 on CPU (bench/precision.py).")
CHANNELS_LAST_HELP = ("NHWC activations and conv weights in non-private training: faster convolutions at 224x224 "
                      "and for MobileNetV3 (bench/precision.py); default off.")


def precision_option() -> Optional[str]:
    return typer.Option(None, "--precision", help=PRECISION_HELP)


def channels_last_option() -> Optional[bool]:
    return typer.Option(None, "--channels-last/--no-channels-last", help=CHANNELS_LAST_HELP)
