"""Rendering a report from hand-built run directories (docs/run-directory.md)."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from privfed.errors import PrivfedError
from reports import build_report


class Tags(HTMLParser):
    """Every start tag with its attributes, and the page's visible text."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)

    def named(self, tag):
        return [attrs for t, attrs in self.tags if t == tag]


def assert_self_contained(html: str) -> Tags:
    """No network, no scripts, only PNG data URIs we encoded."""
    page = Tags(html)
    assert not page.named("script") and not page.named("link") and not page.named("iframe")
    assert re.search(r"https?://|//[a-z0-9.-]+\.[a-z]{2,}/", html, re.I) is None
    assert "@import" not in html and not re.search(r"url\(", html, re.I)
    assert not any(name.startswith("on") for _, attrs in page.tags for name in attrs)
    for img in page.named("img"):
        src = img["src"]
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1], validate=True)[:8] == b"\x89PNG\r\n\x1a\n"
    return page


def test_report_shows_setup_utility_communication_and_privacy(make_run, tmp_path):
    run = make_run()
    out = build_report([run], tmp_path / "report.html")
    html = out.read_text(encoding="utf-8")
    page = assert_self_contained(html)
    text = re.sub(r"\s+", " ", "".join(page.text))
    # set-up: data, split sizes, algorithm, architectures, DP, the command
    assert "embedded" in text and "clients: 3, 4 (total 7); server: 1; test: 2" in text
    assert "simple, mobilenet_v3_small" in text
    assert "privfed train --algorithm fedavg --clients 2 --rounds 2 --out run-fedavg" in text
    assert "Honest-but-curious server that sees one client update." in text
    # utility: final accuracy, per client rows for 2 rounds x 2 clients
    assert "Final accuracy: 90.0% (global)" in text and "every round, every client (4 rows)" in text
    # communication: 2 clients x 4198400 B up per round -> 8.01 MiB total per client
    assert "Total sent: up 16.0 MiB, down 16.0 MiB; per round (up + down): 16.0 MiB" in text
    # privacy: per-sample metrics and class names, membership figures with intervals
    assert "img_0003" in text and "tumor (1)" in text and "31.50" in text
    assert "0.610 [0.580, 0.640]" in text
    assert "PSNR is capped at 60 dB" in text and "observed" in text
    assert "Not run here: lira (none, client_1): needs 8 shadow models" in text
    # utility plot, communication plot, originals, reconstructions, ROC: 5 images
    assert len(page.named("img")) == 5
    originals = (run / "attacks/inversion-full-model/round1-client0-knowledge_none-originals.png").read_bytes()
    assert base64.b64encode(originals).decode() in html
    # the first thing after the title says whether originals are shown
    assert html.index('id="originals-status"') < html.index("<section")
    assert "ARE shown" in html[: html.index("<section")]


def test_redact_originals_never_embeds_the_true_images(make_run, tmp_path):
    run = make_run()
    html = build_report([run], tmp_path / "r.html", redact_originals=True).read_text(encoding="utf-8")
    page = assert_self_contained(html)
    originals = (run / "attacks/inversion-full-model/round1-client0-knowledge_none-originals.png").read_bytes()
    recon = (run / "attacks/inversion-full-model/round1-client0-knowledge_none-reconstructions.png").read_bytes()
    assert base64.b64encode(originals).decode() not in html
    assert base64.b64encode(recon).decode() in html
    assert len(page.named("img")) == 4
    first_screen = html[: html.index("<section")]
    assert "NOT shown" in first_screen and "--redact-originals" in first_screen
    assert "PSNR mean 30.0 dB (max 31.5)" in html  # metrics replace the images


def test_several_runs_get_a_comparison_table_plot_and_verdict(make_run, tmp_path):
    fedavg = make_run("a")
    partial = make_run("b", algorithm="partial", psnr=14.2, ssim=0.31, auc=0.52, auc_ci=(0.49, 0.55), accuracy=(0.7, 0.881))
    local = make_run("c", algorithm="local", psnr=None, auc=None, accuracy=(0.6, 0.75))
    html = build_report([fedavg, partial, local], tmp_path / "r.html", title="FedAvg vs partial").read_text(encoding="utf-8")
    page = assert_self_contained(html)
    assert "<title>FedAvg vs partial</title>" in html
    assert ("partial leaked less than fedavg: best reconstruction PSNR 14.2 dB vs 31.5 dB, best SSIM 0.31 vs 0.92, "
            "MIA AUC 0.52 vs 0.61, TPR at 0.1% FPR 0.4% vs 0.4%, at 2.9 points lower accuracy.") in html  # 0.871 (mean client) vs 0.900
    assert "local and fedavg cannot be compared for leakage" in html
    assert any("privacy-utility" in img.get("alt", "").lower() or "against best" in img.get("alt", "")
               for img in page.named("img"))
    # the local-only run is a utility baseline in the others' sections
    assert html.count("<th>baseline run</th>") == 2


def test_missing_pieces_render_as_not_run(make_run, tmp_path):
    run = make_run(summary=False, psnr=None, auc=None)
    (run / "metrics.jsonl").unlink()
    (run / "split.json").unlink()
    html = build_report([run], tmp_path / "r.html").read_text(encoding="utf-8")
    assert_self_contained(html)
    assert "Training did not finish: no summary.json" in html and "No round finished" in html
    assert "Not run: no attacks/inversion-*.json" in html and "Not run: no attacks/membership-*.json" in html
    assert "not recorded (no split.json)" in html
    assert "Not run: no finished rounds" in html


def test_image_outside_attacks_folder_or_not_png_is_not_embedded(make_run, tmp_path):
    run = make_run()
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"\x89PNG\r\n\x1a\n" + b"patient" * 10)
    attack = run / "attacks/inversion-full-model.json"
    data = json.loads(attack.read_text())
    data["results"][0]["images"] = {"reconstructions": "inversion-full-model/fake.png", "originals": "../../../secret.png"}
    (run / "attacks/inversion-full-model/fake.png").write_text("<svg onload=alert(1)>")
    attack.write_text(json.dumps(data))
    html = build_report([run], tmp_path / "r.html").read_text(encoding="utf-8")
    assert_self_contained(html)
    assert base64.b64encode(secret.read_bytes()).decode() not in html
    assert "points outside the run&#39;s attacks folder" in html and "file is not a PNG; not embedded" in html


def test_not_a_run_directory_is_an_error_naming_it(tmp_path, make_run):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(PrivfedError, match=r"empty: not a run directory \(no config.json\)"):
        build_report([empty], tmp_path / "r.html")
    with pytest.raises(PrivfedError, match="nowhere: not a run directory"):
        build_report([tmp_path / "nowhere"], tmp_path / "r.html")
    run = make_run()
    (run / "summary.json").write_text(json.dumps({"format_version": 7}))
    with pytest.raises(PrivfedError, match=r"summary.json: format_version 7"):
        build_report([run], tmp_path / "r.html")
    assert not (tmp_path / "r.html").exists()


def test_cli_writes_the_report_and_maps_errors_to_exit_2(make_run, tmp_path, capsys):
    from privfed.cli.main import run as cli

    run = make_run()
    out = tmp_path / "cli.html"
    with pytest.raises(SystemExit) as ok:
        cli(["report", str(run), "--out", str(out), "--redact-originals", "--title", "Shareable"])
    assert ok.value.code == 0
    assert "NOT shown" in out.read_text(encoding="utf-8") and "<title>Shareable</title>" in out.read_text(encoding="utf-8")
    capsys.readouterr()
    with pytest.raises(SystemExit) as bad:
        cli(["report", str(tmp_path), "--out", str(out)])
    assert bad.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "not a run directory (no config.json)" in err


def test_reports_never_imports_torch_models_or_attacks():
    code = ("import sys, reports, reports.build; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('torch', 'attacks') "
            "or m.startswith(('privfed.federated', 'privfed.models'))]; print(bad)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            cwd=Path(__file__).resolve().parents[2])
    assert result.stdout.strip() == "[]", result.stdout + result.stderr


def _spoil(value):
    """Every number becomes a string and every list of numbers a dict: wrong types everywhere."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (int, float)):
        return "oops"
    if isinstance(value, list):
        return [_spoil(v) for v in value]
    if isinstance(value, dict):
        return {k: (v if k == "format_version" else _spoil(v)) for k, v in value.items()}
    return value


def test_ill_typed_fields_render_as_dashes_not_a_crash(make_run, tmp_path):
    run = make_run()
    for path in list(run.rglob("*.json")):
        path.write_text(json.dumps(_spoil(json.loads(path.read_text()))))
    metrics = run / "metrics.jsonl"
    metrics.write_text("".join(json.dumps(_spoil(json.loads(line))) + "\n" for line in metrics.read_text().splitlines()))
    html = build_report([run], tmp_path / "r.html").read_text(encoding="utf-8")
    assert_self_contained(html)
    assert "Final accuracy: <strong>—</strong>" in html


def test_same_runs_give_the_same_bytes(make_run, tmp_path):
    run = make_run()
    first = build_report([run], tmp_path / "1.html").read_bytes()
    second = build_report([run], tmp_path / "2.html").read_bytes()
    assert first == second
