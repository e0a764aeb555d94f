"""`privfed compare`: the one-command study, at a tiny budget."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import privfed


def compare(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "privfed", "compare", *args], capture_output=True, text=True, timeout=600)


def test_compare_trains_attacks_both_schemes_and_prints_the_report_path_last(tmp_path):
    out = tmp_path / "study"
    done = compare("--rounds", "1", "--iterations", "2", "--reference-models", "2", "--max-members", "12",
                   "--out", str(out), "--quiet")
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == str(out / "report.html")
    for arm, targets in (("fedavg", ("full-model", "shared-layer")), ("partial", ("shared-layer",))):
        assert json.loads((out / arm / "config.json").read_text())["algorithm"] == arm
        for target in targets:
            for kind in ("inversion", "membership"):
                assert json.loads((out / arm / "attacks" / f"{kind}-{target}.json").read_text())["results"], (arm, kind, target)
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "fedavg" in html and "partial" in html and "leaked" in html


def test_compare_refuses_to_write_inside_the_installed_package():
    inside = Path(privfed.__file__).resolve().parent / "study"
    done = compare("--out", str(inside))
    assert done.returncode == 2 and done.stderr.startswith("error: ") and "inside the installed privfed package" in done.stderr
    assert not inside.exists()
