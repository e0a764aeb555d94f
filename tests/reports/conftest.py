"""A hand-built run directory that follows docs/run-directory.md field for field."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

POSITIONS = ("realistic", "worst-case", "oracle")
#: test images in split.json (the accuracy interval is computed over them)
TEST_IMAGES = 200


def png_grid(seed: int, n: int = 4, size: int = 32) -> bytes:
    """A one-row strip of n grey size x size images laid out as attacks/inversion/grids.py does
    (2-pixel white border around and between them), as PNG bytes."""
    rng = np.random.default_rng(seed)
    pad = 2
    strip = np.full((size + 2 * pad, n * (size + pad) + pad), 255, np.uint8)
    for i in range(n):
        left = pad + i * (size + pad)
        strip[pad:pad + size, left:left + size] = (rng.random((size, size)) * 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(strip, mode="L").save(buffer, format="PNG")
    return buffer.getvalue()


def _write(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2), encoding="utf-8")


def _interval(value: float, half: float) -> list[float]:
    return [value - half, value + half]


def inversion_row(target: str, method: str, knowledge: str, source: str, gain: float, sample_ids, images: dict,
                  ident: float = 0.0, same_as: str | None = None, threat: str | None = None) -> dict:
    """One inversion result: per-row 95% intervals (half-width 2 dB), a null attack 2 dB under the mean."""
    position = "oracle" if knowledge == "full" else ("worst-case" if source == "replay" else "realistic")
    null = 17.0
    samples = [{"sample_id": sid, "label": i % 2, "predicted_label": i % 2, "psnr": null + gain + 0.5 - i * 0.3,
                "ssim": 0.5, "mse": 0.01, "identification_rank": 1 if i < round(ident * len(sample_ids)) else 5 + i}
               for i, sid in enumerate(sample_ids)]
    row = {
        "attack": "inversion", "method": method, "target": target, "knowledge": knowledge, "position": position,
        "round": 1, "client": 0, "source": source, "arch": "simple", "batch_size": 1 if source == "replay" else 8,
        "local_steps": 1, "num_samples": 3, "trials": len(sample_ids), "dp_level": "none", "n_trials": len(sample_ids),
        "psnr_mean": null + gain, "psnr_max": null + gain + 0.5, "ssim_mean": 0.5, "ssim_max": 0.6, "mse_mean": 0.01,
        "null_method": "server-mean-image", "null_psnr_mean": null, "null_psnrs": [null] * len(sample_ids),
        "null_identification_ranks": [7] * len(sample_ids), "gain_db": gain, "gain_db_ci": _interval(gain, 2.0),
        "gain_paired": source == "replay", "identification_top1": ident, "identification_top1_ci": [max(0.0, ident - 0.3), min(1.0, ident + 0.4)],
        "identification_chance": 0.125, "identification_pool": 8, "null_identification_top1": 0.0,
        "null_identification_top1_ci": [0.0, 0.4], "baseline_psnr_mean": null, "psnr_gain_over_baseline": gain,
        "label_accuracy": 1.0, "feature_rel_error": None, "seconds": 1.0, "iterations": 50, "priors": ["tv"],
        "prior_fit": {"channels": 1}, "paper": "test", "images": images, "samples": samples,
        "threat_model": threat or f"The server inverts client 0's {target} update of round 1 ({source}); knowledge {knowledge}.",
    }
    if same_as:
        row["same_as_knowledge"] = same_as
    return row


def inversion_block(row: dict, leaks: bool | None = None, rows: int = 2) -> dict:
    """The familywise positions block of a row: intervals widened to +-3 dB."""
    gain = row["gain_db"]
    ci = _interval(gain, 3.0)
    return {"method": row["method"], "knowledge": row["knowledge"], "source": row["source"], "round": 1, "client": 0,
            "psnr_mean": row["psnr_mean"], "null_psnr_mean": row["null_psnr_mean"], "gain_db": gain, "gain_db_ci": ci,
            "identification_top1": row["identification_top1"], "identification_top1_ci": row["identification_top1_ci"],
            "identification_chance": 0.125, "null_identification_top1": 0.0, "null_identification_top1_ci": [0.0, 0.5],
            "n_images": row["n_trials"], "images": row["images"], "leaks": ci[0] > 0 if leaks is None else leaks,
            "rows": rows, "familywise_alpha": 0.05 / rows}


def membership_row(target: str, method: str, knowledge: str, model: str, auc: float, auc_ci, same_as: str | None = None,
                   threat: str | None = None) -> dict:
    row = {
        "attack": "membership", "method": method, "target": target, "knowledge": knowledge,
        "position": "oracle" if knowledge == "full" else "realistic", "model": model, "n_members": 200, "n_nonmembers": 200,
        "auc": auc, "auc_ci": list(auc_ci), "tpr_at_1pct_fpr": 0.03, "tpr_at_1pct_fpr_ci": [0.01, 0.06],
        "tpr_at_01pct_fpr": 0.004, "tpr_at_01pct_fpr_ci": [0.0, 0.02], "balanced_accuracy": 0.57,
        "balanced_accuracy_ci": [0.53, 0.61], "epsilon_lower_bound": 0.0, "epsilon_claimed": None, "delta": 1e-5,
        "seconds": 0.5, "interval_method": "delong",
        "threat_model": threat or f"Server scores candidate images by {method}. Target: {target}. Knowledge {knowledge}.",
        "roc": {"fpr": [0.0, 0.005, 0.01, 0.1, 0.5, 1.0], "tpr": [0.0, 0.01, 0.03, 0.2, 0.65, 1.0]},
    }
    if same_as:
        row["same_as_knowledge"] = same_as
    return row


def membership_block(row: dict, epsilon: float = 0.0) -> dict:
    lo, hi = row["auc_ci"]
    ci = [lo - 0.02, hi + 0.02]
    return {"method": row["method"], "knowledge": row["knowledge"], "model": row["model"], "auc": row["auc"], "auc_ci": ci,
            "tpr_at_1pct_fpr": 0.03, "tpr_at_01pct_fpr": 0.004, "epsilon_lower_bound": epsilon, "n_members": 200,
            "leaks": ci[0] > 0.5, "rows": 2, "familywise_alpha": 0.025}


def write_attacks(run: Path, name: str, algorithm: str, target: str, realistic_gain: float, worst_gain: float,
                  auc: float, auc_ci, sample_ids, image_name: str, headline: bool = True, ident: float = 0.0) -> None:
    """inversion-<target>.json and membership-<target>.json with rows, positions, commands and PNG strips."""
    full_model = algorithm in ("fedavg", "fedprox", "fednova")
    folder = f"inversion-{target}"
    method = "analytic" if target == "full-model" else "shared-analytic"

    def strips(knowledge: str, source: str, seed: int) -> dict:
        """The three PNG strips of one attacked row (copies of a row keep its images, as the runner does)."""
        stem = f"{image_name}-{knowledge}-{source}"
        for kind, offset in (("", 1), ("-originals", 2), ("-null", 3)):
            path = run / "attacks" / folder / f"{stem}{kind}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(png_grid(seed + offset, n=len(sample_ids)))
        return {"reconstructions": f"{folder}/{stem}.png", "originals": f"{folder}/{stem}-originals.png",
                "null": f"{folder}/{stem}-null.png"}

    rows = []
    for seed, (source, gain) in enumerate((("observed", realistic_gain), ("replay", worst_gain))):
        rows.append(inversion_row(target, method, "none", source, gain, sample_ids, strips("none", source, 10 * seed),
                                  ident=ident))
        if full_model:  # the clients start from the global model: init and full are the same attacker
            rows += [dict(rows[-1], knowledge=k, same_as_knowledge="none", position="oracle" if k == "full" else
                          rows[-1]["position"]) for k in ("init", "full")]
        else:
            rows.append(inversion_row(target, method, "init", source, gain - 1.0, sample_ids,
                                      strips("init", source, 10 * seed + 5)))
            rows.append(dict(rows[-1], knowledge="full", same_as_knowledge="init", position="oracle"))
    by = {(r["knowledge"], r["source"]): r for r in rows}
    positions = {"realistic": inversion_block(by[("none", "observed")]),
                 "worst-case": inversion_block(by[("none", "replay")]),
                 "oracle": inversion_block(dict(by[("full", "replay")], gain_db=by[("full", "replay")]["gain_db"]), rows=4)}
    commands = [f"privfed attack {name} --kind inversion --target {target} --round 1 --client 0 --max-images 4",
                f"privfed attack {name} --kind inversion --target {target} --round 1 --client 0 --batch-size 1 --local-steps 1 --trials 4"]
    _write(run / "attacks" / f"inversion-{target}.json", {
        "format_version": 1, "run": name, "target": target, "server_receives_target": headline, "psnr_cap": 100.0,
        "commands": commands, "positions": positions, "results": rows})
    members = [membership_row(target, "loss", "none", "client_0", auc, auc_ci),
               membership_row(target, "update-cosine", "none", "client_0", auc - 0.01, (auc_ci[0] - 0.01, auc_ci[1] - 0.01))]
    if full_model:
        members += [dict(members[-1], knowledge=k, same_as_knowledge="none", position="oracle" if k == "full" else "realistic")
                    for k in ("init", "full")]
    else:
        members += [membership_row(target, m, k, "client_0", auc, auc_ci) for k in ("init", "full") for m in ("loss", "update-cosine")]
    oracle = next(r for r in members if r["knowledge"] == "full")
    _write(run / "attacks" / f"membership-{target}.json", {
        "format_version": 1, "run": name, "target": target, "server_receives_target": headline,
        "commands": [f"privfed attack {name} --kind membership --target {target} --reference-models 2 --client 0"],
        "positions": {"realistic": membership_block(members[0]), "oracle": membership_block(oracle)},
        "results": members,
        "skipped": [{"method": "lira", "knowledge": "none", "model": "client_1", "reason": "needs 8 shadow models"}]})


def build_run(
    root: Path,
    name: str = "run-fedavg",
    algorithm: str = "fedavg",
    dp: bool = False,
    accuracy: tuple[float, float] = (0.70, 0.90),
    realistic_gain: float | None = -0.5,
    worst_gain: float = 6.0,
    auc: float | None = 0.61,
    auc_ci: tuple[float, float] = (0.58, 0.64),
    summary: bool = True,
    classes: tuple[str, str] = ("normal", "tumor"),
    sample_ids: tuple[str, ...] = ("img_0001", "img_0002", "img_0003", "img_0004"),
    image_name: str = "r1-c0",
    bytes_per_client: int = 4_198_400,
    majority_share: float = 0.52,
    ident: float = 0.0,
) -> Path:
    """A finished run of ``algorithm``; ``realistic_gain=None`` leaves out every attack file."""
    run = root / name
    run.mkdir(parents=True)
    full_model = algorithm in ("fedavg", "fedprox", "fednova", "centralized")
    acc_key = "global" if full_model else "server"
    dp_block = {"level": "sample" if dp else "none", "noise_multiplier": 1.1 if dp else None,
                "max_grad_norm": 1.0, "target_epsilon": 3.0 if dp else None, "delta": 1e-5 if dp else None,
                "neighbouring": "add-remove" if dp else None}
    _write(run / "config.json", {
        "privfed_version": "0.1.0", "format_version": 1,
        "command": f"privfed train --algorithm {algorithm} --clients 2 --rounds 2 --out {name}"
                   + (" --dp-level sample --target-epsilon 3" if dp else ""),
        "algorithm": algorithm, "archs": ["simple", "mobilenet_v3_small"], "server_arch": "simple",
        "num_clients": 2, "clients_per_round": 2, "rounds": 2, "local_epochs": [1, 1], "batch_size": 8,
        "lr": 0.01, "optimizer": "sgd", "momentum": 0.9, "mu": 0.0, "aggregation": "mean",
        "server_epochs": 1, "common_width": 64, "shared_width": [64, 64], "image_size": 32, "num_classes": 2,
        "classes": list(classes), "data": "embedded",
        "plan": {"kind": "sizes", "client_size": 3, "server_size": 1, "test_size": 2, "clients_fraction": None,
                 "server_fraction": None, "test_fraction": None, "dirichlet_alpha": None},
        "seed": 0, "observe": [1], "device": "cpu", "dp": dp_block,
    })
    _write(run / "split.json", {
        "format_version": 1, "seed": 0, "num_clients": 2, "classes": list(classes),
        "plan": {"kind": "sizes", "client_size": 3, "server_size": 1, "test_size": 2, "clients_fraction": None,
                 "server_fraction": None, "test_fraction": None, "dirichlet_alpha": None},
        "clients": [list(sample_ids[:2]) + ["img_0100"], list(sample_ids[2:]) + ["img_0101", "img_0102"]],
        "server": ["img_0200"], "test": [f"img_{3000 + i}" for i in range(TEST_IMAGES)],
    })
    lines = []
    for r, acc in enumerate(accuracy, 1):
        clients = [{"id": k, "arch": ["simple", "mobilenet_v3_small"][k], "train_loss": 0.7 - 0.1 * r - 0.05 * k,
                    "test_accuracy": acc - 0.02 * k, "test_auc": min(acc + 0.05, 1.0), "test_balanced_accuracy": acc - 0.03 * k,
                    "test_majority_share": majority_share, "bytes_up": 0 if algorithm in ("local", "centralized") else bytes_per_client,
                    "bytes_down": 0 if algorithm in ("local", "centralized") else bytes_per_client,
                    "epsilon": 1.5 * r if dp else None, "num_samples": 3} for k in range(2)]
        line = {"round": r, "algorithm": algorithm, "clients": clients,
                f"{acc_key}_test_accuracy": acc, f"{acc_key}_test_auc": min(acc + 0.05, 1.0),
                f"{acc_key}_test_balanced_accuracy": acc - 0.01, f"{acc_key}_test_majority_share": majority_share,
                "bytes_up": sum(c["bytes_up"] for c in clients), "bytes_down": sum(c["bytes_down"] for c in clients),
                "seconds": 1.5}
        lines.append(line)
    (run / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    if summary:
        last = lines[-1]
        _write(run / "summary.json", {
            "algorithm": algorithm, "rounds": 2, "final_round": 2, "clients": last["clients"],
            **{k: v for k, v in last.items() if k.startswith(acc_key)},
            "mean_client_test_accuracy": accuracy[-1] - 0.01, "mean_client_test_auc": min(accuracy[-1] + 0.04, 1.0),
            "mean_client_test_balanced_accuracy": accuracy[-1] - 0.02, "mean_client_test_majority_share": majority_share,
            "bytes_up_total": 2 * last["bytes_up"], "bytes_down_total": 2 * last["bytes_down"],
            "bytes_per_round": last["bytes_up"] + last["bytes_down"], "wall_seconds": 3.0,
            "dp_level": dp_block["level"], "dp_neighbouring": dp_block["neighbouring"], "epsilon": 2.9 if dp else None,
            "delta": dp_block["delta"], "noise_multiplier": dp_block["noise_multiplier"], "max_grad_norm": 1.0 if dp else None,
            "privfed_version": "0.1.0", "format_version": 1,
        })
    if algorithm not in ("local", "centralized") and realistic_gain is not None:
        target = "full-model" if full_model else "shared-layer"
        write_attacks(run, name, algorithm, target, realistic_gain, worst_gain, auc if auc is not None else 0.5,
                      auc_ci, sample_ids, image_name, ident=ident)
        if auc is None:
            (run / "attacks" / f"membership-{target}.json").unlink()
    return run


@pytest.fixture
def make_run(tmp_path):
    def factory(name: str = "run-fedavg", **kwargs) -> Path:
        return build_run(tmp_path / "runs", name=name, **kwargs)
    return factory


@pytest.fixture
def make_study(make_run):
    """The shape of `privfed compare`'s default study: FedAvg and partial-weight, local and centralized baselines.

    FedAvg leaks in the worst case (+6 dB over the null, familywise [+3, +9]); partial-weight does not."""
    def factory(**fedavg) -> list[Path]:
        return [make_run("fedavg", **fedavg),
                make_run("partial", algorithm="partial", realistic_gain=-1.0, worst_gain=-1.0, auc=0.52,
                         auc_ci=(0.47, 0.57), accuracy=(0.7, 0.88)),
                make_run("local", algorithm="local", realistic_gain=None, auc=None, accuracy=(0.6, 0.8)),
                make_run("centralized", algorithm="centralized", realistic_gain=None, auc=None, accuracy=(0.8, 0.93))]
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
  answer: (() => { const a = document.getElementById('answer-sentences');
                   return a ? {top: a.getBoundingClientRect().top, bottom: a.getBoundingClientRect().bottom} : null; })(),
  utility: (() => { const u = document.getElementById('utility');
                    return u ? {top: u.getBoundingClientRect().top, bottom: u.getBoundingClientRect().bottom} : null; })(),
  viewportHeight: window.innerHeight,
  scrollHeight: document.body.scrollHeight,
  bodyText: document.body.innerText,
})"""

# Opens every <details>, then lists elements whose box reaches past the page's right edge (or that
# scroll sideways inside themselves): what a reader would have to scroll horizontally to see.
_OVERFLOW = """(() => {
  document.querySelectorAll('details').forEach(d => { d.open = true; });
  const width = document.documentElement.clientWidth;
  const out = [];
  for (const e of document.querySelectorAll('body *')) {
    const box = e.getBoundingClientRect();
    if (box.width === 0 && box.height === 0) continue;
    if (box.right > width + 0.5 || e.scrollWidth > e.clientWidth + 1 && getComputedStyle(e).overflowX !== 'visible')
      out.push(e.tagName.toLowerCase() + (e.className ? '.' + e.className : '') + ' right=' + Math.round(box.right));
  }
  return JSON.stringify({width: width, documentWidth: document.documentElement.scrollWidth, overflowing: out.slice(0, 20),
                         openHeight: document.body.scrollHeight});
})()"""


def open_in_chromium(binary: str, html: Path, workdir: Path, width: int = 1400, height: int = 900,
                     overflow_width: int = 1000, pdf: bool = False) -> dict:
    """Load ``html`` from file:// at width x height; return console errors, requests, image facts,
    the page height, what overflows at ``overflow_width`` (every <details> opened) and screenshots."""
    import base64

    browser = DevToolsPipe(binary, workdir / "profile")
    try:
        target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Runtime", "Log", "Network", "Page"):
            browser.send(f"{domain}.enable", session=session)

        def metrics(w: int) -> None:
            browser.send("Emulation.setDeviceMetricsOverride",
                         {"width": w, "height": height, "deviceScaleFactor": 1, "mobile": False}, session=session)

        def evaluate(expression: str) -> dict:
            return json.loads(browser.send("Runtime.evaluate", {"expression": expression, "returnByValue": True},
                                           session=session)["result"]["value"])

        metrics(width)
        browser.send("Page.navigate", {"url": html.resolve().as_uri()}, session=session)
        browser.wait_for("Page.loadEventFired")
        browser.drain(0.5)
        facts = evaluate(_PAGE_FACTS)
        first_screen = browser.send("Page.captureScreenshot", {"format": "png"}, session=session)["data"]
        full = browser.send("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": width, "height": min(facts["scrollHeight"], 16000), "scale": 0.5}},
            session=session)["data"]
        pdf_bytes = None
        if pdf:
            pdf_bytes = base64.b64decode(browser.send("Page.printToPDF", {"printBackground": True}, session=session)["data"])
        metrics(overflow_width)
        facts["overflow"] = evaluate(_OVERFLOW)
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
    if pdf_bytes is not None:
        (workdir / "report.pdf").write_bytes(pdf_bytes)
    return {"errors": errors, "requests": requests, **facts, "pdf": workdir / "report.pdf" if pdf_bytes else None,
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
    """``open_in_browser(html_path, workdir, **options) -> facts``: the page as headless Chromium saw it."""
    def opener(html: Path, workdir: Path, **options) -> dict:
        return open_in_chromium(chromium, html, workdir, **options)
    return opener
