"""The one computed summary every view renders: utility, headline findings, evidence rows, formatting."""

from __future__ import annotations

import json

from reports import arm_labels, load_run, summarize
from reports.evidence import evidence_table
from reports.fmt import auc_ci, db_ci, epsilon, human_bytes, interval, num, pct, pct_ci
from reports.summary import MAX_ROC_CURVES, roc_rows_of, wilson_interval


def study(runs):
    loaded = [load_run(r) for r in runs]
    return summarize(loaded, arm_labels(loaded))


def test_arms_and_baselines_are_told_apart_and_labelled_in_words(make_study, make_run):
    s = study(make_study() + [make_run("fedavg-dp-eps3", dp=True)])
    assert [a.label for a in s.arms] == ["FedAvg", "partial-weight", "FedAvg + DP (ε = 3)"]
    assert [a.label for a in s.baselines] == ["local only", "centralized"]
    assert [a.label for a in s.main_arms] == ["FedAvg", "partial-weight"] and [a.label for a in s.dp_arms] == ["FedAvg + DP (ε = 3)"]


def test_two_runs_that_would_share_a_label_get_their_folder(make_run):
    s = study([make_run("a"), make_run("b")])
    assert [a.label for a in s.arms] == ["FedAvg (a)", "FedAvg (b)"]


def test_utility_judges_full_model_runs_by_the_global_model_and_partial_by_its_clients(make_study):
    fedavg, partial = study(make_study()).arms
    assert fedavg.utility.source == "global model" and fedavg.utility.accuracy == 0.90
    assert partial.utility.source == "mean of the clients' models" and abs(partial.utility.accuracy - 0.87) < 1e-12
    assert fedavg.utility.n_test == 200 and fedavg.utility.accuracy_ci == wilson_interval(0.90, 200)
    assert fedavg.bytes_per_round == 2 * 2 * 4_198_400


def test_the_headline_is_what_the_server_receives(make_study):
    fedavg, partial = study(make_study()).arms
    assert fedavg.headline_target == "full-model" and partial.headline_target == "shared-layer"
    worst = fedavg.findings["worst-case"].get("inversion")
    assert (worst.method, worst.knowledge, worst.value, worst.ci, worst.leaks) == ("analytic", "none", 6.0, (3.0, 9.0), True)
    assert not partial.findings["worst-case"].leaks


def test_a_file_marked_as_not_received_is_never_the_headline(make_run):
    run = make_run("fedavg")
    for kind in ("inversion", "membership"):
        path = run / "attacks" / f"{kind}-full-model.json"
        data = json.loads(path.read_text())
        data["server_receives_target"] = False
        path.write_text(json.dumps(data))
    (arm,) = study([run]).arms
    assert arm.evidence is None and all(not f.measured for f in arm.findings.values())
    assert [t.target for t in arm.other_evidence] == ["full-model"]


def test_evidence_columns_keep_only_knowledge_levels_attacked_in_their_own_right(make_study):
    fedavg, partial = study(make_study()).arms
    assert [c.title for c in fedavg.evidence.columns] == ["none = init = full"]
    assert [c.title for c in partial.evidence.columns] == ["none", "init", "full"]
    inversion = [r for r in partial.evidence.rows if r.kind == "inversion"]
    assert [[(c.knowledges, c.span) for c in r.cells] for r in inversion] == [[(("none",), 1), (("init", "full"), 2)]] * 2
    marks = {p for r in fedavg.evidence.rows for c in r.cells for p in c.headline_of}
    assert marks == {"realistic", "worst-case", "oracle"}


def test_a_copy_of_a_level_that_is_not_its_neighbour_repeats_that_cell_with_a_note(make_run):
    run = load_run(make_run("p", algorithm="partial"))
    rows = run.inversion[0].results
    for row in rows:  # full copies none instead of init: none | init | full(=none)
        if row["knowledge"] == "full":
            row["same_as_knowledge"] = "none"
    table = evidence_table("shared-layer", run.inversion + run.membership)  # full is its own level for membership
    assert [c.title for c in table.columns] == ["none", "init", "full"]
    cells = [r.cells for r in table.rows if r.kind == "inversion"][0]
    assert [(c.knowledges, c.span, c.same_as) for c in cells] == [(("none",), 1, None), (("init",), 1, None),
                                                                   (("full",), 1, "none")]
    assert cells[2].row is cells[0].row
    # without the membership rows, full is never attacked in its own right: it joins the none column
    assert [c.title for c in evidence_table("shared-layer", run.inversion).columns] == ["none = full", "init"]


def test_spotlight_is_the_best_image_of_the_strongest_server_side_attack(make_study):
    fedavg = study(make_study()).arms[0]
    spot = fedavg.spotlight
    assert (spot.position, spot.method, spot.source, spot.cell) == ("worst-case", "analytic", "replay", 0)
    assert spot.psnr == 17.0 + 6.0 + 0.5 and spot.null_psnr == 17.0  # replays are paired: same image's null guess


def test_roc_curves_are_a_handful_the_strongest_row_of_each_method(make_run):
    run = load_run(make_run("fedavg"))
    path = run.membership[0]
    path.results += [dict(path.results[0], method=f"m{i}", auc=0.5 + i / 100) for i in range(10)]
    rows = roc_rows_of(run.membership)
    assert len(rows) == MAX_ROC_CURVES and len({r["method"] for r in rows}) == MAX_ROC_CURVES
    assert rows[0]["method"] == "loss" and not any(r.get("same_as_knowledge") for r in rows)


def test_number_formatting_keeps_one_unit_per_figure():
    assert human_bytes(1536) == "1.50 KiB" and human_bytes(150 * 1024**2) == "150 MiB" and human_bytes(None) == "—"
    assert pct(0.9123) == "91%" and pct(0.004) == "0.4%" and pct(0) == "0%"
    assert pct_ci(0.0133, [0.002, 0.047]) == "1.3% [0.2%, 4.7%]"
    assert pct_ci(None, [0.1, 0.2]) == "not measured"
    assert db_ci(1.24, [-0.31, 2.7]) == "+1.2 dB [-0.3, +2.7]" and db_ci(1.0, None) == "+1.0 dB (no interval: one image)"
    assert auc_ci(0.553, [0.49, 0.61]) == "0.55 [0.49, 0.61]" and auc_ci("x", None) == "not measured"
    assert epsilon(0.0, "none") == "no DP" and epsilon(None, "sample") == "not measured" and epsilon(2.9, "sample") == "2.90"
    assert num(float("nan")) == "—" and interval([0.5, 0.61]) == "[0.50, 0.61]" and interval("oops") == ""


def test_an_upper_bound_inherits_the_leak_of_a_weaker_position(make_run):
    """The quick study's case: the oracle's own interval, widened for more attacks, clears 0 no
    longer, while the worst case (same attack, same images) leaks. The oracle must not read
    'no measurable leak' in the answer; its grid keeps its own figure and says why it leaks."""
    from reports.inversion_view import grids

    run = make_run("fedavg")  # worst case +6 dB [+3, +9]: leaks
    path = run / "attacks" / "inversion-full-model.json"
    data = json.loads(path.read_text())
    data["positions"]["oracle"].update(gain_db_ci=[-0.5, 12.5], leaks=False)
    path.write_text(json.dumps(data))
    s = study([run])
    arm = s.arms[0]
    oracle = arm.findings["oracle"].get("inversion")
    assert oracle.leaks and oracle.found_at == "worst-case" and oracle.ci == (3.0, 9.0)
    sentence = dict(s.answer)["oracle"]
    assert "leaks measurably" in sentence and "found at the worst case position" in sentence, sentence
    caption = next(g for g in grids(arm, redact_originals=True) if g.position == "oracle").caption
    assert "no measurable leak." in caption and "already leaks measurably" in caption, caption
