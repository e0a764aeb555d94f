"""Start Flower's own executables for privfed: SuperLink, SuperNodes, and ``flwr run``.

privfed only assembles command lines and the two small files Flower reads: the app's
``pyproject.toml`` (``[tool.flwr.app]``, whose components point at privfed's installed
ServerApp and ClientApp, and whose ``[tool.flwr.app.config]`` holds the run's options) and
the Flower configuration ``$FLWR_HOME/config.toml`` naming the SuperLink connection that
``flwr run`` submits to. TLS and SuperNode authentication are Flower's flags, passed
through (docs/flower.md). Used by ``privfed flower``, the tests and the benchmark.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from privfed import __version__
from privfed.errors import PrivfedError
from privfed.flower import CLIENT_APP_REF, SERVER_APP_REF
from privfed.io import atomic_write_text

#: Environment for every Flower process privfed starts: no telemetry, no update check, no
#: dependency installation (privfed is installed already; nothing is downloaded).
QUIET_ENV = {
    "FLWR_TELEMETRY_ENABLED": "0",
    "FLWR_DISABLE_UPDATE_CHECK": "1",
    "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1",
}
APP_NAME = "privfed-flower"
CONNECTION = "privfed"


def executable(name: str) -> str:
    """Flower's console script next to this Python (the venv), else on PATH."""
    local = Path(sys.executable).with_name(name)
    if local.exists():
        return str(local)
    found = shutil.which(name)
    if not found:
        raise PrivfedError(f"{name}: Flower's executable is not installed; pip install 'privfed[flower]'")
    return found


def flower_env(flwr_home: str | Path | None = None, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(QUIET_ENV)
    # Flower starts its helpers (flower-superexec, flwr-serverapp, flwr-clientapp) by name.
    scripts = str(Path(sys.executable).parent)
    if scripts not in env.get("PATH", "").split(os.pathsep):
        env["PATH"] = scripts + os.pathsep + env.get("PATH", "")
    if flwr_home is not None:
        env["FLWR_HOME"] = str(flwr_home)
    env.update(extra or {})
    return env


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


# ---- command lines ----------------------------------------------------------------------
@dataclass(frozen=True)
class TLSOptions:
    """Flower's TLS flags. ``insecure`` (plain HTTP) is for loopback tests only."""

    insecure: bool = False
    certfile: str | None = None
    keyfile: str | None = None
    ca_certfile: str | None = None

    def check(self, who: str) -> None:
        if not self.insecure and not (self.certfile and self.keyfile):
            raise PrivfedError(
                f"privfed flower {who}: give --ssl-certfile and --ssl-keyfile for TLS, "
                "or --insecure for a loopback test (traffic is then unencrypted)"
            )


def superlink_command(host: str = "127.0.0.1", port: int = 9093, tls: TLSOptions = TLSOptions(insecure=True),
                      enable_supernode_auth: bool = False, database: str | None = None) -> list[str]:
    tls.check("superlink")
    command = [executable("flower-superlink"), "--host", host, "--port", str(port),
               "--disable-runtime-dependency-installation"]
    if tls.insecure:
        command.append("--insecure")
    else:
        command += ["--ssl-certfile", tls.certfile, "--ssl-keyfile", tls.keyfile]
        if tls.ca_certfile:
            command += ["--ssl-ca-certfile", tls.ca_certfile]
    if enable_supernode_auth:
        command.append("--enable-supernode-auth")
    if database:
        command += ["--database", database]
    return command


def node_config_string(values: Mapping[str, Any]) -> str:
    """``--node-config`` syntax: space-separated key=value, strings quoted."""
    parts = []
    for key, value in values.items():
        if value is None:
            continue
        if isinstance(value, str):
            parts.append(f'{key}="{value}"')
        else:
            parts.append(f"{key}={value}")
    return " ".join(parts)


def supernode_command(superlink: str, node_config: Mapping[str, Any], port: int = 9094,
                      insecure: bool = False, root_certificates: str | None = None,
                      auth_private_key: str | None = None, max_wait_time: float | None = None) -> list[str]:
    if not insecure and not root_certificates:
        raise PrivfedError(
            "privfed flower supernode: give --root-certificates (the CA that signed the SuperLink's certificate), "
            "or --insecure for a loopback test"
        )
    command = [executable("flower-supernode"), "--superlink", superlink, "--host", "127.0.0.1", "--port", str(port)]
    command += ["--insecure"] if insecure else ["--root-certificates", root_certificates]
    if auth_private_key:
        command += ["--auth-supernode-private-key", auth_private_key]
    if max_wait_time is not None:
        command += ["--max-wait-time", str(max_wait_time)]
    config = node_config_string(node_config)
    if config:
        command += ["--node-config", config]
    return command


# ---- the app folder and the connection ---------------------------------------------------
def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def write_app(folder: str | Path, run_config: Mapping[str, Any]) -> Path:
    """A Flower app folder: only a pyproject.toml; its components are privfed's installed apps."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lines = [
        "# Written by 'privfed flower'. The apps live in the installed privfed package;",
        "# edit [tool.flwr.app.config] or override it with flwr run --run-config.",
        "[build-system]", 'requires = ["hatchling"]', 'build-backend = "hatchling.build"', "",
        "[project]", f'name = "{APP_NAME}"', f'version = "{__version__}"',
        'description = "privfed federated training on Flower"', 'license = "Apache-2.0"', "dependencies = []", "",
        "[tool.flwr.app]", 'publisher = "privfed"', "",
        "[tool.flwr.app.components]", f'serverapp = "{SERVER_APP_REF}"', f'clientapp = "{CLIENT_APP_REF}"', "",
        "[tool.flwr.app.config]",
    ]
    lines += [f'"{key}" = {_toml_value(value)}' for key, value in run_config.items() if value is not None]
    atomic_write_text(folder / "pyproject.toml", "\n".join(lines) + "\n")
    return folder


def write_connection(flwr_home: str | Path, address: str, insecure: bool = False,
                     root_certificates: str | None = None, name: str = CONNECTION) -> Path:
    """``$FLWR_HOME/config.toml`` with one SuperLink connection (the Control API address)."""
    home = Path(flwr_home)
    home.mkdir(parents=True, exist_ok=True)
    lines = ["[superlink]", f'default = "{name}"', "", f"[superlink.{name}]", f'address = "{address}"']
    if insecure:
        lines.append("insecure = true")
    if root_certificates:
        lines.append(f'root-certificates = "{root_certificates}"')
    path = home / "config.toml"
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path


def run_command(app_folder: str | Path, run_config: Mapping[str, Any] | None = None, stream: bool = True,
                connection: str = CONNECTION) -> list[str]:
    command = [executable("flwr"), "run", str(app_folder), connection]
    if run_config:
        command += ["--run-config", " ".join(f"{k}={_toml_value(v)}" for k, v in run_config.items() if v is not None)]
    if stream:
        command.append("--stream")
    return command


# ---- processes ----------------------------------------------------------------------------
@dataclass
class FlowerProcess:
    """A Flower executable started in its own session, so stopping it stops its children."""

    name: str
    command: list[str]
    log_path: Path
    env: dict[str, str] = field(repr=False, default_factory=dict)
    process: subprocess.Popen | None = field(default=None, repr=False)

    def start(self) -> FlowerProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.log_path, "ab")
        self.process = subprocess.Popen(self.command, stdout=handle, stderr=subprocess.STDOUT, env=self.env,
                                        start_new_session=True)
        handle.close()
        return self

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
        """Signal its process group, wait, then SIGKILL what is left (and Flower's detached helpers)."""
        if self.process is None:
            return
        helpers = _helpers_of(self.process.pid)
        _signal_group(self.process.pid, sig)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _signal_group(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=timeout)
        for pid in helpers:
            _signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for pid in helpers:
            while _exists(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if _exists(pid):
                _signal_group(pid, signal.SIGKILL)


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def _exists(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            return handle.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def _helpers_of(pid: int) -> list[int]:
    """Flower's SuperExec is started detached (its own session) with ``--parent-pid PID``."""
    found = []
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else []:
        if not entry.name.isdigit():
            continue
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"--parent-pid" in args:
            index = args.index(b"--parent-pid")
            if index + 1 < len(args) and args[index + 1] == str(pid).encode():
                found.append(int(entry.name))
    return found


def wait_for_port(host: str, port: int, timeout: float, process: FlowerProcess | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and not process.alive():
            raise PrivfedError(f"{process.name} exited early; its log ({process.log_path}):\n{process.log()[-2000:]}")
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.settimeout(0.5)
            if sock.connect_ex((host, port)) == 0:
                return
        time.sleep(0.2)
    raise PrivfedError(f"nothing listens on {host}:{port} after {timeout:g}s")


def stop_all(processes: Sequence[FlowerProcess]) -> None:
    for process in reversed(list(processes)):
        process.stop()
