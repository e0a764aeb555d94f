"""Run the membership attacks on a run directory and write ``attacks/membership-<target>.json``.

The runner adapts a :class:`attacks.run_access.RunView` to the plain-tensor interface of
the attacks: it draws balanced member / non-member candidates from ``split.json``
(members: a client's training ids; non-members: test ids), trains the reference models
once per architecture, asks each attack for scores and grades them with
:mod:`attacks.metrics.membership`. Attacks never see which candidate is a member.

What is attacked, per target:

* ``full-model``: ``client_<k>`` (its model as the server last received it) and ``global``
  (members: the union of the clients' training ids). Score-based attacks need no further
  knowledge (the server holds the very model it queries), so they are reported once,
  under the weakest requested knowledge level; ``update-cosine`` uses each level's model
  of the client at the start of each observed round.
* ``shared-layer``: ``client_<k>``'s last received ``shared`` layer composed with a
  backbone and head chosen by the knowledge level (none: the server's own / global
  model; init: the client's initial weights; full: its real final weights, an upper bound).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from attacks.membership.base import MEMBERSHIP_ATTACKS, MembershipQuery, ObservedUpdate, create_attack
from attacks.membership.reference import ReferenceSignals, balanced_halves, train_reference_signals
from attacks.membership.shadow import ShadowConfig
from attacks.membership.signals import model_logits
from privfed.devices import resolve_device
from attacks.membership.update import SHARED_KEYS
from attacks.metrics.leakage import familywise_alpha
from attacks.run_access import server_receives
from attacks.metrics.membership import ALPHA, auc_delong_interval, epsilon_lower_bound_from_scores, evaluate_membership
from privfed.errors import PrivfedError
from privfed.io import write_json

FORMAT_VERSION = 1
KNOWLEDGE_ORDER = ("none", "init", "full")


@dataclass
class MembershipOptions:
    """What ``privfed attack --kind membership`` asks for; every field has a CLI option."""

    target: str = "full-model"
    knowledge: list[str] = field(default_factory=lambda: list(KNOWLEDGE_ORDER))
    methods: list[str] | None = None  # None: every method marked in_default; ["all"]: every one
    reference_models: int = 4
    max_members: int | None = 500  # per side (members and non-members), for speed
    rounds: list[int] | None = None  # observed rounds the update attack uses (None = all)
    clients: list[int] | None = None  # None = every client
    seed: int = 0
    device: str = "auto"
    reference_epochs: int | None = None  # None = rounds x local_epochs of the run, capped at 20
    max_population: int = 1000  # server samples used to train reference models / as RMIA's z
    lira_fixed_variance: bool = True
    rmia_a: float = 0.3
    n_bootstrap: int = 200
    plot: bool = True


@dataclass
class _Candidates:
    model: str
    client: int | None
    member_ids: list[str]
    nonmember_ids: list[str]

    @property
    def ids(self) -> list[str]:
        return self.member_ids + self.nonmember_ids


def _sample(ids: list[str], n: int, rng: np.random.Generator) -> list[str]:
    ids = sorted(ids)
    return [ids[i] for i in sorted(rng.choice(len(ids), size=n, replace=False))] if n < len(ids) else ids


def draw_candidates(split, clients: list[int], with_global: bool, max_members: int | None, seed: int) -> list[_Candidates]:
    """Balanced member / non-member ids per attacked model, deterministic in ``seed``."""
    rng = np.random.default_rng(seed)
    test = list(split.test)
    out = []
    groups = [(f"client_{k}", k, list(split.clients[k])) for k in clients]
    if with_global:
        groups.append(("global", None, [i for c in split.clients for i in c]))
    for name, k, members in groups:
        n = min(len(members), len(test), max_members or len(members))
        if n < 2:
            raise PrivfedError(f"split.json: {name} has {len(members)} training ids and the test set {len(test)}; need at least 2 of each")
        out.append(_Candidates(name, k, _sample(members, n, rng), _sample(test, n, rng)))
    return out


def _local_epochs(config: dict) -> float:
    value = config.get("local_epochs", 1)
    return float(np.mean(value)) if isinstance(value, list) else float(value)


def shadow_config_for(config: dict, epochs: int | None) -> ShadowConfig:
    """The attacker mimics the run's public recipe (lr, batch size, momentum, total epochs)."""
    if epochs is None:
        epochs = int(min(20, max(1, round(_local_epochs(config) * int(config.get("rounds", 1))))))
    return ShadowConfig(
        epochs=epochs,
        lr=float(config.get("lr", 0.05)),
        batch_size=int(config.get("batch_size", 32)),
        momentum=float(config.get("momentum", 0.9) or 0.0),
    )


class _ReferenceBank:
    """Reference signals on the pool (population + every candidate), trained once per architecture."""

    def __init__(self, view, pool_ids, n_population, options: MembershipOptions, device, progress) -> None:
        self.view, self.options, self.device, self.progress = view, options, device, progress
        self.pool_ids = pool_ids
        self.index = {i: n for n, i in enumerate(pool_ids)}
        self.n_population = n_population
        self.images, self.labels = view.images(pool_ids)
        rng = np.random.default_rng(options.seed + 17)
        m = options.reference_models
        self.online_mask = balanced_halves(len(pool_ids), m, rng)
        self.offline_mask = np.zeros((m, len(pool_ids)), bool)
        self.offline_mask[:, :n_population] = balanced_halves(n_population, m, rng)
        self._cache: dict[tuple, ReferenceSignals] = {}

    def signals(self, kind: str, arch: str, width: int) -> ReferenceSignals:
        key = (kind, arch, width)
        if key not in self._cache:
            mask = self.online_mask if kind == "online" else self.offline_mask
            self._cache[key] = train_reference_signals(
                self.images,
                self.labels,
                mask,
                arch=arch,
                image_size=self.view.image_size,
                shared_width=width,
                num_classes=self.view.num_classes,
                dp=self.view.uses_dp_models,
                config=shadow_config_for(self.view.config, self.options.reference_epochs),
                seed=self.options.seed + (0 if kind == "offline" else 7919),
                device=self.device,
                on_model_done=self.progress,
            )
        return self._cache[key]

    def rows(self, ids: list[str]) -> np.ndarray:
        return np.array([self.index[i] for i in ids])


def _observed_updates(view, k: int, knowledge: str, target: str, rounds: list[int] | None, device) -> list[ObservedUpdate]:
    from privfed.models.mapping import embedding_matrix, to_common

    chosen = [r for r in view.observed_rounds() if (rounds is None or r in rounds) and k in view.round_clients(r)]
    updates = []
    for r in chosen:
        model = view.attacker_model(r, k, knowledge, device=device)
        direction = {n: -t for n, t in view.update(r, k).items()}  # before - received
        if target == "shared-layer":
            direction = {n: direction[n] for n in SHARED_KEYS if n in direction}
        weight = direction.get("shared.weight")
        if weight is not None and weight.shape != model.shared.weight.shape:
            # the attacker's model holds the layer in common h x h form (F is linear, so map the difference too)
            q = embedding_matrix(weight.shape[0], model.shared.weight.shape[0], int(view.config.get("seed", 0)))
            direction["shared.weight"], direction["shared.bias"] = to_common(weight, direction["shared.bias"], q)
            direction = {n: direction[n] for n in SHARED_KEYS}
        updates.append(ObservedUpdate(r, model, direction))
    return updates


def _threat_model(attack, target: str, knowledge: str | None) -> str:
    from attacks.run_access import KNOWLEDGE_MEANING

    where = (
        "Target: the full model the client sent (or the final global model)."
        if target == "full-model"
        else "Target: only the client's shared layer, composed with the attacker's backbone and head."
    )
    known = "Knowledge: none needed beyond the model itself." if knowledge is None else f"Knowledge {knowledge}: {KNOWLEDGE_MEANING[knowledge]}."
    return f"{attack.threat_model} {where} {known}"


def _validate(view, options: MembershipOptions) -> tuple[list[str], list[str], list[int]]:
    from attacks.run_access import check_knowledge

    view.require_target(options.target)
    if not options.methods:
        methods = [m for m in MEMBERSHIP_ATTACKS.names() if MEMBERSHIP_ATTACKS.get(m).in_default]
    elif list(options.methods) == ["all"]:
        methods = MEMBERSHIP_ATTACKS.names()
    else:
        methods = list(options.methods)
    for name in methods:
        MEMBERSHIP_ATTACKS.get(name)
    knowledge = [check_knowledge(k) for k in (options.knowledge or KNOWLEDGE_ORDER)]
    knowledge = [k for k in KNOWLEDGE_ORDER if k in knowledge]
    clients = list(range(view.num_clients)) if options.clients is None else list(options.clients)
    for k in clients:
        if not 0 <= k < view.num_clients:
            raise PrivfedError(f"--client {k} out of range: {view.path} has clients 0..{view.num_clients - 1}")
    if options.reference_models < 0:
        raise PrivfedError(f"--reference-models {options.reference_models}: must be 0 or more")
    needs_ref = {r for m in methods for r in MEMBERSHIP_ATTACKS.get(m).requires} & {"offline_reference", "online_reference"}
    if needs_ref and options.reference_models < 2:
        raise PrivfedError(
            f"--reference-models {options.reference_models}: methods {', '.join(m for m in methods if MEMBERSHIP_ATTACKS.get(m).requires & needs_ref)} "
            "need at least 2; raise it or pick --method loss / update-cosine"
        )
    if options.rounds is not None:
        missing = sorted(set(options.rounds) - set(view.observed_rounds()))
        if missing:
            raise PrivfedError(f"--rounds {missing}: not observed in {view.path} (observed: {view.observed_rounds() or 'none'})")
    return methods, knowledge, clients


def run_membership_on_view(view, options: MembershipOptions, progress: bool = True, command: str | None = None) -> Path:
    """Same as :func:`run_membership_attacks` for an already opened run (tests pass a stand-in)."""
    from privfed.progress import progress_bar

    methods, knowledge, clients = _validate(view, options)
    target = options.target
    device = resolve_device(options.device)
    attacks = {
        m: create_attack(m, fixed_variance=options.lira_fixed_variance, a=options.rmia_a) for m in methods
    }
    score_methods = [m for m in methods if "updates" not in attacks[m].requires]
    update_methods = [m for m in methods if "updates" in attacks[m].requires]
    needs = set().union(*(attacks[m].requires for m in methods))

    split = view.split
    candidates = draw_candidates(split, clients, target == "full-model" and bool(score_methods), options.max_members, options.seed)
    rng = np.random.default_rng(options.seed + 1)
    population = _sample(list(split.server), min(len(split.server), options.max_population), rng)
    needs_pool = bool(needs & {"offline_reference", "online_reference", "population"}) and bool(score_methods)
    if needs_pool and len(population) < 2:
        raise PrivfedError(f"{view.path}/split.json: the server holds {len(population)} samples; reference-model attacks need its data, pick --method loss or update-cosine")

    # jobs: (candidates, knowledge label or None, methods)
    jobs = []
    for cand in candidates:
        if target == "full-model":
            if score_methods:
                jobs.append((cand, None, score_methods))
            if cand.client is not None and update_methods:
                jobs += [(cand, kn, update_methods) for kn in knowledge]
        else:
            jobs += [(cand, kn, score_methods + update_methods) for kn in knowledge]
    total = sum(len(j[2]) for j in jobs)
    n_ref = options.reference_models * (("offline_reference" in needs) + ("online_reference" in needs))

    results, skipped = [], []
    scores_of: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # row index -> (member, non-member) scores
    seen_updates: dict[str, list] = {}  # candidates -> [(knowledge, models of its observed rounds)]
    with progress_bar(enabled=progress) as bar:
        ref_task = bar.add_task("membership: reference models", total=n_ref or 1, visible=needs_pool and n_ref > 0)
        attack_task = bar.add_task(f"membership ({target}): attacks", total=total)
        bank = None
        if needs_pool:
            pool = list(dict.fromkeys(population + [i for c in candidates for i in c.ids]))
            bank = _ReferenceBank(view, pool, len(population), options, device, lambda: bar.advance(ref_task))
        image_cache: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        for cand, kn, job_methods in jobs:
            if cand.model not in image_cache:
                image_cache[cand.model] = view.images(cand.ids)
            images, labels = image_cache[cand.model]
            n = len(cand.member_ids)
            label = kn if kn is not None else knowledge[0]
            if kn is not None and job_methods == update_methods and target == "full-model":
                twin = _same_updates(view, cand.client, kn, options.rounds, seen_updates.setdefault(cand.model, []))
                if twin is not None:  # FedAvg: every knowledge level is the global model it sent
                    originals = [i for i, r in enumerate(results) if r["model"] == cand.model and r["knowledge"] == twin
                                 and r["method"] in update_methods and i in scores_of]
                    for i in originals:
                        scores_of[len(results)] = scores_of[i]
                        results.append(dict(results[i], knowledge=kn, same_as_knowledge=twin, position=position_of(kn),
                                            threat_model=_threat_model(attacks[results[i]["method"]], target, kn)))
                    bar.advance(attack_task, len(job_methods))
                    continue
            try:
                model = None
                if any(m in score_methods for m in job_methods):
                    model = view.target_model(target, cand.model, knowledge=kn or "none", device=device)
                updates = None
                for method in job_methods:
                    attack = attacks[method]
                    query = MembershipQuery(images=images, labels=labels, device=device)
                    start = time.perf_counter()
                    ref_seconds = training = 0.0
                    try:
                        if "updates" in attack.requires:
                            if updates is None:
                                updates = _observed_updates(view, cand.client, kn, target, options.rounds, device)
                            query.updates = updates
                        else:
                            query.target_logits = model_logits(model, images, device=device)
                            if attack.requires & {"offline_reference", "population"}:
                                t0 = time.perf_counter()
                                sig = bank.signals("offline", model.arch, model.shared_width)
                                training += time.perf_counter() - t0
                                ref_seconds += sig.seconds
                                query.offline = sig.take(bank.rows(cand.ids))
                                query.population_offline = sig.take(np.arange(bank.n_population))
                                query.population_logits = model_logits(model, bank.images[: bank.n_population], device=device)
                                query.population_labels = bank.labels[: bank.n_population]
                            if "online_reference" in attack.requires:
                                t0 = time.perf_counter()
                                sig = bank.signals("online", model.arch, model.shared_width)
                                training += time.perf_counter() - t0
                                ref_seconds += sig.seconds
                                query.online = sig.take(bank.rows(cand.ids))
                        scores = np.asarray(attack.score(query), dtype=np.float64)
                        # the attack's own cost; reference training is reported apart (it is shared)
                        seconds = time.perf_counter() - start - training
                    except PrivfedError as exc:
                        skipped.append({"method": method, "knowledge": label, "model": cand.model, "reason": str(exc)})
                        bar.advance(attack_task)
                        continue
                    k = cand.client
                    metrics = evaluate_membership(
                        scores[:n], scores[n:], delta=view.delta(), n_bootstrap=options.n_bootstrap, seed=options.seed
                    )
                    row = {
                        "attack": "membership",
                        "method": method,
                        "target": target,
                        "knowledge": label,
                        "position": position_of(label),
                        "model": cand.model,
                        **{key: value for key, value in metrics.to_dict().items() if key != "roc"},
                        "epsilon_claimed": view.epsilon_claimed(k),
                        "seconds": round(max(seconds, 0.0), 4),
                        "reference_seconds": round(ref_seconds, 4),
                        "threat_model": _threat_model(attack, target, kn),
                        "params": attack.params(),
                        "rounds": [u.round for u in updates] if "updates" in attack.requires else None,
                        "roc": metrics.roc,
                    }
                    scores_of[len(results)] = (scores[:n], scores[n:])
                    results.append(row)
                    bar.advance(attack_task)
            except PrivfedError as exc:
                for method in job_methods:
                    skipped.append({"method": method, "knowledge": label, "model": cand.model, "reason": str(exc)})
                bar.advance(attack_task, len(job_methods))

    if not results:
        reasons = "; ".join(sorted({s["reason"] for s in skipped}))[:500]
        raise PrivfedError(f"no membership attack could run on {view.path} with --target {target}: {reasons}")
    out = Path(view.path) / "attacks" / f"membership-{target}.json"
    payload = {
        "format_version": FORMAT_VERSION,
        "run": str(view.path),
        "target": target,
        "server_receives_target": server_receives(view.algorithm, target),
        "commands": [command] if command else [],
        "positions": summarize_positions(results, scores_of, view.delta(), options.seed),
        "options": asdict(options),
        "results": results,
        "skipped": skipped,
    }
    if options.plot:
        payload["plot"] = plot_roc(results, out.parent / f"membership-{target}" / "roc.png", target)
    write_json(out, payload)
    return out


def position_of(knowledge: str) -> str:
    """realistic (what the server holds, knowledge none/init) or oracle (the client's real weights)."""
    return "oracle" if knowledge == "full" else "realistic"


def _same_updates(view, k: int, knowledge: str, rounds, seen: list) -> str | None:
    """The knowledge level already attacked whose models of client k's observed rounds are identical."""
    chosen = [r for r in view.observed_rounds() if (rounds is None or r in rounds) and k in view.round_clients(r)]
    states = [view.attacker_model(r, k, knowledge).state_dict() for r in chosen]
    for level, other in seen:
        if len(other) == len(states) and all(a.keys() == b.keys() and all(torch.equal(a[n], b[n]) for n in a)
                                             for a, b in zip(states, other)):
            return level
    seen.append((knowledge, states))
    return None


def summarize_positions(results: list[dict], scores_of: dict, delta: float, seed: int = 0, alpha: float = ALPHA) -> dict:
    """Per attacker position, the strongest attack with intervals widened for the rows it was picked from.

    With m rows in a position, each AUC interval (DeLong) and each epsilon lower bound is taken
    at level alpha / m (Bonferroni), so reporting the best of them keeps the chance of any
    false claim at alpha. The strongest row is the one with the highest lower AUC bound.
    """
    out = {}
    for position in ("realistic", "oracle"):
        rows = [i for i, r in enumerate(results) if r.get("position") == position and i in scores_of]
        present = {(results[i]["knowledge"], results[i]["method"], results[i]["model"]) for i in rows}
        rows = [i for i in rows  # a copy whose original is in the same position counts once
                if (results[i].get("same_as_knowledge"), results[i]["method"], results[i]["model"]) not in present]
        if not rows:
            continue
        level = familywise_alpha(len(rows), alpha)
        best = None
        for i in rows:
            members, nonmembers = scores_of[i]
            ci = auc_delong_interval(members, nonmembers, alpha=level)
            entry = {"method": results[i]["method"], "knowledge": results[i]["knowledge"], "model": results[i]["model"],
                     "auc": results[i]["auc"], "auc_ci": ci, "tpr_at_1pct_fpr": results[i]["tpr_at_1pct_fpr"],
                     "tpr_at_01pct_fpr": results[i]["tpr_at_01pct_fpr"],
                     "epsilon_lower_bound": epsilon_lower_bound_from_scores(members, nonmembers, delta, seed=seed, alpha=level),
                     "n_members": len(members)}
            if best is None or ci[0] > best["auc_ci"][0]:
                best = entry
        out[position] = {**best, "leaks": best["auc_ci"][0] > 0.5, "rows": len(rows), "familywise_alpha": level,
                         "epsilon_lower_bound": max(
                             epsilon_lower_bound_from_scores(*scores_of[i], delta, seed=seed, alpha=level) for i in rows)}
    return out


def plot_roc(results: list[dict], path: Path, target: str) -> str:
    """One log-log ROC panel per attacked model; returns the path relative to ``attacks/``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from privfed.io import atomic_write_bytes

    models = list(dict.fromkeys(r["model"] for r in results))
    cols = min(3, len(models))
    rows = -(-len(models) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.8 * rows), squeeze=False)
    for ax, name in zip(axes.flat, models):
        floor = 1e-4
        for r in results:
            if r["model"] != name:
                continue
            fpr = np.maximum(np.asarray(r["roc"]["fpr"]), floor)
            ax.plot(fpr, np.maximum(r["roc"]["tpr"], floor), label=f"{r['method']} [{r['knowledge']}] AUC {r['auc']:.2f}", lw=1.2)
        ax.plot([floor, 1], [floor, 1], "k:", lw=0.8)
        ax.set(xscale="log", yscale="log", xlim=(floor, 1), ylim=(floor, 1), xlabel="FPR", ylabel="TPR", title=f"{target}: {name}")
        ax.legend(fontsize=6, loc="lower right")
    for ax in list(axes.flat)[len(models) :]:
        ax.axis("off")
    fig.tight_layout()
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())
    return f"membership-{target}/roc.png"


def run_membership_attacks(run_dir: Path, options: MembershipOptions, progress: bool = True, command: str | None = None) -> Path:
    """Attack the run in ``run_dir``; returns the path of ``attacks/membership-<target>.json``.

    ``command``: the ``privfed attack`` line that reproduces this call (stored in ``commands``).
    """
    from attacks.run_access import open_run

    return run_membership_on_view(open_run(run_dir), options, progress, command)
