"""The command line's contract: --version, --help for every command, errors as one line + exit 2."""

import subprocess
import sys

from privfed import __version__


def privfed(*args):
    return subprocess.run([sys.executable, "-m", "privfed", *args], capture_output=True, text=True, timeout=120)


def test_version():
    result = privfed("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"privfed {__version__}"


def test_help_lists_commands():
    out = privfed("--help").stdout
    for command in ("data", "train", "attack", "report", "compare", "flower"):
        assert command in out


def test_unknown_option_is_one_error_line_exit_2():
    result = privfed("--bogus")
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
