"""`privfed compare`: the one-command study, at a tiny budget."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import privfed
from reports.fmt import signed

POSITION_NAMES = {"realistic": "Realistic", "worst-case": "Worst case", "oracle": "Oracle (upper bound)"}


class AnswerSentences(HTMLParser):
    """position -> the visible text of its answer sentence (the <li data-position=...> items)."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.sentences: dict[str, str] = {}
        self._position = None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "li" and "data-position" in attrs:
            self._position = attrs["data-position"]
            self.sentences[self._position] = ""

    def handle_endtag(self, tag):
        if tag == "li":
            self._position = None

    def handle_data(self, data):
        if self._position:
            self.sentences[self._position] += data


#: what a position inherits from weaker ones (reports.verdict.carry_up): a stronger attacker can
#: run whatever a weaker one ran, so a weaker position's leak counts at the stronger one
CARRIED = {"worst-case": (("realistic", "inversion"),),
           "oracle": (("worst-case", "inversion"), ("realistic", "inversion"), ("realistic", "membership"))}


def _block(arm_dir: Path, kind: str, target: str, position: str) -> dict | None:
    return json.loads((arm_dir / "attacks" / f"{kind}-{target}.json").read_text())["positions"].get(position)


def _quoted(block: dict) -> str:
    """The start of a figure as the sentence quotes it (a carried one adds where it was found)."""
    return f"{block['method']} (knowledge {block['knowledge']}"


def expected_figures(arm_dir: Path, target: str, position: str) -> tuple[bool, list[str]]:
    """(leaks, the quoted figures) of one arm at one position, read straight from its attack files."""
    leaks, quoted = False, []
    for kind in ("inversion", "membership"):
        block = _block(arm_dir, kind, target, position)
        if block:
            leaks |= block["leaks"]
            quoted.append(_quoted(block))
    for weaker, kind in CARRIED.get(position, ()):
        block = _block(arm_dir, kind, target, weaker)
        if block and block["leaks"]:
            leaks = True
            quoted.append(_quoted(block) + ", found at the")
    return leaks, quoted


def compare(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "privfed", "compare", *args], capture_output=True, text=True, timeout=600)


def test_compare_trains_attacks_both_schemes_and_prints_the_report_path_last(tmp_path):
    out = tmp_path / "study"
    done = compare("--rounds", "1", "--iterations", "2", "--reference-models", "2", "--max-members", "12",
                   "--eval-every", "2", "--out", str(out), "--quiet")
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == str(out / "report.html")
    for arm in ("fedavg", "partial", "local", "centralized"):  # every arm, baselines too, and the printed command
        config = json.loads((out / arm / "config.json").read_text())
        assert config["eval_every"] == 2 and "--eval-every 2" in config["command"], arm
    # the quick study attacks what each server really receives: the whole model, the shared layer
    for arm, targets in (("fedavg", ("full-model",)), ("partial", ("shared-layer",))):
        assert json.loads((out / arm / "config.json").read_text())["algorithm"] == arm
        for target in targets:
            for kind in ("inversion", "membership"):
                assert json.loads((out / arm / "attacks" / f"{kind}-{target}.json").read_text())["results"], (arm, kind, target)
    # the report's answer is the verdict of the familywise blocks the attack files hold, one sentence per position
    sentences = AnswerSentences((out / "report.html").read_text(encoding="utf-8")).sentences
    assert list(sentences) == ["realistic", "worst-case", "oracle"]
    for position, sentence in sentences.items():
        fedavg_leaks, fedavg_quoted = expected_figures(out / "fedavg", "full-model", position)
        partial_leaks, partial_quoted = expected_figures(out / "partial", "shared-layer", position)
        assert sentence.startswith(POSITION_NAMES[position] + ": "), sentence
        if not fedavg_leaks and not partial_leaks:
            assert "neither FedAvg nor partial-weight leaks measurably by these attacks at this budget" in sentence
            for figure in fedavg_quoted + partial_quoted:  # every figure quoted names its attack and knowledge level
                assert figure in sentence, (figure, sentence)
            assert "dB over the null attack" in sentence or "membership AUC" in sentence
        else:
            assert re.search(r"leaks (more than|measurably)", sentence), sentence
            assert any(figure in sentence for figure in fedavg_quoted + partial_quoted), sentence


def test_compare_refuses_to_write_inside_the_installed_package():
    inside = Path(privfed.__file__).resolve().parent / "study"
    done = compare("--out", str(inside))
    assert done.returncode == 2 and done.stderr.startswith("error: ") and "inside the installed privfed package" in done.stderr
    assert not inside.exists()


def test_compare_dp_trains_each_scheme_at_each_epsilon_and_draws_the_curve(tmp_path):
    out = tmp_path / "study"
    done = compare("--dp", "--dp-epsilons", "8", "--no-baselines", "--rounds", "1", "--image-size", "32",
                   "--iterations", "2", "--trials", "2", "--attack-clients", "0", "--reference-models", "2",
                   "--max-members", "12", "--out", str(out), "--quiet")
    assert done.returncode == 0, done.stderr[-3000:]
    for name in ("fedavg", "partial"):
        assert json.loads((out / name / "config.json").read_text())["dp"]["level"] == "none"
        for eps in (8,):
            run = out / f"{name}-dp-eps{eps}"
            config = json.loads((run / "config.json").read_text())
            assert config["dp"]["level"] == "sample" and config["dp"]["target_epsilon"] == eps
            spent = json.loads((run / "summary.json").read_text())["epsilon"]
            assert 0 < spent <= eps * 1.001, (name, eps, spent)  # the accountant never overspends its target
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "Differential privacy: the trade-off as a curve over" in html
    assert html.count('alt="Accuracy, membership AUC and reconstruction gain against the epsilon spent') == 1


def test_seed_hetero_local_baseline_trains_the_clients_own_architectures():
    """Partial in a mixed federation must be judged against each client's own architecture trained alone."""
    from privfed.cli.compare_cmd import STUDY_PRESETS, study_arms
    from privfed.federated import build_config

    mixed = ["simple", "mobilenet_v3_large", "mobilenet_v3_small", "densenet121"]
    attacked, baselines = study_arms(STUDY_PRESETS["seed-hetero"], {"precision": "bf16"}, [3.0], 1.0)
    configs = {name: build_config(options) for name, options in attacked + baselines}
    assert configs["partial"].archs == mixed and configs["local"].archs == mixed
    assert configs["local"].algorithm == "local" and configs["local"].precision == "bf16"
    assert set(configs["centralized"].archs) == set(configs["fedavg"].archs) == {"simple"}
    assert configs["partial-dp-eps3"].precision == "fp32"  # DP arms never take the speed settings
    _, same_arch = study_arms(STUDY_PRESETS["seed-same-arch"], {}, [], 1.0)
    assert {name: set(build_config(options).archs) for name, options in same_arch} == {"local": {"simple"},
                                                                                       "centralized": {"simple"}}
