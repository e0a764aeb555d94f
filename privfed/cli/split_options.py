"""The split options ``privfed train`` and ``privfed compare`` share, turned into a plan table.

One place, so both commands accept exactly the same ``--plan`` family and a study's
reproducing command (``privfed train ...``) can be written from the same names.
"""

from __future__ import annotations

from typing import Any, Optional

import typer

#: option name (without --) -> SplitPlan field
SPLIT_FIELDS = {
    "client-size": "client_size", "server-size": "server_size", "test-size": "test_size",
    "clients-fraction": "clients_fraction", "server-fraction": "server_fraction", "test-fraction": "test_fraction",
    "dirichlet-alpha": "dirichlet_alpha",
}

PLAN_HELP = ("How images are dealt to clients, server and test set: seed (4 x 1176 + 1176 + 2520, the reference "
             "plan), fractions (shares of the data; default for your own folder), sizes (explicit --client-size, "
             "--server-size, --test-size).")


def client_size_option() -> Any:
    return typer.Option(None, "--client-size", help="Images per client (with --plan sizes).")


def server_size_option() -> Any:
    return typer.Option(None, "--server-size", help="Images for the server (with --plan sizes; 0 allowed).")


def test_size_option() -> Any:
    return typer.Option(None, "--test-size", help="Images in the shared test set (with --plan sizes).")


def clients_fraction_option() -> Any:
    return typer.Option(None, "--clients-fraction", help="Share of all images given to the clients together (with --plan fractions; default 0.6).")


def server_fraction_option() -> Any:
    return typer.Option(None, "--server-fraction", help="Share of all images given to the server (with --plan fractions; default 0.15).")


def test_fraction_option() -> Any:
    return typer.Option(None, "--test-fraction", help="Share of all images in the test set (with --plan fractions; default 0.25).")


def dirichlet_alpha_option() -> Any:
    return typer.Option(None, "--dirichlet-alpha", help="Label skew across clients drawn from Dirichlet(alpha) (Hsu et al. 2019): 0.1-0.5 strong, 100 almost none.")


def plan_value(plan: Optional[str], **values: Any) -> Any:
    """``--plan NAME`` alone stays a name; with any size/fraction option it becomes a plan table."""
    given = {field: value for field, value in values.items() if value is not None}
    if not given:
        return plan
    return {"kind": plan or ("sizes" if any(k.endswith("_size") for k in given) else "fractions"), **given}


def plan_flags(plan: Any) -> list[str]:
    """CLI flags that give ``plan`` (a name or a table) back: the inverse of :func:`plan_value`."""
    if plan is None:
        return []
    if isinstance(plan, str):
        return ["--plan", plan]
    flags = ["--plan", str(plan.get("kind", "fractions"))]
    for option, field in SPLIT_FIELDS.items():
        if plan.get(field) is not None:
            flags += [f"--{option}", str(plan[field])]
    return flags
