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
    """Every start tag with its attributes, the page's visible text, and the answer's sentences."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []
        self.sentences: list[str] = []
        self._in_answer = 0
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append((tag, attrs))
        if tag == "li" and "data-position" in attrs:
            self._in_answer = 1
            self.sentences.append("")

    def handle_endtag(self, tag):
        if tag == "li":
            self._in_answer = 0

    def handle_data(self, data):
        self.text.append(data)
        if self._in_answer:
            self.sentences[-1] += data

    def named(self, tag):
        return [attrs for t, attrs in self.tags if t == tag]

    @property
    def plain(self) -> str:
        """The visible text with one space between text nodes (none before punctuation)."""
        return re.sub(r"\s+([;,.)])", r"\1", re.sub(r"\s+", " ", " ".join(self.text)))


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


def first_screen(html: str) -> str:
    return html[: html.index('<section id="evidence">')]


def test_first_screen_says_what_was_compared_the_answer_and_the_accuracies(make_study, tmp_path):
    html = build_report(make_study(), tmp_path / "report.html").read_text(encoding="utf-8")
    page = assert_self_contained(html)
    top = Tags(first_screen(html)).plain
    # what was compared: data, sizes, clients, rounds, DP
    assert "privfed's embedded brain-MRI subset, 2 classes (normal, tumor), 32 × 32 pixels" in top
    assert "208 images: hospitals 3, 4, server 1, test 200" in top
    assert "2 rounds of 1 local epoch" in top and "Differential privacy no DP" in top
    # the answer, one sentence per attacker position, realistic first
    assert [s.split(":")[0] for s in page.sentences] == ["Realistic", "Worst case", "Oracle (upper bound)"]
    # accuracies beside the baselines, percent with percent intervals, and communication per round
    assert re.search(r"FedAvg 90% \[\d+%, \d+%\] 89% 0\.95 16\.0 MiB \(8\.01 MiB up\)", top)
    assert "local only (baseline) 79%" in top and "centralized (baseline) 93%" in top and "nothing sent" in top
    # one picture: the best reconstruction of each arm beside its original and the null guess
    assert 'id="spotlight"' in first_screen(html) and first_screen(html).count("<img ") == 1
    assert "FedAvg: worst case, analytic (knowledge none)" in top
    # the banner says whether true images are shown, before anything else
    assert html.index('id="originals-status"') < html.index('id="answer"') and "ARE shown" in top


def test_answer_declares_a_direction_only_where_familywise_intervals_separate(make_study, tmp_path):
    page = Tags(build_report(make_study(), tmp_path / "r.html").read_text(encoding="utf-8"))
    realistic, worst, oracle = page.sentences
    # worst case: FedAvg +6.0 dB [+3.0, +9.0] lies wholly above partial's -1.0 dB [-4.0, +2.0]
    assert worst == ("Worst case: FedAvg leaks more than partial-weight (reconstruction gain: analytic (knowledge none): "
                     "+6.0 dB over the null attack [+3.0, +9.0], true image ranked first 0% [0%, 40%] (null 0%) against "
                     "shared-analytic (knowledge none): -1.0 dB over the null attack [-4.0, +2.0], true image ranked first "
                     "0% [0%, 40%] (null 0%)).")
    # realistic: FedAvg's membership AUC interval [0.56, 0.66] is above 0.5 but overlaps nothing of partial's
    # [0.45, 0.59]... it does overlap, so no direction is declared
    assert realistic.startswith("Realistic: no measurable difference between FedAvg and partial-weight; FedAvg leaks "
                                "measurably: loss (knowledge none): membership AUC 0.61 [0.56, 0.66]")
    assert "leaks more" not in realistic and oracle.startswith("Oracle (upper bound): FedAvg leaks more than partial-weight")


def test_an_attack_less_bad_than_another_below_the_null_is_not_a_leak(make_study, tmp_path):
    # worst case: FedAvg -8 dB [-11, -5] lies wholly below partial's -1 dB [-4, +2], but neither is above the null
    page = Tags(build_report(make_study(worst_gain=-8.0), tmp_path / "r.html").read_text(encoding="utf-8"))
    assert page.sentences[1].startswith("Worst case: neither FedAvg nor partial-weight leaks measurably")


def test_headline_is_the_familywise_block_never_the_best_row(make_run, tmp_path):
    run = make_run("fedavg")
    path = run / "attacks" / "inversion-full-model.json"
    data = json.loads(path.read_text())
    # a row far stronger than the familywise pick: a report taking the maximum over rows would quote +40 dB
    lucky = dict(data["results"][0], method="dlg", gain_db=40.0, gain_db_ci=[30.0, 50.0])
    data["results"].append(lucky)
    path.write_text(json.dumps(data))
    html = build_report([run], tmp_path / "r.html").read_text(encoding="utf-8")
    page = Tags(html)
    assert all("+40.0 dB" not in s for s in page.sentences)
    assert "analytic (knowledge none): +6.0 dB over the null attack [+3.0, +9.0]" in page.sentences[1]
    # the row itself is still evidence, with its own 95% interval, in the arm's table
    assert "+40.0 dB [+30.0, +50.0] over null" in page.plain


def test_identical_knowledge_levels_are_shown_once_with_a_note(make_study, tmp_path):
    html = build_report(make_study(), tmp_path / "r.html").read_text(encoding="utf-8")
    fedavg, partial = html.split('<section class="arm">')[1:3]
    # FedAvg: clients start from the global model, so none, init and full are one column
    assert "none = init = full" in fedavg and "<th>init" not in fedavg
    assert "attacked once and are shown as one column" in fedavg
    # partial: init and full coincide for inversion only: one cell spanning two columns, with its note
    assert "<th>none" in partial and "<th>init" in partial and "<th>full" in partial
    assert partial.count('colspan="2"') == 2 and "init = full: identical models, attacked once" in partial


def test_grids_only_for_the_strongest_attack_of_each_position_and_never_twice(make_study, tmp_path):
    html = build_report(make_study(), tmp_path / "r.html").read_text(encoding="utf-8")
    fedavg, partial = html.split('<section class="arm">')[1:3]
    for arm in (fedavg, partial):
        positions = re.findall(r'<figure class="grid" data-position="([^"]+)"', arm)
        assert positions == ["realistic", "worst-case", "oracle"]
    # FedAvg's oracle attack is its worst-case attack (identical models): said once, not drawn again
    assert fedavg.count('alt="reconstructions"') == 2 and partial.count('alt="reconstructions"') == 3
    assert "The same attack and images as the worst case position" in fedavg


def test_targets_the_server_does_not_receive_are_never_the_headline(make_run, tmp_path):
    from tests.reports.conftest import write_attacks

    run = make_run("fedavg", realistic_gain=-0.5, worst_gain=-0.5, auc=0.5, auc_ci=(0.45, 0.55))
    # the shared layer alone, with a huge leak: a restriction of what FedAvg sends, not what the server receives
    write_attacks(run, "fedavg", "fedavg", "shared-layer", 20.0, 20.0, 0.9, (0.85, 0.95), ("a", "b", "c", "d"), "s",
                  headline=False)
    html = build_report([run], tmp_path / "r.html").read_text(encoding="utf-8")
    page = Tags(html)
    assert all("leaks measurably:" not in s and "+20.0" not in s for s in page.sentences)
    details = html[html.index('<section id="details">'):]
    assert "Attacks on the shared-layer only: not what the server receives from this scheme" in details
    assert "+20.0 dB" in details and "+20.0 dB" not in html[: html.index('<section id="details">')]


def test_redact_originals_never_reads_the_true_images(make_study, tmp_path, monkeypatch):
    import reports.images

    read = []
    original_read_png = reports.images.read_png

    def recording(base, relative):
        read.append(str(relative))
        return original_read_png(base, relative)

    monkeypatch.setattr(reports.images, "read_png", recording)
    runs = make_study()
    html = build_report(runs, tmp_path / "r.html", redact_originals=True).read_text(encoding="utf-8")
    page = assert_self_contained(html)
    assert read and not [r for r in read if "originals" in r]
    for png in runs[0].glob("attacks/inversion-full-model/*-originals.png"):
        assert base64.b64encode(png.read_bytes()).decode() not in html
    assert "NOT shown" in first_screen(html) and "withheld (--redact-originals)" in html
    assert len(page.named("img")) == 1 + (4 + 1) + (6 + 1) + 1 + 4  # no originals strips


def test_without_dp_epsilon_reads_no_dp_and_an_empty_audit_is_not_a_zero(make_run, tmp_path):
    html = build_report([make_run("fedavg")], tmp_path / "r.html").read_text(encoding="utf-8")
    text = Tags(html).plain
    assert "DP ε claimed: no DP; measured lower bound from the membership attacks: none detected (lower bound 0)" in text
    assert "0.00" not in text


def test_dp_arms_get_a_curve_over_epsilon_and_their_own_status(make_run, tmp_path):
    runs = [make_run("fedavg"), make_run("fedavg-dp-eps3", dp=True, worst_gain=-1.0, accuracy=(0.6, 0.8))]
    html = build_report(runs, tmp_path / "r.html").read_text(encoding="utf-8")
    page = Tags(html)
    assert "FedAvg + DP (ε = 3)" in page.plain and "with differential privacy" in html
    assert any("epsilon spent" in img.get("alt", "") for img in page.named("img"))
    # the answer compares the runs without DP; the DP arm has its own row per position
    assert page.sentences[1].startswith("Worst case: FedAvg leaks measurably")
    assert "ε = 2.90 spent (target 3), δ = 1e-05" in page.plain


def test_a_model_that_predicts_one_class_is_flagged(make_study, tmp_path):
    html = build_report(make_study(majority_share=0.99), tmp_path / "r.html").read_text(encoding="utf-8")
    assert first_screen(html).count("predicts one class</span>") == 1


def test_units_are_consistent_percent_intervals_are_percent(make_study, tmp_path):
    text = Tags(build_report(make_study(), tmp_path / "r.html").read_text(encoding="utf-8")).plain
    assert not re.search(r"\d%\s*\[\s*0?\.\d", text)  # never '1.33% [0.002, 0.047]'
    assert re.search(r"ranked first \d+% \[\d+%, \d+%\]", text)


def test_details_hold_commands_threat_models_once_and_raw_links(make_study, tmp_path):
    runs = make_study()
    out = build_report(runs, tmp_path / "reports" / "r.html")
    html = out.read_text(encoding="utf-8")
    page = Tags(html)
    details = html[html.index('<section id="details">'):]
    assert details.count("<details") == 1 + 4  # threat models + one per run
    assert "privfed train --algorithm fedavg --clients 2 --rounds 2 --out fedavg" in details
    assert "privfed attack fedavg --kind inversion --target full-model --round 1 --client 0 --max-images 4" in details
    assert "privfed compare" not in details
    # one threat model per attack type: inversion per target and source, membership per method and target
    assert len(re.findall(r"<tr><td>gradient inversion", details)) == 4 and "Knowledge levels" in details
    links = [a["href"] for a in page.named("a")]
    assert "../runs/fedavg/attacks/inversion-full-model.json" in links
    for href in links:
        assert (out.parent / href).resolve().is_file(), href


def test_missing_pieces_render_as_not_run(make_run, tmp_path):
    run = make_run(summary=False, realistic_gain=None)
    (run / "metrics.jsonl").unlink()
    (run / "split.json").unlink()
    html = build_report([run], tmp_path / "r.html").read_text(encoding="utf-8")
    assert_self_contained(html)
    assert "Training did not finish: no summary.json, and no round finished" in html
    assert "Not run: gradient inversion (run &#39;privfed attack run-fedavg --kind inversion&#39;)" in html
    assert "split not recorded (no split.json)" in html and "not measured" in html
    # one arm, nothing attacked: each position says so, naming the arm in words (not its folder)
    assert Tags(html).sentences == ["Realistic: FedAvg: not measured.", "Worst case: FedAvg: not measured.",
                                    "Oracle (upper bound): FedAvg: not measured."]


def test_image_outside_attacks_folder_or_not_png_is_not_embedded(make_run, tmp_path):
    run = make_run()
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"\x89PNG\r\n\x1a\n" + b"patient" * 10)
    attack = run / "attacks/inversion-full-model.json"
    data = json.loads(attack.read_text())
    images = {"reconstructions": "inversion-full-model/fake.png", "originals": "../../../secret.png",
              "null": "inversion-full-model/fake.png"}
    for block in data["positions"].values():
        block["images"] = images
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


def test_cli_writes_the_report_for_one_run_or_several_and_maps_errors_to_exit_2(make_study, tmp_path, capsys):
    from privfed.cli.main import run as cli

    runs = make_study()
    out = tmp_path / "cli.html"
    with pytest.raises(SystemExit) as ok:
        cli(["report", str(runs[0]), "--out", str(out), "--redact-originals", "--title", "Shareable"])
    assert ok.value.code == 0
    html = out.read_text(encoding="utf-8")
    assert "NOT shown" in html and "<title>Shareable</title>" in html
    assert Tags(html).sentences[1].startswith("Worst case: FedAvg leaks measurably")
    with pytest.raises(SystemExit) as ok:
        cli(["report", *map(str, runs), "--out", str(out)])
    assert ok.value.code == 0 and "Worst case: FedAvg leaks more than partial-weight" in Tags(out.read_text()).sentences[1]
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


def test_ill_typed_fields_render_as_not_measured_not_a_crash(make_study, tmp_path):
    runs = make_study()
    for run in runs:
        for path in list(run.rglob("*.json")):
            path.write_text(json.dumps(_spoil(json.loads(path.read_text()))))
        metrics = run / "metrics.jsonl"
        metrics.write_text("".join(json.dumps(_spoil(json.loads(line))) + "\n" for line in metrics.read_text().splitlines()))
    html = build_report(runs, tmp_path / "r.html").read_text(encoding="utf-8")
    assert_self_contained(html)
    assert "not measured" in Tags(first_screen(html)).plain


def test_same_runs_give_the_same_bytes(make_study, tmp_path):
    runs = make_study()
    first = build_report(runs, tmp_path / "1.html").read_bytes()
    second = build_report(runs, tmp_path / "2.html").read_bytes()
    assert first == second
