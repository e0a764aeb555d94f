"""The names a reader sees for each arm: the scheme in words, with its DP setting.

``privfed compare`` writes folders such as ``fedavg``, ``partial``, ``fedavg-dp-eps3``;
a privacy officer should read "FedAvg", "partial-weight" and "FedAvg + DP (ε = 3)" instead,
and two runs that would share a name get their folder name added so no sentence is ambiguous.
"""

from __future__ import annotations

from collections.abc import Sequence

from reports.load import RunData, as_dict, as_float

ALGORITHM_NAMES = {
    "fedavg": "FedAvg", "fedprox": "FedProx", "fednova": "FedNova", "partial": "partial-weight",
    "local": "local only", "centralized": "centralized",
}

#: what each scheme sends the server, in words (the set-up line and the details)
ALGORITHM_MEANING = {
    "fedavg": "each hospital sends its whole model update every round; the server averages them (FedAvg)",
    "fedprox": "each hospital sends its whole model update; local training is pulled towards the global model (FedProx)",
    "fednova": "each hospital sends its whole model update, normalised by its number of local steps (FedNova)",
    "partial": "each hospital keeps its own model and sends only one shared layer; the server aggregates that layer",
    "local": "each hospital trains alone on its own images; nothing is sent (baseline)",
    "centralized": "all hospitals' images pooled in one place and one model trained on them (baseline)",
}


#: the same, in a few words, for the first screen
ALGORITHM_SHORT = {
    "fedavg": "whole model sent every round",
    "fedprox": "whole model sent every round (proximal term)",
    "fednova": "whole model sent every round (normalised steps)",
    "partial": "only one shared layer sent; each hospital keeps its own model",
    "local": "nothing sent",
    "centralized": "all images pooled in one place",
}


def _number(value: float) -> str:
    return f"{value:g}"


def dp_suffix(run: RunData) -> str:
    """'' without DP; ' + DP (ε = 3)' for sample-level DP; ' + client-level DP (ε = 3)'."""
    if run.dp_level in ("none", ""):
        return ""
    dp = as_dict(run.config.get("dp"))
    kind = "DP" if run.dp_level == "sample" else f"{run.dp_level}-level DP"
    target = as_float(dp.get("target_epsilon"))
    if target is None and run.summary is not None:
        target = as_float(run.summary.get("epsilon"))
    if target is not None:
        return f" + {kind} (ε = {_number(target)})"
    noise = as_float(dp.get("noise_multiplier"))
    return f" + {kind} (noise {_number(noise)})" if noise is not None else f" + {kind}"


def arm_label(run: RunData) -> str:
    return ALGORITHM_NAMES.get(run.algorithm, run.algorithm) + dp_suffix(run)


def arm_labels(runs: Sequence[RunData]) -> list[str]:
    """Short unique labels; runs that would share one get their folder name appended."""
    labels = [arm_label(r) for r in runs]
    return [f"{lab} ({r.path.name})" if labels.count(lab) > 1 else lab for lab, r in zip(labels, runs)]
