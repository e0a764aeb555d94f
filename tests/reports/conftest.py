"""A hand-built run directory that follows docs/run-directory.md field for field."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def png_grid(seed: int, n: int = 4, size: int = 32) -> bytes:
    """A 1 x n grid of size x size grey images, as PNG bytes."""
    rng = np.random.default_rng(seed)
    pixels = (rng.random((size, size * n)) * 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode="L").save(buffer, format="PNG")
    return buffer.getvalue()


def _write(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2), encoding="utf-8")


def build_run(
    root: Path,
    name: str = "run-fedavg",
    algorithm: str = "fedavg",
    dp: bool = False,
    accuracy: tuple[float, float] = (0.70, 0.90),
    psnr: float | None = 31.5,
    ssim: float = 0.92,
    auc: float | None = 0.61,
    auc_ci: tuple[float, float] = (0.58, 0.64),
    summary: bool = True,
    classes: tuple[str, str] = ("normal", "tumor"),
    sample_ids: tuple[str, ...] = ("img_0001", "img_0002", "img_0003", "img_0004"),
    image_name: str = "round1-client0-knowledge_none",
    bytes_per_client: int = 4_198_400,
) -> Path:
    run = root / name
    run.mkdir(parents=True)
    full_model = algorithm != "partial"
    acc_key = "global" if full_model else "server"
    dp_block = {"level": "sample" if dp else "none", "noise_multiplier": 1.1 if dp else 0.0,
                "max_grad_norm": 1.0 if dp else None, "target_epsilon": 8.0 if dp else None, "delta": 1e-5}
    _write(run / "config.json", {
        "privfed_version": "0.1.0", "format_version": 1,
        "command": f"privfed train --algorithm {algorithm} --clients 2 --rounds 2 --out {name}"
                   + (" --dp sample --noise-multiplier 1.1" if dp else ""),
        "algorithm": algorithm, "archs": ["simple", "mobilenet_v3_small"], "server_arch": "simple",
        "num_clients": 2, "clients_per_round": 2, "rounds": 2, "local_epochs": 1, "batch_size": 8,
        "lr": 0.01, "optimizer": "sgd", "momentum": 0.9, "mu": 0.0, "aggregation": "mean",
        "server_epochs": 1, "common_width": 64, "shared_width": 64, "image_size": 32, "num_classes": 2,
        "classes": list(classes), "data": "embedded", "plan": {"kind": "iid"}, "seed": 0,
        "observe": [1], "device": "cpu", "dp": dp_block,
    })
    _write(run / "split.json", {
        "format_version": 1, "seed": 0, "plan": {"kind": "iid"}, "classes": list(classes),
        "clients": [list(sample_ids[:2]) + ["img_0100"], list(sample_ids[2:]) + ["img_0101", "img_0102"]],
        "server": ["img_0200"], "test": ["img_0300", "img_0301"],
    })
    lines = []
    for r, acc in enumerate(accuracy, 1):
        clients = [{"id": k, "arch": ["simple", "mobilenet_v3_small"][k], "train_loss": 0.7 - 0.1 * r - 0.05 * k,
                    "test_accuracy": acc - 0.02 * k, "test_auc": min(acc + 0.05, 1.0), "bytes_up": bytes_per_client,
                    "bytes_down": bytes_per_client, "epsilon": 1.5 * r if dp else None} for k in range(2)]
        lines.append({"round": r, "algorithm": algorithm, "clients": clients,
                      f"{acc_key}_test_accuracy": acc, f"{acc_key}_test_auc": min(acc + 0.05, 1.0),
                      "bytes_up": 2 * bytes_per_client, "bytes_down": 2 * bytes_per_client, "seconds": 1.5})
    (run / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    if summary:
        last = lines[-1]
        _write(run / "summary.json", {
            "algorithm": algorithm, "rounds": 2, "final_round": 2, "clients": last["clients"],
            f"{acc_key}_test_accuracy": accuracy[-1], f"{acc_key}_test_auc": min(accuracy[-1] + 0.05, 1.0),
            "mean_client_test_accuracy": accuracy[-1] - 0.01, "bytes_up_total": 4 * bytes_per_client,
            "bytes_down_total": 4 * bytes_per_client, "bytes_per_round": 4 * bytes_per_client,
            "wall_seconds": 3.0, "dp_level": dp_block["level"], "epsilon": 3.0 if dp else None,
            "delta": 1e-5, "noise_multiplier": dp_block["noise_multiplier"], "max_grad_norm": dp_block["max_grad_norm"],
            "privfed_version": "0.1.0", "format_version": 1,
        })
    target = "full-model" if full_model else "shared-layer"
    if psnr is not None:
        folder = run / "attacks" / f"inversion-{target}"
        folder.mkdir(parents=True)
        (folder / f"{image_name}-reconstructions.png").write_bytes(png_grid(1))
        (folder / f"{image_name}-originals.png").write_bytes(png_grid(2))
        samples = [{"sample_id": sid, "label": i % 2, "predicted_label": i % 2, "psnr": psnr - i, "ssim": ssim - 0.01 * i,
                    "mse": 0.001 * (i + 1)} for i, sid in enumerate(sample_ids)]
        _write(run / "attacks" / f"inversion-{target}.json", {"format_version": 1, "run": name, "target": target, "psnr_cap": 60.0, "results": [{
            "attack": "inversion", "method": "geiping" if full_model else "shared-linear", "target": target,
            "knowledge": "none", "source": "observed", "round": 1, "client": 0, "batch_size": 4, "local_steps": 1, "n_trials": 1,
            "psnr_mean": psnr - 1.5, "psnr_max": psnr, "ssim_mean": ssim - 0.015, "ssim_max": ssim, "mse_mean": 0.0025,
            "label_accuracy": 1.0, "feature_rel_error": None if full_model else 0.01, "seconds": 2.0, "iterations": 50,
            "priors": ["total-variation"], "threat_model": "Honest-but-curious server that sees one client update.",
            "images": {"reconstructions": f"inversion-{target}/{image_name}-reconstructions.png",
                       "originals": f"inversion-{target}/{image_name}-originals.png"},
            "samples": samples}]})
    if auc is not None:
        fpr = [0.0, 0.001, 0.01, 0.1, 0.5, 1.0]
        tpr = [0.0, 0.004, 0.03, 0.2, 0.65, 1.0]
        _write(run / "attacks" / f"membership-{target}.json", {"format_version": 1, "run": name, "target": target, "results": [{
            "attack": "membership", "method": "loss", "target": target, "knowledge": "init", "model": "client_0",
            "n_members": 200, "n_nonmembers": 200, "auc": auc, "auc_ci": list(auc_ci), "tpr_at_1pct_fpr": 0.03,
            "tpr_at_1pct_fpr_ci": [0.01, 0.06], "tpr_at_01pct_fpr": 0.004, "tpr_at_01pct_fpr_ci": [0.0, 0.02],
            "balanced_accuracy": 0.57, "balanced_accuracy_ci": [0.53, 0.61], "epsilon_lower_bound": 0.4,
            "epsilon_claimed": 3.0 if dp else None, "delta": 1e-5, "seconds": 0.5,
            "threat_model": "Server with the client's initial weights scores candidate images by loss.",
            "roc": {"fpr": fpr, "tpr": tpr}}],
            "skipped": [{"method": "lira", "knowledge": "none", "model": "client_1", "reason": "needs 8 shadow models"}]})
    return run


@pytest.fixture
def make_run(tmp_path):
    def factory(name: str = "run-fedavg", **kwargs) -> Path:
        return build_run(tmp_path / "runs", name=name, **kwargs)
    return factory


# ---------------------------------------------------------------------------------------
# Headless Chromium driven over the DevTools protocol on a pipe (--remote-debugging-pipe:
# NUL-separated JSON on fds 3/4), so no websocket library or extra Python package is needed.

import fcntl
import os
import select
import shutil
import subprocess
import time


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


class DevToolsPipe:
    """Minimal Chrome DevTools Protocol client over --remote-debugging-pipe."""

    def __init__(self, binary: str, profile: Path, timeout: float = 60.0):
        self.timeout = timeout
        to_child_r, self._to_child_w = os.pipe()
        self._from_child_r, from_child_w = os.pipe()

        def wire_fds() -> None:  # runs in the child before exec: its fd 3 reads, fd 4 writes
            # Move both ends above 3/4 first (either may *be* fd 3 or 4), then dup2, which
            # also clears close-on-exec on the targets.
            high_r = fcntl.fcntl(to_child_r, fcntl.F_DUPFD, 64)
            high_w = fcntl.fcntl(from_child_w, fcntl.F_DUPFD, 64)
            os.dup2(high_r, 3)
            os.dup2(high_w, 4)

        self.process = subprocess.Popen(
            [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--no-default-browser-check", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", "--disable-extensions", "--disable-dev-shm-usage", "--mute-audio",
             f"--user-data-dir={profile}", "--remote-debugging-pipe", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=wire_fds, close_fds=False,
        )
        os.close(to_child_r)
        os.close(from_child_w)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict] = []

    def _read_message(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no answer from chromium over the DevTools pipe")
            ready, _, _ = select.select([self._from_child_r], [], [], remaining)
            if ready:
                chunk = os.read(self._from_child_r, 1 << 20)
                if not chunk:
                    raise RuntimeError("chromium closed the DevTools pipe")
                self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(raw)

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_child_w, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str) -> dict:
        for event in self.events:
            if event.get("method") == method:
                return event
        deadline = time.monotonic() + self.timeout
        while True:
            event = self._read_message(deadline)
            self.events.append(event)
            if event.get("method") == method:
                return event

    def drain(self, seconds: float) -> None:
        """Collect events arriving within ``seconds`` (late console messages, requests)."""
        deadline = time.monotonic() + seconds
        try:
            while True:
                self.events.append(self._read_message(deadline))
        except TimeoutError:
            pass

    def close(self) -> None:
        try:
            self.send("Browser.close")
        except Exception:
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        for fd in (self._to_child_w, self._from_child_r):
            try:
                os.close(fd)
            except OSError:
                pass


_PAGE_FACTS = """JSON.stringify({
  images: Array.from(document.images).map(i => ({alt: i.alt, complete: i.complete, width: i.naturalWidth,
                                                 scheme: i.src.split(':')[0]})),
  scripts: document.getElementsByTagName('script').length,
  banner: (() => { const b = document.getElementById('originals-status');
                   return b ? {text: b.textContent, top: b.getBoundingClientRect().top,
                               bottom: b.getBoundingClientRect().bottom} : null; })(),
  viewportHeight: window.innerHeight,
  bodyText: document.body.innerText,
})"""


def open_in_chromium(binary: str, html: Path, workdir: Path, width: int = 1280, height: int = 900) -> dict:
    """Load ``html`` from file:// and return console errors, requests, image facts and screenshots."""
    import base64

    browser = DevToolsPipe(binary, workdir / "profile")
    try:
        target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Runtime", "Log", "Network", "Page"):
            browser.send(f"{domain}.enable", session=session)
        browser.send("Emulation.setDeviceMetricsOverride",
                     {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}, session=session)
        browser.send("Page.navigate", {"url": html.resolve().as_uri()}, session=session)
        browser.wait_for("Page.loadEventFired")
        browser.drain(0.5)
        facts = json.loads(browser.send("Runtime.evaluate", {"expression": _PAGE_FACTS, "returnByValue": True},
                                        session=session)["result"]["value"])
        first_screen = browser.send("Page.captureScreenshot", {"format": "png"}, session=session)["data"]
        size = browser.send("Page.getLayoutMetrics", session=session)["cssContentSize"]
        full = browser.send("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": size["width"], "height": min(size["height"], 16000), "scale": 1}},
            session=session)["data"]
    finally:
        browser.close()
    events = browser.events
    errors = [e["params"] for e in events if e.get("method") == "Runtime.exceptionThrown"]
    errors += [e["params"] for e in events
               if e.get("method") == "Runtime.consoleAPICalled" and e["params"].get("type") in ("error", "warning", "assert")]
    errors += [e["params"]["entry"] for e in events
               if e.get("method") == "Log.entryAdded" and e["params"]["entry"].get("level") in ("error", "warning")]
    requests = [e["params"]["request"]["url"] for e in events if e.get("method") == "Network.requestWillBeSent"]
    (workdir / "first-screen.png").write_bytes(base64.b64decode(first_screen))
    (workdir / "full-page.png").write_bytes(base64.b64decode(full))
    return {"errors": errors, "requests": requests, **facts,
            "first_screen": workdir / "first-screen.png", "full_page": workdir / "full-page.png"}


@pytest.fixture(scope="session")
def chromium() -> str:
    binary = find_chromium()
    if binary is None:
        script = Path(__file__).resolve().parents[2] / "scripts" / "ensure_chromium.sh"
        if script.is_file():
            subprocess.run(["bash", str(script)], check=False, timeout=600, capture_output=True)
            binary = find_chromium()
    if binary is None:
        pytest.skip("headless chromium not found and scripts/ensure_chromium.sh could not install it (needs apt-get as root)")
    return binary


@pytest.fixture
def open_in_browser(chromium):
    """``open_in_browser(html_path, workdir) -> facts``: the page as headless Chromium saw it."""
    def opener(html: Path, workdir: Path) -> dict:
        return open_in_chromium(chromium, html, workdir)
    return opener
