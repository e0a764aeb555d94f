"""``privfed compare``: the study in one command.

On the same data and split, train full-model FedAvg and the partial-weight scheme (and both
again under DP with ``--dp``), train the local and centralized baselines beside them, attack
every federated arm from the three attacker positions (realistic: the updates really sent;
worst case: a replayed one-image gradient; oracle: the client's real weights) with gradient
inversion and membership inference, and write one report comparing them. This is the only
place besides ``train``/``attack``/``report`` that wires the stages together, and it does
so through their public APIs only; every arm records the ``privfed train`` and
``privfed attack`` commands that reproduce it alone.
"""

from __future__ import annotations

import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import typer

from privfed.cli import speed_options, split_options
from privfed.errors import PrivfedError


@dataclass(frozen=True)
class StudyPreset:
    """Training preset per arm plus the attack budget that keeps the study's run time sane."""

    full_model: dict
    partial: dict
    baselines: dict
    #: inversion methods per target (the strongest of each, by bench/inversion.py). A full update
    #: contains the shared layer, so the shared-layer attacks run on it too: what partial
    #: aggregation leaks, FedAvg leaks at least as much.
    inversion_methods: dict[str, list[str]]
    #: images attacked one at a time in the worst-case replay (more: tighter intervals)
    inversion_trials: int
    #: candidates reconstructed from each real (observed) update
    observed_images: int
    reference_models: int
    max_members: int
    membership_methods: list[str] | None
    #: wall seconds of the whole study on the reference machine, measured by bench/study_time.py
    measured_seconds: float | None
    measured_on: str
    data_note: str
    inversion_iterations: int | None = None
    dp_epsilons: tuple[float, ...] = (1.0, 3.0, 8.0)
    #: also attack targets the server does not receive as such (FedAvg restricted to ``shared``)
    other_targets: bool = True
    #: options of one baseline beside ``baselines`` (seed-hetero's local baseline trains each
    #: client's own architecture: the reference partial aggregation must beat)
    baseline_overrides: dict[str, dict] = field(default_factory=dict)
    extra: dict = field(default_factory=dict)


STUDY_PRESETS: dict[str, StudyPreset] = {
    "quick": StudyPreset(
        full_model={"preset": "quick", "algorithm": "fedavg"},
        partial={"preset": "quick", "algorithm": "partial"},
        baselines={"preset": "quick"},
        inversion_methods={"full-model": ["layerwise", "shared-subspace"], "shared-layer": ["shared-subspace", "shared-analytic"]},
        inversion_trials=16, observed_images=4, reference_models=2, max_members=150,
        membership_methods=["loss", "lira-offline", "rmia-offline", "update-cosine"],
        measured_seconds=219, measured_on="2 CPU cores (bench/study_time.py)",
        data_note="the embedded brain-MRI subset at 64x64, 4 clients, 10 rounds of 2 local epochs",
        other_targets=False,
    ),
    "seed-same-arch": StudyPreset(
        full_model={"preset": "seed-same-arch", "algorithm": "fedavg"},
        partial={"preset": "seed-same-arch", "algorithm": "partial"},
        baselines={"preset": "seed-same-arch"},
        inversion_methods={"full-model": ["layerwise", "analytic", "shared-subspace"],
                           "shared-layer": ["shared-subspace", "shared-analytic"]},
        inversion_trials=8, observed_images=4, reference_models=4, max_members=500,
        membership_methods=None, measured_seconds=None, measured_on="2 CPU cores",
        data_note="the seed's reference experiment: 4 x simple at 224x224",
    ),
    "seed-hetero": StudyPreset(
        full_model={"preset": "seed-same-arch", "algorithm": "fedavg"},
        partial={"preset": "seed-hetero", "algorithm": "partial"},
        baselines={"preset": "seed-same-arch"},
        inversion_methods={"full-model": ["layerwise", "analytic", "shared-subspace"],
                           "shared-layer": ["shared-subspace", "shared-analytic"]},
        inversion_trials=8, observed_images=4, reference_models=4, max_members=500,
        membership_methods=None, measured_seconds=None, measured_on="2 CPU cores",
        data_note="partial with simple, MobileNetV3 large/small and DenseNet121 against same-arch FedAvg at 224x224",
        baseline_overrides={"local": {"preset": "seed-hetero"}},
    ),
}

#: CLI names of the DP table's keys
_DP_FLAGS = {"level": "--dp-level", "noise_multiplier": "--noise-multiplier", "max_grad_norm": "--max-grad-norm",
             "target_epsilon": "--target-epsilon", "delta": "--delta", "neighbouring": "--neighbouring"}
_FLAG_NAMES = {"archs": "--arch"}


def train_command(options: dict, out: Path) -> str:
    """The ``privfed train`` command line that trains one arm of the study on its own."""
    flags = ["privfed", "train"]
    for key, value in options.items():
        if value is None:
            continue
        if key == "plan":
            flags += split_options.plan_flags(value)
        elif key == "dp":
            for name, dp_value in value.items():
                if dp_value is not None:
                    flags += [_DP_FLAGS[name], str(dp_value)]
        elif isinstance(value, bool):
            flag = key.replace("_", "-")
            flags.append(f"--{flag}" if value else f"--no-{flag}")
        else:
            text = ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
            flags += [_FLAG_NAMES.get(key, "--" + key.replace("_", "-")), text]
    return shlex.join(flags + ["--out", str(out)])


def study_arms(study: StudyPreset, speed: dict, dp_epsilons: list[float], max_grad_norm: float,
               baselines: bool = True) -> tuple[list[tuple[str, dict]], list[tuple[str, dict]]]:
    """(attacked arms, baseline arms) as (folder name, ``privfed train`` options) before the common options.

    Speed settings go to the non-private runs only (DP-SGD steps refuse them).
    """
    arms = [("fedavg", dict(study.full_model)), ("partial", dict(study.partial))]
    attacked: list[tuple[str, dict]] = [(name, {**options, **speed}) for name, options in arms]
    attacked += [(f"{name}-dp-eps{eps:g}", {**options, "dp": {"level": "sample", "target_epsilon": eps,
                                                               "max_grad_norm": max_grad_norm}})
                 for eps in dp_epsilons for name, options in arms]
    plain = [(name, {**study.baselines, **study.baseline_overrides.get(name, {}), **speed, "algorithm": name})
             for name in ("local", "centralized")] if baselines else []
    return attacked, plain


def _banner(study: StudyPreset, data: Optional[str], overrides: dict) -> str:
    """What the study runs and how long it takes, from a measured figure (never a guess)."""
    what = study.data_note if data is None else f"your data ({data})"
    if overrides:
        what += " (" + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in overrides.items()) + ")"
    if study.measured_seconds and data is None and not overrides:
        return f"{what}; measured {study.measured_seconds / 60:.0f} min on {study.measured_on}"
    return what


def compare(
    preset: str = typer.Option("quick", "--preset", help=f"Study preset: {', '.join(STUDY_PRESETS)}."),
    data: Optional[str] = typer.Option(None, "--data", help="Image folder or .npz of your own (default: the embedded brain-MRI subset)."),
    plan: Optional[str] = typer.Option(None, "--plan", help=split_options.PLAN_HELP),
    client_size: Optional[int] = split_options.client_size_option(),
    server_size: Optional[int] = split_options.server_size_option(),
    test_size: Optional[int] = split_options.test_size_option(),
    clients_fraction: Optional[float] = split_options.clients_fraction_option(),
    server_fraction: Optional[float] = split_options.server_fraction_option(),
    test_fraction: Optional[float] = split_options.test_fraction_option(),
    dirichlet_alpha: Optional[float] = split_options.dirichlet_alpha_option(),
    dp: bool = typer.Option(False, "--dp", help="Also train and attack both schemes with sample-level DP-SGD at each --dp-epsilons (protects single images), to draw the privacy-utility curve."),
    dp_epsilons: Optional[str] = typer.Option(None, "--dp-epsilons", help="Target epsilons of the --dp runs (comma list; default 1,3,8)."),
    max_grad_norm: float = typer.Option(1.0, "--max-grad-norm", help="DP per-sample clipping norm of the --dp runs."),
    rounds: Optional[int] = typer.Option(None, "--rounds", min=1, help="Override the preset's number of rounds (printed in the report's set-up)."),
    image_size: Optional[int] = typer.Option(None, "--image-size", min=1, help="Override the preset's image size."),
    no_baselines: bool = typer.Option(False, "--no-baselines", help="Skip the local and centralized baseline runs."),
    attack_clients: str = typer.Option("0", "--attack-clients", help="Clients attacked (comma list, or 'all'); each costs attack time."),
    trials: Optional[int] = typer.Option(None, "--trials", min=1, help="Worst case: images attacked one at a time per client (default from the preset; intervals need 2 or more)."),
    iterations: Optional[int] = typer.Option(None, "--iterations", min=1, help="Inversion iterations per attack (default: each method's own)."),
    reference_models: Optional[int] = typer.Option(None, "--reference-models", min=2, help="Reference models for LiRA/RMIA (default from the preset)."),
    max_members: Optional[int] = typer.Option(None, "--max-members", min=2, help="Members (and as many non-members) scored per attacked model (default from the preset)."),
    redact_originals: bool = typer.Option(False, "--redact-originals", help="Leave true patient images out of the report (metrics only)."),
    seed: int = typer.Option(0, "--seed", help="Seed of training, split and attacks."),
    device: str = typer.Option("auto", "--device", help="auto (CUDA when present), cpu or cuda."),
    precision: Optional[str] = speed_options.precision_option(),
    channels_last: Optional[bool] = speed_options.channels_last_option(),
    eval_every: Optional[int] = speed_options.eval_every_option(),
    out: Optional[Path] = typer.Option(None, "--out", help="Study folder (default runs/compare-<date>); runs and report.html go inside."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bars."),
) -> None:
    """Train FedAvg and partial-weight aggregation on the same split, attack both, write report.html."""
    from rich.console import Console

    from attacks.inversion.runner import InversionOptions, run_inversion_attacks
    from attacks.membership.runner import MembershipOptions, run_membership_attacks
    from attacks.run_access import open_run, server_receives
    from privfed.federated import build_config, run_training
    from reports import build_report

    if preset not in STUDY_PRESETS:
        raise PrivfedError(f"unknown --preset {preset!r}; choose one of: {', '.join(STUDY_PRESETS)}")
    study = STUDY_PRESETS[preset]
    console = Console(stderr=True)
    out_dir = (out or Path("runs") / f"compare-{time.strftime('%Y%m%d-%H%M%S')}").resolve()
    _refuse_package_folder(out_dir)
    clients = None if attack_clients.strip().lower() == "all" else _ints(attack_clients, "--attack-clients")
    epsilons = _floats(dp_epsilons, "--dp-epsilons") if dp_epsilons else list(study.dp_epsilons)
    split_plan = split_options.plan_value(plan, client_size=client_size, server_size=server_size, test_size=test_size,
                                          clients_fraction=clients_fraction, server_fraction=server_fraction,
                                          test_fraction=test_fraction, dirichlet_alpha=dirichlet_alpha)
    overrides = {key: value for key, value in (("rounds", rounds), ("image_size", image_size), ("plan", split_plan))
                 if value is not None}
    common = {"data": data, **overrides, "seed": seed, "device": device, "eval_every": eval_every}

    speed = {key: value for key, value in (("precision", precision), ("channels_last", channels_last))
             if value is not None}  # non-private runs only: DP-SGD steps refuse them
    attacked, baselines = study_arms(study, speed, epsilons if dp else [], max_grad_norm, baselines=not no_baselines)
    console.print(f"[bold]privfed compare[/] ({preset}): {_banner(study, data, overrides)}")
    console.print(f"study folder: {out_dir}", markup=False)

    run_dirs: list[Path] = []
    clock = _StageClock(out_dir / "study.json", preset)
    for name, options in attacked + baselines:
        options = {**options, **{k: v for k, v in common.items() if v is not None}}
        run_dir = out_dir / name
        config = build_config(options)
        console.rule(f"[bold]{name}[/]: training")
        with clock(f"{name}: training"):
            run_training(config, run_dir, progress=not quiet, command=train_command(options, run_dir))
        run_dirs.append(run_dir)
        if name in dict(baselines):
            continue
        run = open_run(run_dir)
        first = run.observed_rounds()[0]
        targets = run.supported_targets() if study.other_targets else [t for t in run.supported_targets()
                                                                         if server_receives(run.algorithm, t)]
        for target in targets:
            methods = study.inversion_methods.get(target)
            for source, extra in (("observed", {"max_images": study.observed_images}),
                                  ("replay", {"batch_size": 1, "local_steps": 1, "trials": trials or study.inversion_trials})):
                console.rule(f"[bold]{name}[/]: inversion of the {target} ({source})")
                options_ = InversionOptions(target=target, methods=methods, rounds=[first], clients=clients,
                                            iterations=iterations or study.inversion_iterations, seed=seed, device=device,
                                            **extra)
                with clock(f"{name}: inversion of the {target} ({source})"):
                    run_inversion_attacks(run_dir, options_, progress=not quiet, command=_attack_command(run_dir, options_))
            console.rule(f"[bold]{name}[/]: membership inference on the {target}")
            membership = MembershipOptions(
                target=target, methods=study.membership_methods,
                reference_models=reference_models or study.reference_models,
                max_members=max_members or study.max_members, clients=clients, seed=seed, device=device,
            )
            with clock(f"{name}: membership inference on the {target}"):
                run_membership_attacks(run_dir, membership, progress=not quiet, command=_membership_command(run_dir, membership))
    title = f"privfed study: full-model FedAvg vs partial-weight aggregation ({preset})"
    with clock("report"):
        report = build_report(run_dirs, out_dir / "report.html", redact_originals=redact_originals, title=title)
    console.print(f"study done in {clock.total / 60:.1f} min; open the report in a browser "
                  f"(xdg-open on Linux, open on macOS, or paste the path into the address bar):")
    typer.echo(str(Path(report).resolve()))


class _StageClock:
    """Wall seconds per stage, written to ``study.json`` after each (bench/study_time.py reads it)."""

    def __init__(self, path: Path, preset: str) -> None:
        self.path, self.preset, self.stages = path, preset, []
        self.started = time.perf_counter()

    @property
    def total(self) -> float:
        return time.perf_counter() - self.started

    def __call__(self, name: str):
        from contextlib import contextmanager

        from privfed.io import write_json

        @contextmanager
        def stage():
            begin = time.perf_counter()
            yield
            self.stages.append({"stage": name, "seconds": round(time.perf_counter() - begin, 2)})
            write_json(self.path, {"preset": self.preset, "stages": self.stages, "total_seconds": round(self.total, 2)})

        return stage()


def _attack_command(run_dir: Path, options) -> str:
    flags = ["privfed", "attack", str(run_dir), "--kind", "inversion", "--target", options.target,
             "--knowledge", ",".join(options.knowledge), "--seed", str(options.seed)]
    if options.methods:
        flags += ["--method", ",".join(options.methods)]
    for flag, value in (("--round", options.rounds), ("--client", options.clients)):
        if value:
            flags += [flag, ",".join(map(str, value))]
    for flag, value in (("--batch-size", options.batch_size), ("--local-steps", options.local_steps),
                        ("--iterations", options.iterations), ("--max-images", options.max_images)):
        if value is not None:
            flags += [flag, str(value)]
    if options.replay:
        flags += ["--trials", str(options.trials)]
    return shlex.join(flags)


def _membership_command(run_dir: Path, options) -> str:
    flags = ["privfed", "attack", str(run_dir), "--kind", "membership", "--target", options.target,
             "--knowledge", ",".join(options.knowledge), "--reference-models", str(options.reference_models),
             "--max-members", str(options.max_members), "--seed", str(options.seed)]
    if options.methods:
        flags += ["--method", ",".join(options.methods)]
    if options.clients:
        flags += ["--client", ",".join(map(str, options.clients))]
    return shlex.join(flags)


def _ints(text: str, option: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise PrivfedError(f"{option} {text!r}: expected 'all' or a comma list of client numbers") from None


def _floats(text: str, option: str) -> list[float]:
    try:
        values = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise PrivfedError(f"{option} {text!r}: expected a comma list of numbers, e.g. 1,3,8") from None
    if not values or any(v <= 0 for v in values):
        raise PrivfedError(f"{option} {text!r}: every epsilon must be positive")
    return values


def _refuse_package_folder(out_dir: Path) -> None:
    """Never write a study (patient images!) inside the installed package."""
    import privfed

    package = Path(privfed.__file__).resolve().parent
    target = out_dir.resolve()
    if target == package or package in target.parents:
        raise PrivfedError(f"--out {out_dir} is inside the installed privfed package; choose a folder outside it")


def register(app: typer.Typer) -> None:
    app.command("compare")(compare)


__all__ = ["STUDY_PRESETS", "StudyPreset", "compare", "register", "train_command"]
