"""The same command with the same seed writes the same run on CPU (timing fields aside).

Partial training with sample-level DP-SGD: the path with the most random streams (Poisson
sampling, DP noise, the F maps, per-client initialisation). The two runs start together.
"""

from __future__ import annotations

import subprocess

from .conftest import ENV, PRIVFED, rows_without_timing, summary_without_timing


def test_same_command_twice_gives_identical_summary_metrics_and_models(tmp_path, tiny_toml):
    command = ["train", "--config", str(tiny_toml), "--algorithm", "partial", "--shared-width", "16,8", "--rounds", "2",
               "--dp-level", "sample", "--noise-multiplier", "1.0", "--seed", "7", "--quiet"]
    processes = [subprocess.Popen([*PRIVFED, *command, "--out", name], cwd=tmp_path, env=ENV, text=True,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for name in ("a", "b")]
    for process in processes:
        _, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, stderr
    a, b = tmp_path / "a", tmp_path / "b"
    assert summary_without_timing(a) == summary_without_timing(b)
    assert summary_without_timing(a)["epsilon"] > 0 and summary_without_timing(a)["final_round"] == 2
    assert rows_without_timing(a) == rows_without_timing(b)
    files = sorted(p.relative_to(a) for p in a.rglob("*.safetensors"))
    assert files == sorted(p.relative_to(b) for p in b.rglob("*.safetensors")) and len(files) > 10
    for name in files:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
