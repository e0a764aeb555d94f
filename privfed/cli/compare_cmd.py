"""``privfed compare``: the study in one command.

On the same data and split, train full-model FedAvg and the partial-weight scheme (and
both again under DP with ``--dp``), attack every run with gradient inversion and
membership inference at each knowledge level, and write one report comparing them.
This is the only place besides ``train``/``attack``/``report`` that wires the stages
together, and it does so through their public APIs only.
"""

from __future__ import annotations

import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import typer

from privfed.errors import PrivfedError


@dataclass(frozen=True)
class StudyPreset:
    """Training preset per arm plus the attack budget that keeps the study's run time sane."""

    full_model: dict
    partial: dict
    inversion_iterations: int
    reference_models: int
    max_members: int
    note: str


STUDY_PRESETS: dict[str, StudyPreset] = {
    "quick": StudyPreset(
        full_model={"preset": "quick", "algorithm": "fedavg"},
        partial={"preset": "quick", "algorithm": "partial"},
        inversion_iterations=150, reference_models=2, max_members=150,
        note="embedded data at 32x32, 5 rounds of 2 local epochs; a few minutes on 2 CPU cores",
    ),
    "seed-same-arch": StudyPreset(
        full_model={"preset": "seed-same-arch", "algorithm": "fedavg"},
        partial={"preset": "seed-same-arch", "algorithm": "partial"},
        inversion_iterations=1000, reference_models=4, max_members=500,
        note="the seed's reference experiment: 4 x simple at 224x224 on the reference plan",
    ),
    "seed-hetero": StudyPreset(
        full_model={"preset": "seed-same-arch", "algorithm": "fedavg"},
        partial={"preset": "seed-hetero", "algorithm": "partial"},
        inversion_iterations=1000, reference_models=4, max_members=500,
        note="partial with simple, MobileNetV3 large/small and DenseNet121 against same-arch FedAvg (FedAvg needs one architecture)",
    ),
}


def compare(
    preset: str = typer.Option("quick", "--preset", help=f"Study preset: {', '.join(STUDY_PRESETS)}."),
    data: Optional[str] = typer.Option(None, "--data", help="Image folder or .npz of your own (default: the embedded brain-MRI subset)."),
    dp: bool = typer.Option(False, "--dp", help="Also train and attack both schemes with sample-level DP-SGD (protects single images)."),
    noise_multiplier: float = typer.Option(1.0, "--noise-multiplier", help="DP noise multiplier of the --dp runs."),
    max_grad_norm: float = typer.Option(1.0, "--max-grad-norm", help="DP per-sample clipping norm of the --dp runs."),
    rounds: Optional[int] = typer.Option(None, "--rounds", min=1, help="Override the preset's number of rounds."),
    image_size: Optional[int] = typer.Option(None, "--image-size", min=1, help="Override the preset's image size."),
    attack_clients: str = typer.Option("0", "--attack-clients", help="Clients attacked (comma list, or 'all'); each costs attack time."),
    inversion_batch_size: int = typer.Option(1, "--inversion-batch-size", min=1, help="Inversion replays one client step on this many true images (1 = worst case)."),
    iterations: Optional[int] = typer.Option(None, "--iterations", min=1, help="Inversion iterations per attack (default from the preset)."),
    reference_models: Optional[int] = typer.Option(None, "--reference-models", min=2, help="Reference models for LiRA/RMIA (default from the preset)."),
    max_members: Optional[int] = typer.Option(None, "--max-members", min=2, help="Members (and as many non-members) scored per attacked model (default from the preset)."),
    redact_originals: bool = typer.Option(False, "--redact-originals", help="Leave true patient images out of the report (metrics only)."),
    seed: int = typer.Option(0, "--seed", help="Seed of training, split and attacks."),
    device: str = typer.Option("auto", "--device", help="auto (CUDA when present), cpu or cuda."),
    out: Optional[Path] = typer.Option(None, "--out", help="Study folder (default runs/compare-<date>); runs and report.html go inside."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bars."),
) -> None:
    """Train FedAvg and partial-weight aggregation on the same split, attack both, write report.html."""
    from rich.console import Console

    from attacks.inversion.runner import InversionOptions, run_inversion_attacks
    from attacks.membership.runner import MembershipOptions, run_membership_attacks
    from attacks.run_access import open_run
    from privfed.federated import build_config, run_training
    from reports import build_report

    if preset not in STUDY_PRESETS:
        raise PrivfedError(f"unknown --preset {preset!r}; choose one of: {', '.join(STUDY_PRESETS)}")
    study = STUDY_PRESETS[preset]
    console = Console(stderr=True)
    out_dir = out or Path("runs") / f"compare-{time.strftime('%Y%m%d-%H%M%S')}"
    _refuse_package_folder(out_dir)
    command = "privfed " + shlex.join(sys.argv[1:])
    clients = None if attack_clients.strip().lower() == "all" else _ints(attack_clients)

    arms: list[tuple[str, dict]] = [("fedavg", dict(study.full_model)), ("partial", dict(study.partial))]
    if dp:
        dp_options = {"level": "sample", "noise_multiplier": noise_multiplier, "max_grad_norm": max_grad_norm}
        arms += [(f"{name}-dp", {**options, "dp": dp_options}) for name, options in arms]
    run_dirs: list[Path] = []
    for name, options in arms:
        options.update({"seed": seed, "device": device})
        if data is not None:
            options["data"] = data
        if rounds is not None:
            options["rounds"] = rounds
        if image_size is not None:
            options["image_size"] = image_size
        config = build_config(options)
        run_dir = out_dir / name
        console.rule(f"[bold]{name}[/]: training ({study.note})")
        run_training(config, run_dir, progress=not quiet, command=f"{command}  # arm {name}")
        run = open_run(run_dir)
        for target in run.supported_targets():
            console.rule(f"[bold]{name}[/]: attacking {target}")
            run_inversion_attacks(run_dir, InversionOptions(
                target=target, rounds=[run.observed_rounds()[0]], clients=clients,
                batch_size=inversion_batch_size, local_steps=1,
                iterations=iterations or study.inversion_iterations,
                seed=seed, device=device,
            ), progress=not quiet)
            run_membership_attacks(run_dir, MembershipOptions(
                target=target, reference_models=reference_models or study.reference_models,
                max_members=max_members or study.max_members, clients=clients, seed=seed, device=device,
            ), progress=not quiet)
        run_dirs.append(run_dir)
    report = build_report(run_dirs, out_dir / "report.html", redact_originals=redact_originals,
                          title=f"privfed study: full-model FedAvg vs partial-weight aggregation ({preset})")
    typer.echo(str(report))


def _ints(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise PrivfedError(f"--attack-clients {text!r}: expected 'all' or a comma list of client numbers") from None


def _refuse_package_folder(out_dir: Path) -> None:
    """Never write a study (patient images!) inside the installed package."""
    import privfed

    package = Path(privfed.__file__).resolve().parent
    target = out_dir.resolve()
    if target == package or package in target.parents:
        raise PrivfedError(f"--out {out_dir} is inside the installed privfed package; choose a folder outside it")


def register(app: typer.Typer) -> None:
    app.command("compare")(compare)
