"""The stages talk through the run directory, not through imports (docs/run-directory.md).

`attacks` never imports the training engine (`privfed.federated`, `privfed.flower`) or the
CLI; `reports` never imports `attacks`, the engine, the models or torch-side code; the core
(`privfed` outside `privfed/cli`) never imports `attacks` or `reports`. Checked on the
source with `ast`, so a lazy import inside a function counts too.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

FORBIDDEN = {
    "attacks": ("privfed.federated", "privfed.flower", "privfed.cli", "reports"),
    "reports": ("attacks", "privfed.federated", "privfed.flower", "privfed.cli", "privfed.models", "privfed.dp",
                "torch"),
    "privfed": ("attacks", "reports"),
}


def imported_modules(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return found


def violations(package: str) -> list[str]:
    bad = []
    for path in sorted((ROOT / package).rglob("*.py")):
        if package == "privfed" and "cli" in path.relative_to(ROOT / package).parts[:1]:
            continue  # the CLI is the one place that wires the stages together
        for line, module in imported_modules(path):
            if any(module == f or module.startswith(f + ".") for f in FORBIDDEN[package]):
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    return bad


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_stages_import_only_downstream(package: str) -> None:
    assert violations(package) == []


def test_the_check_sees_a_lazy_forbidden_import(tmp_path, monkeypatch) -> None:
    fake = tmp_path / "attacks"
    fake.mkdir()
    (fake / "sneaky.py").write_text("def f():\n    from privfed.federated.engine import run\n    return run\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert violations("attacks") == ["attacks/sneaky.py:2 imports privfed.federated.engine"]
