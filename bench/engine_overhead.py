"""Overhead of the engine's client trainer over a bare PyTorch loop (goal: ratio <= 1.05).

Both train the same freshly initialised model on the same in-memory data, in the same
order, for the same number of steps, in the same process; runs alternate so machine load
affects both alike, and the median of the repeats is compared. The bare loop keeps the
usual ``loss.item()`` per step (every training loop logs its loss).

    .venv/bin/python bench/engine_overhead.py [--image-size 64] [--samples 512] [--repeats 5] [--device cpu]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from privfed.federated.client import train_local
from privfed.federated.seeding import generator
from privfed.federated.strategy import LocalSettings
from privfed.models import build_model


def bare_loop(model, images, labels, settings, gen, device):
    optimizer = torch.optim.SGD(model.parameters(), lr=settings.lr, momentum=settings.momentum)
    model.train()
    total = 0.0
    for _ in range(settings.epochs):
        order = torch.randperm(len(labels), generator=gen)
        for start in range(0, len(labels), settings.batch_size):
            idx = order[start : start + settings.batch_size]
            x, y = images[idx].to(device), labels[idx].to(device)
            optimizer.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()
            total += loss.item()
    return total


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="simple")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--samples", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--shared-width", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    g = torch.Generator().manual_seed(0)
    images = torch.rand(args.samples, 3, args.image_size, args.image_size, generator=g)
    labels = torch.randint(0, 2, (args.samples,), generator=g)
    settings = LocalSettings(epochs=args.epochs, batch_size=args.batch_size, lr=0.01, optimizer="sgd", momentum=0.9)

    def fresh():
        torch.manual_seed(0)
        return build_model(args.arch, 2, args.image_size, args.shared_width).to(device)

    # warm-up (allocator, kernels)
    bare_loop(fresh(), images, labels, settings, generator(0, "w"), device)
    train_local(fresh(), images, labels, settings, generator(0, "w"), device)
    bare_times, engine_times = [], []
    for r in range(args.repeats):
        for kind in ("bare", "engine") if r % 2 == 0 else ("engine", "bare"):
            model = fresh()
            sync(device)
            start = time.perf_counter()
            if kind == "bare":
                bare_loop(model, images, labels, settings, generator(0, "b", r), device)
            else:
                train_local(model, images, labels, settings, generator(0, "b", r), device)
            sync(device)
            (bare_times if kind == "bare" else engine_times).append(time.perf_counter() - start)
    bare, engine = statistics.median(bare_times), statistics.median(engine_times)
    steps = args.epochs * -(-args.samples // args.batch_size)
    print(f"device={device} arch={args.arch} image={args.image_size} samples={args.samples} steps={steps} repeats={args.repeats}")
    print(f"bare loop  : {bare:.3f} s (median)   {', '.join(f'{t:.3f}' for t in bare_times)}")
    print(f"engine     : {engine:.3f} s (median)   {', '.join(f'{t:.3f}' for t in engine_times)}")
    print(f"ratio engine/bare = {engine / bare:.3f}  (goal <= 1.05)")


if __name__ == "__main__":
    main()
