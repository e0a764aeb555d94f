"""The whole pipeline as a user runs it: train -> attack -> report, through the real CLI.

Small on purpose (32x32, 1-2 rounds, tiny split, tiny attack budgets): it checks that the
stages agree on the run-directory contract, not how well the attacks work.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

CONFIG = """
image_size = 32
shared_width = 32
rounds = 2
num_clients = 2
batch_size = 16
observe = "first,last"
[plan]
kind = "sizes"
client_size = 32
server_size = 32
test_size = 48
"""


def privfed(*args: str, cwd=None) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "privfed", *args], capture_output=True, text=True, timeout=600, cwd=cwd)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def real_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipeline")
    (root / "tiny.toml").write_text(CONFIG)
    runs = []
    for algorithm in ("fedavg", "partial"):
        run = root / algorithm
        privfed("train", "--config", str(root / "tiny.toml"), "--algorithm", algorithm, "--out", str(run), "--quiet")
        budget = ("--kind", "all", "--iterations", "5", "--max-images", "1", "--client", "0",
                  "--batch-size", "1", "--local-steps", "1", "--reference-models", "2", "--max-members", "12")
        privfed("attack", str(run), *budget)
        # by default only what the server really receives is attacked
        written = sorted(p.name for p in (run / "attacks").glob("*.json"))
        headline = "full-model" if algorithm == "fedavg" else "shared-layer"
        assert written == [f"inversion-{headline}.json", f"membership-{headline}.json"], written
        if algorithm == "fedavg":
            privfed("attack", str(run), "--target", "shared-layer", *budget)
        runs.append(run)
    return root, runs


def test_attacks_write_the_contract_for_every_supported_target(real_runs):
    _, (fedavg, partial) = real_runs
    for run, targets in ((fedavg, ("full-model", "shared-layer")), (partial, ("shared-layer",))):
        for target in targets:
            for kind in ("inversion", "membership"):
                data = json.loads((run / "attacks" / f"{kind}-{target}.json").read_text())
                assert data["results"], (run.name, kind, target)
                for row in data["results"]:
                    assert row["target"] == target and row["knowledge"] in ("none", "init", "full")
        assert not (run / "attacks" / "inversion-full-model.json").exists() or run is fedavg


def test_full_model_attack_on_partial_run_names_the_supported_targets(real_runs):
    _, (_, partial) = real_runs
    result = subprocess.run([sys.executable, "-m", "privfed", "attack", str(partial), "--target", "full-model"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith("error: ") and "supports: shared-layer" in result.stderr


def test_report_from_real_runs_opens_offline(real_runs, open_in_browser):
    root, runs = real_runs
    out = root / "report.html"
    last = privfed("report", *map(str, runs), "--out", str(out)).stdout.strip().splitlines()
    assert out.is_file() and str(out) in "\n".join(last)
    html = out.read_text(encoding="utf-8")
    assert "fedavg" in html and "partial" in html and "<script" not in html
    seen = open_in_browser(out, root)
    assert seen["errors"] == [] and seen["scripts"] == 0
    assert seen["images"] and all(img["complete"] and img["width"] > 0 for img in seen["images"])
