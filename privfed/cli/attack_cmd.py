"""``privfed attack RUN_DIR``: attack a finished run as an honest-but-curious server would."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import typer

from privfed.errors import PrivfedError

KINDS = ("inversion", "membership", "all")


def _int_list(text: str | None, option: str) -> list[int] | None:
    if text is None or text.strip().lower() in ("", "all"):
        return None
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise PrivfedError(f"{option} {text!r}: expected a number or a comma list of numbers, e.g. 1,3") from None


def _names(text: str | None) -> list[str] | None:
    if text is None or not text.strip():
        return None
    if text.strip().lower() == "all":
        return ["all"]
    return [part.strip() for part in text.split(",") if part.strip()]


def attack(
    run_dir: Path = typer.Argument(None, help="Run directory written by 'privfed train' (its --out folder)."),
    kind: str = typer.Option("all", "--kind", help="Which attacks: inversion (rebuild images), membership (was this image trained on?) or all."),
    target: str = typer.Option(None, "--target", help="What is attacked: full-model (whole-model updates), shared-layer (only the 'shared' layer) or all; default: what the run's server really receives (full-model for FedAvg-type runs, shared-layer for partial)."),
    knowledge: str = typer.Option("none,init,full", "--knowledge", help="What the attacker knows of a client's private weights: none, init (the weights it initialised), full (oracle upper bound); comma list."),
    method: str = typer.Option(None, "--method", help="Attack methods to run (comma list, or 'all'); default: inversion runs the strongest method of each target (layerwise, shared-subspace), membership every method but lira-online (weak at a few reference models). See 'privfed attack --list'."),
    round_: str = typer.Option(None, "--round", help="Observed round(s) to attack (comma list); default: every observed round."),
    client: str = typer.Option(None, "--client", help="Client(s) to attack (comma list); default: all."),
    batch_size: int = typer.Option(None, "--batch-size", min=1, help="Inversion: replay a client step on this many of its images (default: the run's observed updates as sent)."),
    local_steps: int = typer.Option(None, "--local-steps", min=1, help="Inversion: local steps in the replayed client update (default: the engine's own)."),
    trials: int = typer.Option(1, "--trials", min=1, help="Inversion replays: repeat on this many different batches of the client's images (intervals need at least 2 images)."),
    iterations: int = typer.Option(None, "--iterations", min=1, help="Inversion: optimisation iterations per attack (default: each method's own)."),
    max_images: int = typer.Option(None, "--max-images", min=1, help="Inversion: images reconstructed from an observed update per result (default 4; a replay reconstructs its whole batch)."),
    reference_models: int = typer.Option(4, "--reference-models", min=1, help="Membership: reference (shadow) models the attacker trains for LiRA/RMIA."),
    max_members: int = typer.Option(500, "--max-members", min=2, help="Membership: at most this many members (and as many non-members) scored."),
    seed: int = typer.Option(0, "--seed", help="Random seed of the attacks (reconstruction starts, sampling, reference models)."),
    device: str = typer.Option("auto", "--device", help="auto (CUDA when present), cpu or cuda."),
    list_methods: bool = typer.Option(False, "--list", help="List the registered attack methods and exit."),
) -> None:
    """Attack a run as its server: gradient inversion and membership inference; results go to RUN_DIR/attacks/."""
    from rich.console import Console

    from attacks.run_access import check_knowledge, open_run, server_receives

    console = Console(stderr=True)
    command = "privfed " + shlex.join(sys.argv[1:])
    if list_methods:
        from attacks.inversion import INVERSION_METHODS
        from attacks.membership import MEMBERSHIP_ATTACKS

        typer.echo("inversion: " + ", ".join(INVERSION_METHODS.names()))
        typer.echo("membership: " + ", ".join(MEMBERSHIP_ATTACKS.names()))
        return
    if run_dir is None:
        raise PrivfedError("privfed attack: give the run directory to attack (the --out folder of 'privfed train')")
    if kind not in KINDS:
        raise PrivfedError(f"unknown --kind {kind!r}; choose one of: {', '.join(KINDS)}")
    run = open_run(run_dir)
    levels = _names(knowledge)
    knowledge_levels = [check_knowledge(k) for k in (["none", "init", "full"] if levels in (None, ["all"]) else levels)]
    supported = run.supported_targets()
    if target is not None and target != "all":
        run.require_target(target)  # names the target and what the run supports instead
        targets = [target]
    elif not supported:
        raise PrivfedError(f"{run_dir}: algorithm {run.algorithm!r} sends nothing to a server, so there is nothing to attack")
    elif target == "all":
        targets = supported
    else:
        targets = [t for t in supported if server_receives(run.algorithm, t)]
    outputs: list[Path] = []
    for t in targets:
        if kind in ("inversion", "all"):
            from attacks.inversion.runner import InversionOptions, run_inversion_attacks

            options = InversionOptions(
                target=t, knowledge=knowledge_levels, methods=_names(method) if kind == "inversion" else None,
                rounds=_int_list(round_, "--round"), clients=_int_list(client, "--client"), batch_size=batch_size,
                local_steps=local_steps, trials=trials, iterations=iterations, max_images=max_images, seed=seed, device=device,
            )
            outputs.append(run_inversion_attacks(run_dir, options, command=command))
        if kind in ("membership", "all"):
            from attacks.membership.runner import MembershipOptions, run_membership_attacks

            options = MembershipOptions(
                target=t, knowledge=knowledge_levels, methods=_names(method) if kind == "membership" else None,
                reference_models=reference_models, max_members=max_members, rounds=_int_list(round_, "--round"),
                clients=_int_list(client, "--client"), seed=seed, device=device,
            )
            outputs.append(run_membership_attacks(run_dir, options, command=command))
    for path in outputs:
        console.print(f"wrote {path}")


def register(app: typer.Typer) -> None:
    app.command("attack")(attack)
