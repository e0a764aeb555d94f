"""What --precision bf16 and --channels-last are worth: training samples per second against fp32.

Each architecture and size trains the same freshly initialised model on the same images
through the engine's own trainer (``train_local``), once per setting, repeats alternating
so machine load falls on every setting alike; the median per setting is divided by the
fp32 default's. Also prints each setting's last-epoch training loss, so a faster setting
that trains worse shows. On CUDA the figures are the GPU's; on CPU bf16 needs AVX512-BF16
or AMX to pay.

    .venv/bin/python bench/precision.py [--sizes 64,224] [--archs simple,mobilenet_v3_small] [--device cpu]

``--eval`` instead times evaluation (``predict_scores``' forward passes, batch 256) with
default-layout inputs against channels-last inputs, the layout evaluation uses.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch

from privfed.devices import resolve_device
from privfed.federated.client import train_local
from privfed.federated.evaluation import as_float
from privfed.federated.seeding import generator, seeded
from privfed.federated.strategy import LocalSettings
from privfed.models import build_model

SETTINGS = {"fp32": ("fp32", False), "bf16": ("bf16", False), "channels-last": ("fp32", True),
            "bf16+channels-last": ("bf16", True)}


def real_images(size: int, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    from privfed.data import open_dataset

    dataset = open_dataset("embedded", size)
    order = torch.randperm(len(dataset.ids), generator=torch.Generator().manual_seed(0))[:count]
    ids = [dataset.ids[i] for i in order.tolist()]  # both classes (the file is sorted by class)
    images, labels = dataset.load(ids)
    return torch.as_tensor(images), torch.as_tensor(labels, dtype=torch.long)


def one_run(arch: str, size: int, images, labels, precision: str, channels_last: bool, device) -> tuple[float, float]:
    with seeded(0, "bench", arch, size):
        model = build_model(arch, 2, size, 1024)
    settings = LocalSettings(epochs=1, batch_size=32, lr=1e-3, optimizer="adam", precision=precision,
                             channels_last=channels_last)
    if device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    stats = train_local(model, images, labels, settings, generator(0, "bench"), device)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return len(labels) / (time.perf_counter() - started), stats.train_loss


@torch.no_grad()
def eval_rate(model, images: torch.Tensor, device, channels_last: bool) -> float:
    model.eval()
    if device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    for start in range(0, len(images), 256):
        batch = as_float(images[start : start + 256].to(device))
        if channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last)
        torch.softmax(model(batch), dim=1).cpu()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return len(images) / (time.perf_counter() - started)


def bench_eval(args, device) -> None:
    print(f"{'arch':<20}{'size':>5}{'default /s':>12}{'NHWC /s':>10}{'speed-up':>10}")
    for size in (int(s) for s in args.sizes.split(",")):
        images, _ = real_images(size, args.samples)
        for arch in args.archs.split(","):
            with seeded(0, "bench", arch, size):
                model = build_model(arch, 2, size, 1024).to(device)
            eval_rate(model, images[:32], device, False)
            rates = {False: [], True: []}
            for _ in range(args.repeats):
                for layout in (False, True):
                    rates[layout].append(eval_rate(model, images, device, layout))
            plain, nhwc = statistics.median(rates[False]), statistics.median(rates[True])
            print(f"{arch:<20}{size:>5}{plain:>12.0f}{nhwc:>10.0f}{nhwc / plain:>9.2f}x", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="64,224")
    parser.add_argument("--archs", default="simple,mobilenet_v3_large,mobilenet_v3_small,densenet121")
    parser.add_argument("--samples", type=int, default=128, help="images per timed epoch (64 at 224 on CPU is plenty)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--eval", action="store_true", help="time evaluation's layouts instead of training settings")
    args = parser.parse_args()
    device = resolve_device(args.device)
    if args.eval:
        return bench_eval(args, device)
    print(f"device {device}; {torch.get_num_threads()} threads; batch 32, Adam; median of {args.repeats} runs")
    print(f"{'arch':<20}{'size':>5}  " + "".join(f"{name:>20}" for name in SETTINGS))
    for size in (int(s) for s in args.sizes.split(",")):
        images, labels = real_images(size, args.samples)
        for arch in args.archs.split(","):
            one_run(arch, size, images[:32], labels[:32], "fp32", False, device)  # warm-up (allocator, kernels)
            rates: dict[str, list[float]] = {name: [] for name in SETTINGS}
            losses: dict[str, float] = {}
            for _ in range(args.repeats):
                for name, (precision, channels_last) in SETTINGS.items():
                    rate, loss = one_run(arch, size, images, labels, precision, channels_last, device)
                    rates[name].append(rate)
                    losses[name] = loss
            base = statistics.median(rates["fp32"])
            cells = [f"{statistics.median(r) / base:>6.2f}x {statistics.median(r):>5.0f}/s L{losses[n]:.2f}"
                     for n, r in rates.items()]
            print(f"{arch:<20}{size:>5}  " + "".join(f"{c:>20}" for c in cells), flush=True)
    print("cells: speed relative to fp32, samples per second, training loss of the epoch")


if __name__ == "__main__":
    sys.exit(main())
