"""The set-up of a run in plain words, from config.json and split.json.

A clinical reader wants "1,347 images: 4 hospitals x 202, server 202, test 337" and "10
rounds of 2 local epochs", not ``client_size=—, dirichlet_alpha=—``. Each function turns
one part of the configuration into one short phrase; absent fields are left out, never
printed as dashes.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from reports.load import RunData, as_dict, as_float, as_list

EMBEDDED_DATA = "privfed's embedded brain-MRI subset"


def _g(value: Any) -> str:
    number = as_float(value)
    return "?" if number is None else f"{number:g}"


def _first(value: Any) -> Any:
    """A per-client list whose entries agree collapses to its first entry."""
    items = as_list(value)
    if items and all(v == items[0] for v in items):
        return items[0]
    return value


def classes(run: RunData) -> list[str]:
    for source in (run.config.get("classes"), (run.split or {}).get("classes")):
        if isinstance(source, list) and source:
            return [str(c) for c in source]
    return []


def data_phrase(run: RunData) -> str:
    """'privfed's embedded brain-MRI subset, 2 classes (normal, tumor), 64 x 64 pixels'."""
    data = run.config.get("data")
    name = EMBEDDED_DATA if data in (None, "embedded") else f"the images in {data}"
    parts = [name]
    names = classes(run)
    if names:
        parts.append(f"{len(names)} classes ({', '.join(names)})")
    size = as_float(run.config.get("image_size"))
    if size is not None:
        parts.append(f"{int(size)} × {int(size)} pixels")
    return ", ".join(parts)


def split_sizes(run: RunData) -> dict[str, Any] | None:
    if run.split is None:
        return None
    clients = [len(c) if isinstance(c, list) else 0 for c in as_list(run.split.get("clients"))]
    server, test = len(as_list(run.split.get("server"))), len(as_list(run.split.get("test")))
    return {"clients": clients, "server": server, "test": test, "total": sum(clients) + server + test}


def split_phrase(run: RunData) -> str:
    """'1,347 images: 4 hospitals × 202, server 202, test 337; class mix kept in every party; seed 0'."""
    sizes = split_sizes(run)
    if sizes is None:
        return "split not recorded (no split.json)"
    clients = sizes["clients"]
    if clients and all(c == clients[0] for c in clients):
        who = f"{len(clients)} hospitals × {clients[0]:,}"
    else:
        who = "hospitals " + ", ".join(f"{c:,}" for c in clients)
    text = f"{sizes['total']:,} images: {who}, server {sizes['server']:,}, test {sizes['test']:,}"
    plan = as_dict(run.split.get("plan"))
    alpha = as_float(plan.get("dirichlet_alpha"))
    if plan.get("kind") == "fractions":
        shares = [as_float(plan.get(f"{p}_fraction")) for p in ("clients", "server", "test")]
        if all(s is not None for s in shares):
            text += f" ({', '.join(f'{100 * s:g}%' for s in shares)} of the pool)"
    elif plan.get("kind") == "seed":
        text += " (the seed project's reference sizes)"
    text += (f"; label skew across hospitals (Dirichlet α = {alpha:g})" if alpha is not None
             else "; every party has the pool's class mix")
    seed = run.split.get("seed")
    if isinstance(seed, int) and not isinstance(seed, bool):
        text += f"; split seed {seed}"
    return text


def models_phrase(run: RunData) -> str:
    """'4 × simple' or 'simple, mobilenet_v3_small, ...'."""
    archs = [str(a) for a in as_list(run.config.get("archs"))]
    if not archs:
        return ""
    counts = Counter(archs)
    if len(counts) == 1:
        return f"{len(archs)} × {archs[0]}"
    return ", ".join(archs)


def training_parts(run: RunData) -> list[str]:
    """['10 rounds of 2 local epochs', 'Adam (learning rate 0.001, cosine schedule)', 'batch 16', ...]."""
    config = run.config
    parts = []
    rounds, epochs = as_float(config.get("rounds")), _first(config.get("local_epochs"))
    if run.algorithm == "centralized":
        if rounds is not None:
            parts.append(f"{_g(rounds)} epochs on the pooled images")
    elif rounds is not None:
        text = f"{_g(rounds)} rounds"
        if as_float(epochs) is not None:
            text += f" of {_g(epochs)} local epoch{'s' if as_float(epochs) != 1 else ''}"
        elif isinstance(epochs, list):
            text += f" of {', '.join(map(_g, epochs))} local epochs"
        parts.append(text)
    optimizer = config.get("optimizer")
    if isinstance(optimizer, str):
        details = [f"learning rate {_g(config.get('lr'))}"] if as_float(config.get("lr")) is not None else []
        if isinstance(config.get("lr_schedule"), str) and config.get("lr_schedule") not in ("none", "constant"):
            details.append(f"{config['lr_schedule']} schedule")
        name = {"adam": "Adam", "sgd": "SGD"}.get(optimizer, optimizer)
        parts.append(f"{name} ({', '.join(details)})" if details else name)
    if as_float(config.get("batch_size")) is not None:
        parts.append(f"batch {_g(config.get('batch_size'))}")
    if config.get("class_weighting") not in (None, "none"):
        parts.append(f"{config['class_weighting']} class weights")
    if config.get("precision") == "bf16":
        parts.append("bf16 autocast")
    every = as_float(config.get("eval_every"))
    if every is not None and every > 1:
        parts.append(f"tested every {_g(every)} rounds and in the last")
    models = models_phrase(run)
    if models and run.algorithm != "centralized":
        parts.append(f"models {models}")
    if run.algorithm == "partial":
        width = _first(config.get("shared_width"))
        if as_float(width) is not None:
            parts.append(f"shared layer width {_g(width)} (common width {_g(config.get('common_width'))})")
        if isinstance(config.get("server_arch"), str):
            parts.append(f"server model {config['server_arch']}")
    return parts


def training_phrase(run: RunData) -> str:
    """'10 rounds of 2 local epochs, Adam (learning rate 0.001, cosine schedule), batch 16, ...'."""
    return ", ".join(training_parts(run))


def shared_training_phrase(named_parts: list[tuple[str, list[str]]]) -> str:
    """What every run shares once, then what each run adds: 'A, B, C; partial-weight also: D'."""
    if not named_parts:
        return ""
    common = [p for p in named_parts[0][1] if all(p in parts for _, parts in named_parts)]
    text = ", ".join(common)
    extras: dict[str, list[str]] = {}
    for name, parts in named_parts:
        extra = ", ".join(p for p in parts if p not in common)
        if extra:
            extras.setdefault(extra, []).append(name)
    if extras:
        text += ("; " if text else "") + "; ".join(f"{', '.join(names)}: {extra}" for extra, names in extras.items())
    return text


def dp_phrase(run: RunData) -> str:
    """'no DP' or 'sample-level DP-SGD: ε = 0.99 spent (target 1), δ = 1e-05, clipping norm 1'."""
    if run.dp_level in ("none", ""):
        return "no DP"
    dp = as_dict(run.config.get("dp"))
    summary = run.summary or {}
    spent, delta = as_float(summary.get("epsilon")), as_float(summary.get("delta"))
    level = "sample-level DP-SGD (protects single images)" if run.dp_level == "sample" else \
        f"{run.dp_level}-level DP (protects a whole hospital)" if run.dp_level == "client" else f"{run.dp_level}-level DP"
    parts = [f"ε = {spent:.2f} spent" if spent is not None else "ε not measured (no summary.json)"]
    if as_float(dp.get("target_epsilon")) is not None:
        parts[0] += f" (target {_g(dp.get('target_epsilon'))})"
    if delta is not None:
        parts.append(f"δ = {delta:g}")
    if as_float(dp.get("noise_multiplier")) is not None:
        parts.append(f"noise multiplier {_g(dp.get('noise_multiplier'))}")
    if as_float(dp.get("max_grad_norm")) is not None:
        parts.append(f"clipping norm {_g(dp.get('max_grad_norm'))}")
    neighbouring = summary.get("dp_neighbouring") or dp.get("neighbouring")
    if isinstance(neighbouring, str):
        parts.append(f"{neighbouring} neighbouring")
    return f"{level}: " + ", ".join(parts)
