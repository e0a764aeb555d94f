"""The installed ``privfed`` command in fresh interpreters: exit 2, one ``error:`` line, no traceback.

A few cases of test_bad_input.py and test_untrusted_files.py (which run the same entry point
in process), started together: each interpreter spends seconds importing torch and opacus.
"""

from __future__ import annotations

import shutil
import subprocess

from privfed.io import read_json

from .conftest import ENV, PRIVFED, one_error_line
from .test_untrusted_files import pickles


def test_the_installed_command_exits_2_with_one_line(make_run, tmp_path, tiny_toml):
    (tmp_path / "bad.toml").write_text("rouns = 3\n")
    marker = tmp_path / "marker"
    planted = tmp_path / "planted"
    shutil.copytree(make_run("fedavg", rounds=2, stop_after_round=1), planted)
    (planted / "observed" / "round_1" / "client_0.safetensors").write_bytes(pickles(marker)["pickle-protocol-4"])
    cases = {
        "unknown key": (["train", "--config", "bad.toml", "--quiet"], "unknown key 'rouns' (did you mean 'rounds'?)"),
        "nan loss": (["train", "--config", str(tiny_toml), "--lr", "1e30", "--quiet", "--out", "nan-run"],
                     "client 0, round 1: training loss became nan"),
        "pickled observation": (["attack", str(planted), "--device", "cpu"], "refused: this is a pickle"),
    }
    processes = {name: subprocess.Popen([*PRIVFED, *args], cwd=tmp_path, env=ENV, text=True,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                 for name, (args, _) in cases.items()}
    for name, process in processes.items():
        _, stderr = process.communicate(timeout=300)
        assert process.returncode == 2, (name, stderr)
        assert cases[name][1] in one_error_line(stderr), (name, stderr)
    assert not marker.exists()
    assert read_json(tmp_path / "nan-run" / "config.json")["lr"] == 1e30  # what ran is kept for inspection
