"""Several clients of a round at once on one machine: Flower's Simulation Runtime.

``privfed train`` trains a round's clients one after another in one process. On a machine
with several GPUs or many cores, Flower's simulation engine (Ray actors, each holding a
share of the CPUs and GPUs) runs the same ServerApp and ClientApp with one virtual
SuperNode per client, so the clients of a round train side by side. Nothing about the
run changes: node k gets partition k of the run's own data (the split ``privfed train``
makes), seeds are the engine's (seed, "data", round, k), and the ServerApp writes the same
run directory, so ``privfed attack`` and ``privfed report`` read it unchanged.
``bench/parallel_clients.py`` measures rounds per hour against the sequential engine.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from privfed.errors import PrivfedError


@dataclass(frozen=True)
class ClientResources:
    """What each client's Ray actor holds; Ray runs as many clients at once as fit."""

    #: CPU cores per client (also its torch thread count: Ray sets OMP_NUM_THREADS to it).
    cpus: float = 1.0
    #: Share of one GPU per client (0.25: four clients on one GPU); 0 trains on CPU.
    gpus: float = 0.0

    def check(self) -> None:
        if self.cpus <= 0:
            raise PrivfedError(f"--client-cpus {self.cpus:g}: must be a positive number of cores")
        if self.gpus < 0 or (self.gpus > 1 and not float(self.gpus).is_integer()):
            raise PrivfedError(f"--client-gpus {self.gpus:g}: give a share of one GPU (0 to 1) or a whole number of GPUs")

    def parallel_clients(self, cpus: int, gpus: int) -> int:
        """How many clients Ray can run at once on ``cpus`` cores and ``gpus`` GPUs."""
        fit = int(cpus // self.cpus)
        if self.gpus > 0:
            fit = min(fit, int(gpus / self.gpus + 1e-9))
        return fit


def require_ray() -> None:
    try:
        import ray  # noqa: F401
    except ImportError:
        raise PrivfedError(
            "privfed flower simulate: Flower's simulation engine needs Ray, which is not installed; "
            "install it with: pip install 'privfed[simulation]'  (or pip install 'flwr[simulation]')"
        ) from None


def backend_config(resources: ClientResources, total_cpus: int | None = None, total_gpus: int | None = None) -> dict:
    """Flower's ``backend_config`` for the Ray backend."""
    init: dict[str, Any] = {"logging_level": "warning", "log_to_driver": True}
    if total_cpus is not None:
        init["num_cpus"] = int(total_cpus)
    if total_gpus is not None:
        init["num_gpus"] = int(total_gpus)
    return {"client_resources": {"num_cpus": resources.cpus, "num_gpus": resources.gpus}, "init_args": init}


def simulate(run_config: Mapping[str, Any], resources: ClientResources = ClientResources(),
             total_cpus: int | None = None, total_gpus: int | None = None) -> dict:
    """Run ``run_config`` (a ``privfed flower run`` run config) with one virtual SuperNode per client.

    Returns the run's summary (as written to summary.json); raises PrivfedError when the run did not finish.
    """
    from privfed.flower import require_flower
    from privfed.flower.options import config_from_run_config

    require_flower()
    require_ray()
    resources.check()
    config, options = config_from_run_config(run_config)  # fail on a bad option before Ray starts
    if resources.gpus > 0 and config.device == "cpu":
        raise PrivfedError("--client-gpus > 0 with device=cpu: the clients would hold GPUs and not use them; "
                           "drop --client-gpus or set --set device=cuda")

    from flwr.serverapp import ServerApp
    from flwr.simulation import run_simulation

    from privfed.flower.client_app import app as client_app
    from privfed.flower.server_app import run_server

    server_app = ServerApp()
    outcome: dict[str, Any] = {}

    @server_app.main()
    def _main(grid, context) -> None:  # the run config is ours, not Flower's (run_simulation takes none)
        try:
            outcome["summary"] = run_server(grid, config, options)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread below
            outcome["error"] = exc
            raise

    run_simulation(server_app=server_app, client_app=client_app, num_supernodes=config.num_clients,
                   backend_config=backend_config(resources, total_cpus, total_gpus))
    if "error" in outcome:
        error = outcome["error"]
        if isinstance(error, PrivfedError):
            raise error
        raise PrivfedError(f"the simulated run stopped: {type(error).__name__}: {error}") from error
    if "summary" not in outcome:
        raise PrivfedError(f"the simulated run did not finish; {options.out_dir} holds the rounds written; see Flower's log above")
    return outcome["summary"]
