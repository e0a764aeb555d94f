"""The comparison row and the plain-language verdict, on hand-made numbers."""

from __future__ import annotations

from reports.compare import ComparisonRow, comparison_row, verdict, verdicts
from reports.fmt import human_bytes, interval, num, pct
from reports.load import load_run


def row(label, **kw) -> ComparisonRow:
    return ComparisonRow(label, label.split("+")[0], "sample" if "+DP" in label else "none", **kw)


def test_verdict_matches_the_issue_example():
    partial = row("partial", accuracy=0.88, best_psnr=14.2, mia_auc=0.52)
    fedavg = row("fedavg", accuracy=0.911, best_psnr=31.5, mia_auc=0.61)
    assert verdict(partial, fedavg) == (
        "partial leaked less than fedavg: best reconstruction PSNR 14.2 dB vs 31.5 dB, "
        "MIA AUC 0.52 vs 0.61, at 3.1 points lower accuracy."
    )


def test_verdict_more_leakage_and_higher_accuracy():
    a = row("fedavg", accuracy=0.93, best_psnr=30.0, best_ssim=0.9)
    b = row("fedavg+DP", accuracy=0.85, best_psnr=12.0, best_ssim=0.2)
    assert verdict(a, b) == ("fedavg leaked more than fedavg+DP: best reconstruction PSNR 30.0 dB vs 12.0 dB, "
                             "best SSIM 0.90 vs 0.20, at 8.0 points higher accuracy.")


def test_overlapping_confidence_intervals_are_not_called_a_difference():
    # AUCs differ by 0.04 (> tolerance) but the 95% intervals overlap: no claim either way.
    a = row("partial", accuracy=0.9, mia_auc=0.55, mia_auc_ci=(0.50, 0.60))
    b = row("fedavg", accuracy=0.9, mia_auc=0.59, mia_auc_ci=(0.54, 0.64))
    assert verdict(a, b).startswith("partial leaked about as much as fedavg: MIA AUC 0.55 vs 0.59, at the same accuracy")


def test_mixed_evidence_is_reported_as_mixed():
    a = row("partial", accuracy=0.9, best_psnr=14.0, mia_auc=0.70)
    b = row("fedavg", accuracy=0.9, best_psnr=30.0, mia_auc=0.60)
    assert verdict(a, b).startswith("partial leaked more on some measures and less on others than fedavg")


def test_psnr_within_half_a_decibel_counts_as_equal():
    a = row("a", accuracy=0.5, best_psnr=20.3)
    b = row("b", accuracy=0.5, best_psnr=20.0)
    assert "leaked about as much as" in verdict(a, b)


def test_no_common_attack_says_so_instead_of_guessing():
    a = row("partial", accuracy=0.80, best_psnr=14.0)
    b = row("fedavg", accuracy=0.90, mia_auc=0.6)
    text = verdict(a, b)
    assert text.startswith("partial and fedavg cannot be compared for leakage")
    assert "10.0 points lower accuracy" in text


def test_verdicts_compare_every_run_with_the_first():
    rows = [row("fedavg", accuracy=0.9, best_psnr=30.0), row("partial", accuracy=0.9, best_psnr=15.0),
            row("partial+DP", accuracy=0.8, best_psnr=10.0)]
    out = verdicts(rows)
    assert len(out) == 2
    assert out[0].startswith("partial leaked less than fedavg")
    assert out[1].startswith("partial+DP leaked less than fedavg") and out[1].endswith("at 10.0 points lower accuracy.")
    assert verdicts(rows[:1]) == []


def test_epsilon_violation_flag():
    assert row("x", epsilon_claimed=1.0, epsilon_measured=2.5).epsilon_violated
    assert not row("x", epsilon_claimed=3.0, epsilon_measured=0.4).epsilon_violated
    assert not row("x", epsilon_claimed=None, epsilon_measured=0.4).epsilon_violated


def test_comparison_row_takes_the_worst_case_over_results(make_run):
    run = load_run(make_run(psnr=25.0, ssim=0.8, auc=0.66, auc_ci=(0.6, 0.7), dp=True))
    r = comparison_row(run, "fedavg+DP")
    assert r.best_psnr == 25.0 and r.best_ssim == 0.8          # psnr_max / ssim_max of the only result
    assert r.mia_auc == 0.66 and r.mia_auc_ci == (0.6, 0.7)
    assert r.tpr_at_01pct_fpr == 0.004
    assert r.accuracy == 0.90 and r.accuracy_source == "global"
    assert r.bytes_per_round == 4 * 4_198_400
    assert r.epsilon_claimed == 3.0 and r.epsilon_measured == 0.4


def test_partial_run_is_judged_by_mean_client_accuracy(make_run):
    run = load_run(make_run(algorithm="partial", accuracy=(0.6, 0.8)))
    r = comparison_row(run, "partial")
    assert r.accuracy_source == "mean client" and abs(r.accuracy - 0.79) < 1e-12


def test_unfinished_run_falls_back_to_metrics(make_run):
    run = load_run(make_run(summary=False, psnr=None, auc=None, accuracy=(0.6, 0.7)))
    r = comparison_row(run, "fedavg")
    assert r.accuracy == 0.7 and r.bytes_per_round == 4 * 4_198_400
    assert r.best_psnr is None and r.mia_auc is None and r.epsilon_claimed is None


def test_number_formatting():
    assert human_bytes(1536) == "1.50 KiB"
    assert human_bytes(4 * 1024**2 + 4096) == "4.00 MiB"
    assert human_bytes(150 * 1024**2) == "150 MiB"
    assert human_bytes(512) == "512 B"
    assert human_bytes(None) == human_bytes("12") == "—"
    assert pct(0.9123) == "91.2%"
    assert num(float("nan")) == "—"
    assert interval([0.5, 0.61]) == "[0.500, 0.610]" and interval("oops") == ""


def test_verdict_states_the_no_attack_baseline_beside_psnr():
    a = ComparisonRow("partial", "partial", "none", accuracy=0.8, best_psnr=17.8, baseline_psnr=17.5)
    b = ComparisonRow("fedavg", "fedavg", "none", accuracy=0.8, best_psnr=23.6, baseline_psnr=19.0)
    text = verdict(a, b)
    assert "best reconstruction PSNR 17.8 dB vs 23.6 dB (no-attack baseline 19.0 dB)" in text
    assert text.startswith("partial leaked less than fedavg")
