"""Compare training schedules of the convolutional decoder on real MRI: held-out gain per setting.

Usage:
    .venv/bin/python bench/conv_decoder.py [--models bench,seed-same-arch] [--learning-rates 2e-3,1e-3]
        [--clips 0,2] [--epochs 24] [--seeds 0] [--networks 2] [--precisions auto] [--size 224]
        [--device auto] [--threads 2]
        [--data ../shared/data/brain-mri] [--minutes 0]

Why: the network that carries the whole-model attack at 224x224
(:mod:`attacks.inversion.conv_decoder`) broke down in training on some models, and the attack
then silently falls back to the linear decoder. The attack keeps the network only where it beats
the linear decoder on held-out server images, so that held-out gain is the figure to compare.
Per model the posterior (kernel regression, linear local decoder) is fitted once, exactly as the
attack fits it (:func:`attacks.inversion.posterior.posterior_for`), then the network is trained
under each setting on the same images and scored on the same held-out slices.

Models (round 1, knowledge init: the model the server initialised):

* ``bench``: bench/inversion.py's (torch seed 0), the server holding the first
  ``--server-images`` (1,176) images of its order;
* ``seed-same-arch``: the FedAvg global model the engine initialises for ``--preset
  seed-same-arch`` (run seed 0), the server holding that run's ``split.server`` under ``--plan
  fractions`` (830 images): the worst-case replay's model in docs/results.md.

``--networks`` networks are trained per setting (seeds seed, seed + 1, ...) and averaged, as the
attack does (:data:`attacks.inversion.posterior.CONV_NETWORKS`); 1 compares single networks, and
with more the gain of the mean of the first 1, 2, ... networks is printed too. ``--precisions``
compares fp32 and bf16 training (auto: the attack's choice for the device,
:data:`attacks.inversion.conv_decoder.PRECISION`).
Prints, per model and setting: held-out PSNR gain over the mean image with the network and
without it (the linear decoder), whether the attack would keep it, the epoch whose weights were
kept (the first network's), the last epoch's training loss over the lowest, and seconds. ``--minutes`` stops starting
new settings after that long (0: no limit), so a run on a lent GPU ends inside its lease.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from attacks.inversion import ImagePrior
from attacks.inversion import posterior as posterior_module
from attacks.inversion.conv_decoder import training_precision
from attacks.inversion.local_decoder import MapGeometry
from privfed.devices import resolve_device
from privfed.models import build_model

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "brain-mri"
MODELS = ("bench", "seed-same-arch")


def _bench_model(dataset, size: int, server_images: int):
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(0)).tolist()
    images, _ = dataset.load([dataset.ids[i] for i in order[:server_images]])
    torch.manual_seed(0)
    return build_model("simple", image_size=size, shared_width=1024).eval(), images


def _seed_study_model(dataset, size: int):
    """The engine's own seeding and split (bench code may wire stages; the attacks never import the engine)."""
    from privfed.data.split import SplitPlan, make_split
    from privfed.federated.seeding import seeded

    split = make_split(dataset, 4, SplitPlan(kind="fractions"), 0)
    with seeded(0, "init", "global"):
        model = build_model("simple", 2, size, 1024, dp=False)
    images, _ = dataset.load(list(split.server))
    return model.eval(), images


def _captured_fit(model, images: torch.Tensor, size: int, device) -> tuple[tuple, float]:
    """The arguments the attack's posterior fit hands the network's training, and the fit's seconds."""
    captured = []
    real = posterior_module._fit_conv

    def capture(*args):
        captured.append(args)
        return None, 0.0, None

    start = time.perf_counter()
    posterior_module._fit_conv = capture
    try:
        prior = ImagePrior.from_server_images(images, model)  # on the CPU, as the runner holds them
        posterior_module.posterior_for(prior, "fc", lambda x: torch.flatten(model.backbone(x), 1), device,
                                       geometry=MapGeometry.of(model, size))
    finally:
        posterior_module._fit_conv = real
    if not captured:
        raise SystemExit(f"the posterior trained no network: too few server images ({len(images)}) or no spatial map at {size}x{size}")
    return captured[0], time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--server-images", type=int, default=1176, help="the bench model's server images")
    parser.add_argument("--learning-rates", default="2e-3,1e-3")
    parser.add_argument("--clips", default="0,2", help="relative clipping factors; 0 is off")
    parser.add_argument("--epochs", default="24")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--networks", type=int, default=posterior_module.CONV_NETWORKS,
                        help="networks averaged per setting (the attack's default)")
    parser.add_argument("--precisions", default="auto", help="auto, fp32, bf16 (comma-separated)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--minutes", type=float, default=0.0)
    args = parser.parse_args()
    if args.networks < 1:
        raise SystemExit(f"--networks {args.networks}: at least 1 network is needed")
    if not args.data.is_dir():
        print(f"skipped: {args.data} not found (the brain-MRI images are needed for this benchmark; --data names them)")
        return 0
    from privfed.data import open_dataset

    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    began = time.perf_counter()
    dataset = open_dataset(args.data, args.size)
    precisions = args.precisions.split(",")
    try:  # the attack's own check, before any fitting
        for precision in precisions:
            training_precision(device, precision)
    except ValueError as error:
        raise SystemExit(f"--precisions: {error}") from None
    settings = [(float(lr), float(clip), int(epochs), int(seed), precision) for epochs in args.epochs.split(",")
                for lr in args.learning_rates.split(",") for clip in args.clips.split(",") for seed in args.seeds.split(",")
                for precision in precisions]
    print(f"# {args.size}x{args.size}, device {device}, {torch.get_num_threads()} thread(s), {args.networks} network(s) per setting")
    print(f"{'model':15} {'lr':>7} {'clip':>4} {'epochs':>6} {'seed':>4} {'gain':>7} {'without':>7} {'kept':>5} "
          f"{'best':>4} {'last/min':>8} {'sec':>6} {'prec':>4}")
    for name in [m for m in args.models.split(",") if m]:
        if name not in MODELS:
            raise SystemExit(f"--models: unknown model {name!r}; known: {', '.join(MODELS)}")
        model, images = (_bench_model(dataset, args.size, args.server_images) if name == "bench"
                         else _seed_study_model(dataset, args.size))
        model = model.to(device)
        fit_args, fit_seconds = _captured_fit(model, images, args.size, device)
        print(f"# {name}: {len(images)} server images, posterior fitted in {fit_seconds:.1f} s", flush=True)
        for lr, clip, epochs, seed, precision in settings:
            if args.minutes and time.perf_counter() - began > 60 * args.minutes:
                print(f"# stopped: --minutes {args.minutes} passed")
                return 0
            start = time.perf_counter()
            kept, _, scores = posterior_module._fit_conv(*fit_args[:-1], seed, networks=args.networks,
                                                            learning_rate=lr, clip=clip, epochs=epochs, precision=precision)
            losses = [x for x in scores["loss_by_epoch"] if x is not None]
            ratio = losses[-1] / min(losses) if losses else float("nan")
            gain = scores["held_out_gain_db"]
            print(f"{name:15} {lr:7.0e} {clip:4g} {epochs:6d} {seed:4d} {gain if gain is not None else float('nan'):+7.2f} "
                  f"{scores['held_out_gain_db_without']:+7.2f} {str(kept is not None):>5} {scores['best_epoch'] or 0:4d} "
                  f"{ratio:8.3f} {time.perf_counter() - start:6.1f} {scores['precision']:>4}", flush=True)
            if args.networks > 1:
                print(f"#   mean of the first 1..{args.networks} networks: {scores['held_out_gain_db_by_networks']}", flush=True)
            for member in scores["members"]:
                print(f"#   seed {member['seed']} loss by epoch: {member['loss_by_epoch']}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
