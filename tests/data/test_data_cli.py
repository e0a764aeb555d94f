"""`privfed data ...`: the real console script for the exit-code contract, in-process for the rest."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from privfed.cli.main import run
from privfed.data import load_split

PRIVFED = Path(sys.executable).with_name("privfed")


def privfed(*argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        run([str(a) for a in argv])
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


def test_console_script_error_contract(tmp_path):
    (tmp_path / "only_one_class").mkdir()
    result = subprocess.run([str(PRIVFED), "data", "inspect", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: {tmp_path}: needs at least 2 class subfolders")
    assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p / "missing", "no such file or folder"),
        (lambda p: (p / "one" / "normal").mkdir(parents=True) or p / "one", "found only 'normal'"),
        (lambda p: np.savez(p / "x.npz", foo=np.zeros(3)) or p / "x.npz", "no image arrays found \\(keys: foo\\)"),
    ],
)
def test_bad_inputs_exit_2_with_one_error_line(tmp_path, capsys, make, message):
    import re

    code, out, err = privfed("data", "inspect", make(tmp_path), capsys=capsys)
    assert code == 2 and err.startswith("error: ") and re.search(message, err) and "Traceback" not in err


def test_inspect_reports_counts_sizes_and_the_reference_plan(folder, capsys):
    code, out, err = privfed("data", "inspect", folder, capsys=capsys)
    assert code == 0
    assert "normal" in out and "tumor" in out and "40x40 (4)" in out and "50x30 (1)" in out
    assert "needs 8400 images" in out and "5 exist: does NOT fit" in out


def test_inspect_warns_about_skipped_files(folder, capsys):
    (folder / "tumor" / "broken.png").write_bytes(b"nope")
    code, out, err = privfed("data", "inspect", folder, capsys=capsys)
    assert code == 0 and err.startswith("warning: ") and "skipped 1 file(s)" in err and "skipped: 1" in out


def test_split_writes_a_loadable_split(tmp_path, capsys):
    out_path = tmp_path / "split.json"
    code, out, err = privfed(
        "data", "split", "embedded", "--out", out_path, "--plan", "sizes", "--clients", 3,
        "--client-size", 100, "--server-size", 50, "--test-size", 200, "--seed", 5, capsys=capsys,
    )
    assert code == 0, err
    split = load_split(out_path)
    assert [len(c) for c in split.clients] == [100, 100, 100] and len(split.server) == 50 and len(split.test) == 200
    assert split.seed == 5 and split.classes == ["normal", "tumor"]
    assert json.loads(out_path.read_text())["plan"]["client_size"] == 100
    assert "client_2" in out and "wrote" in out


def test_split_option_errors(tmp_path, capsys):
    code, _, err = privfed("data", "split", "embedded", "--out", tmp_path / "s.json", capsys=capsys)
    assert code == 2 and "the reference plan needs 8400 images" in err and "embedded has 1348" in err
    code, _, err = privfed("data", "split", "embedded", "--plan", "sizes", "--client-size", 10, capsys=capsys)
    assert code == 2 and "--server-size is required with --plan sizes" in err
    assert not (tmp_path / "s.json").exists()


@pytest.mark.realdata
def test_inspect_real_brain_mri(brain_mri, capsys):
    code, out, _ = privfed("data", "inspect", brain_mri, capsys=capsys)
    assert code == 0 and "674" in out and "4864" in out and "needs 8400 images" in out
