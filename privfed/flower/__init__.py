"""privfed on Flower: the same algorithms and run directory, across several machines.

privfed grows no networking of its own. Its ServerApp (:mod:`privfed.flower.server_app`)
and ClientApp (:mod:`privfed.flower.client_app`) run on Flower's deployment engine
(``flower-superlink``, ``flower-supernode``, ``flwr run``; https://flower.ai/docs/framework/),
reuse the engine's strategies, client round and run-directory names, and write the run
directory that ``privfed attack`` and ``privfed report`` read. Flower is an optional
dependency (``pip install 'privfed[flower]'``); importing this package does not need it,
:func:`require_flower` says how to get it.
"""

from __future__ import annotations

from privfed.errors import PrivfedError

#: The ``[tool.flwr.app.components]`` of the privfed Flower app.
SERVER_APP_REF = "privfed.flower.server_app:app"
CLIENT_APP_REF = "privfed.flower.client_app:app"


def flower_available() -> bool:
    try:
        import flwr  # noqa: F401
    except ImportError:
        return False
    return True


def require_flower() -> None:
    """Raise a PrivfedError that says how to install Flower when it is missing."""
    if not flower_available():
        raise PrivfedError(
            "privfed flower: the Flower framework (flwr) is not installed; "
            "install it with: pip install 'privfed[flower]'  (or pip install 'flwr>=1.20')"
        )


__all__ = ["CLIENT_APP_REF", "SERVER_APP_REF", "flower_available", "require_flower"]
