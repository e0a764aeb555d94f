"""scripts/results_figures.py: the figures docs/results.md shows, built only from a study's JSON and PNG files."""

from __future__ import annotations

import importlib.util
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.reports.conftest import png_grid

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "results_figures.py"


@pytest.fixture(scope="module")
def figures():
    spec = importlib.util.spec_from_file_location("results_figures", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_caption_states_the_headline_as_the_tables_do(figures):
    record = {"method": "layerwise", "knowledge": "none", "gain_db": 4.076, "gain_db_ci": [-0.13, 8.29],
              "n_images": 4, "identification_top1": 0.75}
    assert figures._caption(record) == "layerwise (none): +4.1 dB [-0.1, +8.3], 3 of 4 ranked first"


def test_worst_case_figure_has_one_row_per_arm_and_target(figures, make_study):
    runs = make_study()
    study = runs[0].parent
    one = Image.open(io.BytesIO(figures.worst_case_figure(study, ["fedavg"])))
    both = Image.open(io.BytesIO(figures.worst_case_figure(study, ["fedavg", "partial"])))
    assert one.mode == "RGB" and one.width == both.width
    assert both.height == pytest.approx(2 * one.height, abs=2)


def test_roc_figure_pastes_each_curve_unchanged(figures, make_study):
    runs = make_study()
    study = runs[0].parent
    curves = {}
    for seed, run in enumerate(runs[:2]):
        for target_file in sorted((run / "attacks").glob("membership-*.json")):
            path = run / "attacks" / target_file.stem / "roc.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(png_grid(seed, n=3))
            curves[run.name] = np.asarray(Image.open(path).convert("RGB"))
    figure = np.asarray(Image.open(io.BytesIO(figures.roc_figure(study, ["fedavg", "partial"]))))
    height, width, _ = curves["fedavg"].shape
    assert figure.shape[1] == width + curves["partial"].shape[1]
    header = figure.shape[0] - max(c.shape[0] for c in curves.values())
    assert np.array_equal(figure[header:header + height, :width], curves["fedavg"])
    assert np.array_equal(figure[header:header + height, width:], curves["partial"])


def test_a_study_without_attacks_is_refused_naming_the_folder(figures, tmp_path, capsys):
    (tmp_path / "fedavg").mkdir()
    assert figures.main([str(tmp_path), "--out", str(tmp_path / "fig")]) == 1
    error = capsys.readouterr().err
    assert "fedavg" in error and "--arms" in error
    assert not list(tmp_path.glob("fig*"))


def test_a_damaged_strip_is_named_in_one_error_line(figures, make_study, capsys, tmp_path):
    runs = make_study()
    strip = next((runs[0] / "attacks" / "inversion-full-model").glob("*-replay.png"))
    strip.write_bytes(b"not a png")
    assert figures.main([str(runs[0].parent), "--out", str(tmp_path / "fig")]) == 1
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and strip.name in error
