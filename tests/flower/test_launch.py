"""The files and command lines privfed hands to Flower's executables."""

import tomllib

import pytest

from privfed.errors import PrivfedError
from privfed.flower import launch


def test_app_folder_is_a_valid_flower_app(tmp_path):
    pytest.importorskip("flwr", reason="Flower (flwr) is not installed: pip install 'privfed[flower]'")
    from flwr.common.config import validate_config

    folder = launch.write_app(tmp_path / "app", {"algorithm": "partial", "shared-width": "8,4", "rounds": 2,
                                                 "out-dir": "/srv/run \"a\""})
    config = tomllib.loads((folder / "pyproject.toml").read_text())
    valid, errors, _ = validate_config(config, check_module=True, project_dir=folder)
    assert valid, errors
    assert config["tool"]["flwr"]["app"]["config"] == {"algorithm": "partial", "shared-width": "8,4", "rounds": 2,
                                                       "out-dir": "/srv/run \"a\""}


def test_tls_is_required_unless_insecure():
    with pytest.raises(PrivfedError, match="--ssl-certfile"):
        launch.superlink_command(tls=launch.TLSOptions())
    with pytest.raises(PrivfedError, match="--root-certificates"):
        launch.supernode_command("host:9093", {})
    command = launch.supernode_command("h:1", {"data-path": "/d", "partition-id": 0, "test-path": None}, 9100,
                                       root_certificates="ca.pem")
    assert command[command.index("--node-config") + 1] == 'data-path="/d" partition-id=0'
    assert command[command.index("--root-certificates") + 1] == "ca.pem" and "--insecure" not in command


def test_cli_reports_missing_tls_as_error(capsys):
    from privfed.cli.main import run

    with pytest.raises(SystemExit) as exit_info:
        run(["flower", "superlink"])
    assert exit_info.value.code == 2
    assert "error: privfed flower superlink: give --ssl-certfile" in capsys.readouterr().err
