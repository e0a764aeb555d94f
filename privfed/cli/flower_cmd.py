"""``privfed flower``: start Flower's SuperLink, a SuperNode, or a privfed run on them.

Thin wrappers over Flower's own executables (see :mod:`privfed.flower.launch` and
docs/flower.md); privfed adds no networking of its own.
"""

from __future__ import annotations

import sys
import subprocess
import tempfile
from pathlib import Path
from typing import Optional

import typer

from privfed.errors import PrivfedError

app = typer.Typer(help="Run privfed across several machines on Flower (SuperLink, SuperNodes, flwr run).",
                  no_args_is_help=True)


def _exec(command: list[str], env: dict[str, str]) -> None:
    try:
        code = subprocess.call(command, env=env)
    except KeyboardInterrupt:
        code = 130
    if code:
        raise PrivfedError(f"{Path(command[0]).name} exited with status {code}; see its output above")


@app.command()
def superlink(
    port: int = typer.Option(9093, help="Port of the SuperLink's API (Fleet, Control and Runtime share it)."),
    host: str = typer.Option("0.0.0.0", help="Address to listen on (127.0.0.1 for a one-machine test)."),
    insecure: bool = typer.Option(False, "--insecure", help="Plain HTTP, no TLS: loopback tests only."),
    ssl_certfile: Optional[str] = typer.Option(None, help="Server certificate (PEM)."),
    ssl_keyfile: Optional[str] = typer.Option(None, help="Server private key (PEM)."),
    ssl_ca_certfile: Optional[str] = typer.Option(None, help="CA certificate (PEM)."),
    enable_supernode_auth: bool = typer.Option(False, help="Accept only registered SuperNode keys (see docs/flower.md)."),
    database: Optional[str] = typer.Option(None, help="State database file (default: in memory)."),
) -> None:
    """Start the server side: Flower's SuperLink. The ServerApp runs under it when 'privfed flower run' submits."""
    from privfed.flower import launch, require_flower

    require_flower()
    tls = launch.TLSOptions(insecure, ssl_certfile, ssl_keyfile, ssl_ca_certfile)
    _exec(launch.superlink_command(host, port, tls, enable_supernode_auth, database), launch.flower_env())


@app.command()
def supernode(
    superlink: str = typer.Option(..., help="SuperLink address host:port."),
    data: Optional[str] = typer.Option(None, "--data", help="This client's image folder or .npz (default: embedded)."),
    partition_id: Optional[int] = typer.Option(None, help="Use this client's share of a split of --data (demos/tests)."),
    num_partitions: Optional[int] = typer.Option(None, help="Number of shares --data is split into."),
    test_data: Optional[str] = typer.Option(None, "--test-data", help="Held-out data for this client's test metrics."),
    device: str = typer.Option("auto", help="auto, cpu or cuda."),
    port: int = typer.Option(9094, help="Local port of the SuperNode's own runtime API (one per SuperNode on a machine)."),
    insecure: bool = typer.Option(False, "--insecure", help="Plain HTTP, no TLS: loopback tests only."),
    root_certificates: Optional[str] = typer.Option(None, help="CA certificate that signed the SuperLink's certificate."),
    auth_private_key: Optional[str] = typer.Option(None, help="This SuperNode's private key (SuperNode authentication)."),
) -> None:
    """Start one client side: Flower's SuperNode, reading its own local data."""
    from privfed.flower import launch, require_flower

    require_flower()
    node_config = {"data-path": str(Path(data).expanduser().resolve()) if data else None, "partition-id": partition_id,
                   "num-partitions": num_partitions, "test-path": test_data, "device": device}
    command = launch.supernode_command(superlink, node_config, port, insecure, root_certificates, auth_private_key)
    _exec(command, launch.flower_env())


@app.command("run")
def run_cmd(
    out: Path = typer.Option(..., "--out", help="Run directory, on the SuperLink machine."),
    superlink: str = typer.Option("127.0.0.1:9093", help="SuperLink address host:port (its Control API)."),
    algorithm: str = typer.Option("fedavg", help="fedavg, fedprox, fednova or partial."),
    num_clients: int = typer.Option(2, help="SuperNodes to wait for; client k is the node with partition-id k."),
    rounds: int = typer.Option(3),
    config: Optional[Path] = typer.Option(None, "--config", help="TrainConfig TOML/JSON, read on the SuperLink machine."),
    set_: list[str] = typer.Option([], "--set", help="Any other option as key=value (hyphenated TrainConfig names, e.g. shared-width=8)."),
    min_clients: Optional[int] = typer.Option(None, help="Finish a round with this many replies (default: all sampled)."),
    insecure: bool = typer.Option(False, "--insecure", help="Plain HTTP, no TLS: loopback tests only."),
    root_certificates: Optional[str] = typer.Option(None, help="CA certificate of the SuperLink."),
) -> None:
    """Submit a privfed training run to a SuperLink with 'flwr run' and stream its log."""
    from privfed.flower import launch, require_flower

    require_flower()
    run_config = _run_config(out, algorithm, num_clients, rounds, config, set_, min_clients, "privfed flower run")
    home = Path(tempfile.mkdtemp(prefix="privfed-flwr-"))
    launch.write_connection(home, superlink, insecure=insecure, root_certificates=root_certificates)
    app_folder = launch.write_app(home / "app", run_config)
    _exec(launch.run_command(app_folder), launch.flower_env(home))


@app.command()
def simulate(
    out: Path = typer.Option(..., "--out", help="Run directory."),
    algorithm: str = typer.Option("fedavg", help="fedavg, fedprox, fednova or partial."),
    num_clients: int = typer.Option(4, help="Virtual SuperNodes; node k trains on client k's share of the run's data."),
    rounds: int = typer.Option(3),
    config: Optional[Path] = typer.Option(None, "--config", help="TrainConfig TOML/JSON."),
    set_: list[str] = typer.Option([], "--set", help="Any other option as key=value (hyphenated TrainConfig names, e.g. data=/srv/mri)."),
    min_clients: Optional[int] = typer.Option(None, help="Finish a round with this many replies (default: all sampled)."),
    client_cpus: float = typer.Option(1.0, help="CPU cores per client; also its torch threads."),
    client_gpus: float = typer.Option(0.0, help="Share of a GPU per client (0.25: four clients per GPU; needs device=cuda or auto)."),
    cpus: Optional[int] = typer.Option(None, help="Cores Ray may use in all (default: every core of this machine)."),
    gpus: Optional[int] = typer.Option(None, help="GPUs Ray may use in all (default: every visible GPU)."),
) -> None:
    """Train with the clients of each round side by side on this machine (Flower's simulation engine, Ray).

    Same algorithms, seeds and run directory as 'privfed train'; as many clients run at
    once as --client-cpus/--client-gpus fit in --cpus/--gpus.
    """
    from privfed.flower.simulation import ClientResources
    from privfed.flower.simulation import simulate as run_simulated

    run_config = _run_config(out, algorithm, num_clients, rounds, config, set_, min_clients, "privfed flower simulate")
    summary = run_simulated(run_config, ClientResources(client_cpus, client_gpus), cpus, gpus)
    typer.echo(f"wrote {out} ({summary['final_round']} rounds, {summary['wall_seconds']:.0f} s)")


def _run_config(out: Path, algorithm: str, num_clients: int, rounds: int, config: Optional[Path], set_: list[str],
                min_clients: Optional[int], command: str) -> dict:
    run_config: dict = {"algorithm": algorithm, "num-clients": num_clients, "rounds": rounds,
                        "out-dir": str(out.expanduser().resolve()), "min-clients": min_clients,
                        "config-file": str(config.expanduser().resolve()) if config else None,
                        "command": command + " " + " ".join(sys.argv[3:])}
    for item in set_:
        key, sep, value = item.partition("=")
        if not sep:
            raise PrivfedError(f"--set {item!r}: expected key=value")
        run_config[key.strip()] = _scalar(value.strip())
    return run_config


@app.command("app")
def app_cmd(folder: Path = typer.Argument(..., help="Folder to write the Flower app's pyproject.toml into.")) -> None:
    """Write the privfed Flower app (a pyproject.toml) for use with plain 'flwr run FOLDER CONNECTION'."""
    from privfed.flower import launch

    path = launch.write_app(folder, {"algorithm": "fedavg", "num-clients": 2, "rounds": 3,
                                     "out-dir": str(Path("privfed-runs/flower").resolve())})
    typer.echo(f"wrote {path / 'pyproject.toml'}")


def _scalar(text: str):
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)
