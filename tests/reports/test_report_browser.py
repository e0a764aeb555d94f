"""Open reports in headless Chromium as a reader would: offline, no errors, every image shown,
the answer on the first screen, the page short, nothing wider than the page.

Needs Debian's `chromium` (scripts/ensure_chromium.sh installs it); skipped with a reason
when no browser can be found or installed. Screenshots and the PDF are saved under tmp_path.
"""

from __future__ import annotations

import json
import re

from reports import build_report

PNG = b"\x89PNG\r\n\x1a\n"
#: the issue's limit: under 8 screens of 1400 x 900 for the default study
MAX_HEIGHT = 8 * 900


def _offline_requests(urls: list[str], page_url: str) -> list[str]:
    """Requests that are neither the report file itself nor an inlined data: image."""
    return [u for u in urls if u != page_url and not u.startswith("data:image/png;base64,")]


def test_study_report_is_short_answers_first_and_fits_the_page(open_in_browser, make_study, tmp_path):
    runs = make_study()
    out = build_report(runs, tmp_path / "report.html")
    html = out.read_text(encoding="utf-8")

    seen = open_in_browser(out, tmp_path, width=1400, height=900, overflow_width=1000, pdf=True)

    assert seen["errors"] == []
    assert _offline_requests(seen["requests"], out.resolve().as_uri()) == []
    assert seen["scripts"] == 0
    # every image loads: the first screen's picture; per arm 3 strips per position (FedAvg's oracle is its
    # worst case: a line, not a copy) and the ROC; the trade-off plot; in the details one training plot per run
    assert len(seen["images"]) == html.count("<img ") == 1 + (6 + 1) + (9 + 1) + 1 + 4
    assert all(img["complete"] and img["width"] > 0 and img["scheme"] == "data" for img in seen["images"])
    assert seen["scrollHeight"] < MAX_HEIGHT, f"page is {seen['scrollHeight']} px tall at 1400 x 900"
    # the first screen holds the banner, the answer per position and the accuracies
    for part in ("banner", "answer", "utility"):
        assert 0 <= seen[part]["top"] and seen[part]["bottom"] <= seen["viewportHeight"], (part, seen[part])
    assert "Worst case: FedAvg leaks more than partial-weight" in seen["bodyText"]
    # at 1000 px wide, with every <details> open, nothing reaches past the page's right edge
    overflow = seen["overflow"]
    assert overflow["overflowing"] == [] and overflow["documentWidth"] <= overflow["width"], overflow
    assert overflow["openHeight"] > seen["scrollHeight"]  # the details really opened
    for shot in (seen["first_screen"], seen["full_page"]):
        data = shot.read_bytes()
        assert data[:8] == PNG and len(data) > 10_000
    pdf = seen["pdf"].read_bytes()
    assert pdf[:5] == b"%PDF-" and len(re.findall(rb"/Type\s*/Page\b", pdf)) >= 2


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
    # shown as text: the title, the class names and the command (the details are opened for the overflow check)
    assert len(re.findall(re.escape("<script>console.error('xss')</script>"), seen["bodyText"])) >= 1
    assert seen["overflow"]["overflowing"] == []
