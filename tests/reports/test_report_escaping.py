"""Everything read from run files is text: markup in names, ids and file names stays inert."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser

from reports import build_report

XSS = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"


class StartTags(HTMLParser):
    def __init__(self, html: str):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def test_markup_in_class_names_ids_methods_and_file_names_is_escaped(make_run, tmp_path):
    run = make_run("run-<script>alert(1)", classes=(XSS, "tumor"), sample_ids=(XSS, "b", "c", "d"),
                   image_name='"><img src=x onerror=alert(1)>')
    config = json.loads((run / "config.json").read_text())
    config["command"] = f"privfed train --out x</code></pre>{XSS}"
    config["archs"] = [XSS, "simple"]
    (run / "config.json").write_text(json.dumps(config))
    attack = run / "attacks" / "inversion-full-model.json"
    data = json.loads(attack.read_text())
    data["commands"].append(XSS)
    for row in data["results"]:
        row["method"] = "$x^{2$ " + XSS  # also no mathtext crash in the figures
        row["threat_model"] = XSS
    for block in data["positions"].values():
        block["method"] = "$x^{2$ " + XSS
    attack.write_text(json.dumps(data))
    membership = run / "attacks" / "membership-full-model.json"
    mdata = json.loads(membership.read_text())
    for row in mdata["results"]:
        row["method"] = "$x^{2$ " + XSS
        row["model"] = XSS
    membership.write_text(json.dumps(mdata))

    html = build_report([run], tmp_path / "x.html", title=XSS).read_text(encoding="utf-8")

    tags = StartTags(html).tags
    assert [t for t, _ in tags if t in ("script", "iframe", "object", "embed", "svg", "link")] == []
    assert not any(name.startswith("on") for _, attrs in tags for name in attrs)
    assert all(attrs["src"].startswith("data:image/png;base64,") for t, attrs in tags if t == "img")
    assert XSS not in html and "<script" not in html.lower()
    assert f"<title>{ESCAPED}</title>" in html
    assert f"{ESCAPED} (0)" in html                      # class name shown with a sample's label
    assert re.search(rf"<td>{re.escape(ESCAPED)}</td>", html)  # sample id cell
    assert "run-&lt;script&gt;alert(1)" in html          # folder name
    assert f"$x^{{2$ {ESCAPED} (knowledge none)" in html  # method in the answer and the tables
    assert f"--out x&lt;/code&gt;&lt;/pre&gt;{ESCAPED}" in html          # command
    assert f"<td>{ESCAPED}</td>" in html                 # threat model
    # images named with markup are still embedded (they are PNGs inside attacks/), by bytes only:
    # the first screen's picture, 2 positions x 3 strips (the oracle repeats the worst case), the ROC, the
    # trade-off plot, the training plot
    assert sum(1 for t, _ in tags if t == "img") == 1 + 6 + 1 + 1 + 1
