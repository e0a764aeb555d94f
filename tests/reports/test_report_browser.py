"""Open reports in headless Chromium as a reader would: offline, no errors, every image shown.

Needs Debian's `chromium` (scripts/ensure_chromium.sh installs it); skipped with a reason
when no browser can be found or installed. Screenshots are saved under tmp_path.
"""

from __future__ import annotations

import json
import re

from reports import build_report

PNG = b"\x89PNG\r\n\x1a\n"


def _offline_requests(urls: list[str], page_url: str) -> list[str]:
    """Requests that are neither the report file itself nor an inlined data: image."""
    return [u for u in urls if u != page_url and not u.startswith("data:image/png;base64,")]


def test_report_opens_offline_without_errors_and_every_image_loads(open_in_browser, make_run, tmp_path):
    fedavg = make_run("fedavg")
    partial_dp = make_run("partial-dp", algorithm="partial", dp=True, psnr=12.5, ssim=0.2, auc=0.51,
                          auc_ci=(0.48, 0.54), accuracy=(0.65, 0.84))
    out = build_report([fedavg, partial_dp], tmp_path / "report.html")
    html = out.read_text(encoding="utf-8")

    seen = open_in_browser(out, tmp_path)

    assert seen["errors"] == []
    assert _offline_requests(seen["requests"], out.resolve().as_uri()) == []
    assert seen["scripts"] == 0
    assert len(seen["images"]) == html.count("<img ") == 11  # trade-off + 2 x (utility, comm, 2 grids, ROC)
    assert all(img["complete"] and img["width"] > 0 and img["scheme"] == "data" for img in seen["images"])
    banner = seen["banner"]
    assert banner is not None and "ARE shown" in banner["text"]
    assert 0 <= banner["top"] and banner["bottom"] <= seen["viewportHeight"]  # on the first screen
    assert "partial+DP leaked less than fedavg" in seen["bodyText"]
    for shot in (seen["first_screen"], seen["full_page"]):
        data = shot.read_bytes()
        assert data[:8] == PNG and len(data) > 10_000


def test_markup_from_files_does_not_execute_in_chromium(open_in_browser, make_run, tmp_path):
    xss = "<img src=x onerror=console.error('xss')><script>console.error('xss')</script>"
    run = make_run("run", classes=(xss, "tumor"), sample_ids=(xss, "b", "c", "d"))
    config = json.loads((run / "config.json").read_text())
    config["command"] = xss
    (run / "config.json").write_text(json.dumps(config))
    out = build_report([run], tmp_path / "x.html", redact_originals=True, title=xss)

    seen = open_in_browser(out, tmp_path)

    assert seen["errors"] == [] and seen["scripts"] == 0
    assert _offline_requests(seen["requests"], out.resolve().as_uri()) == []
    assert "NOT shown" in seen["banner"]["text"]
    assert len(re.findall(re.escape("<script>console.error('xss')</script>"), seen["bodyText"])) >= 3  # shown as text
