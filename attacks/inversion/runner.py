"""Run the gradient-inversion attacks on a run directory; write ``attacks/inversion-<target>.json``.

Threat model: the attacker is the server. It has what it observed (``observed/``), its own
model and data (``split.server``), the architecture names and, per ``knowledge``, the
client's starting weights (see :mod:`attacks.run_access`). The evaluator additionally holds
the ground truth (the client's images, from split.json) to score reconstructions.

Three attacker positions, kept apart in every result (``position``):

* ``"realistic"``: knowledge none or init, attacking the update the client really sent
  (``source: observed``). The update covers a whole round of local training over all of the
  client's images; the attack reconstructs ``max_images`` candidates, simulating the client's
  local steps (lr, steps, batch size, momentum from meta.json), and each candidate is
  matched to the closest of the client's true images.
* ``"worst-case"``: knowledge none or init, attacking a replayed update (``source: replay``,
  ``batch_size``/``local_steps`` given): the evaluator re-simulates one client step on
  ``batch_size`` of its true images from the client's real weights at that round, applying
  the run's DP mechanism, as plain SGD whatever the client's own optimizer (the gradient
  itself: the most one message of the scheme can carry). Batch 1, one step is the worst case.
  ``trials`` repeats it on different images so the figures get intervals.
* ``"oracle"``: knowledge full (the client's real private weights): an upper bound no real
  server reaches.

Every row is scored beside a **null attack** (the server's own images, or their mean,
as many guesses as the attack makes, matched to the same true images the same way) and by
**identification** (rank of the true image among the client's images plus as many unseen
ones): see :mod:`attacks.metrics.leakage`. The file-level ``positions`` block gives, per
position, the strongest row with intervals widened for the number of rows it was chosen
from (Bonferroni), and whether leakage is claimed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from attacks.inversion.base import INVERSION_METHODS, ClientStep, Observation, methods_for
from attacks.inversion.grids import save_grid
from attacks.inversion.priors import ImagePrior
from attacks.inversion.simulate import DPMechanism, client_update
from attacks.metrics.image import PSNR_CAP, psnr, psnr_matrix, score_reconstructions
from attacks.metrics.leakage import Identification, familywise_alpha, gain_interval, identify, leaks
from attacks.run_access import KNOWLEDGE_LEVELS, KNOWLEDGE_MEANING, check_knowledge, open_run, server_receives
from privfed import RUN_FORMAT_VERSION
from privfed.devices import resolve_device
from privfed.errors import PrivfedError
from privfed.io import write_json
from privfed.models.mapping import embedding_matrix, to_common

SHARED = ("shared.weight", "shared.bias")
#: server images the priors (and the learned posterior) are fitted on and the null attack draws its guesses
#: from: all of them in the reference experiment (1,176); more images make the posterior better
MAX_SERVER_IMAGES = 1200
#: cap on each half of the identification pool (client images, and as many unseen ones)
MAX_POOL_PER_SIDE = 1200
POSITIONS = ("realistic", "worst-case", "oracle")
#: images shown per reconstruction grid
GRID_IMAGES = 8

#: Iterations per method on ``observed`` rows when ``--iterations`` is not given. An observed
#: update covers a whole round of local training (the quick preset: 2 epochs of 13 Adam steps),
#: which no attack inverts well, and the update-matching attacks simulate every local step per
#: iteration; these caps keep a default ``privfed attack RUN --kind inversion`` on the quick
#: preset short. Replays use each method's own default.
OBSERVED_MAX_IMAGES = 4
OBSERVED_ITERATIONS = {"analytic": 200, "shared-analytic": 200, "inverting-gradients": 20, "dlg": 10, "idlg": 10,
                       "shared-gradient-matching": 50, "layerwise": 60, "shared-subspace": 60}


@dataclass
class InversionOptions:
    target: str
    knowledge: list[str] = field(default_factory=lambda: list(KNOWLEDGE_LEVELS))
    methods: list[str] | None = None  # None: the strongest of the target (in_default); ["all"]: every one
    rounds: list[int] | None = None  # None: every observed round
    clients: list[int] | None = None  # None: every client of each round
    batch_size: int | None = None  # None (with local_steps None): attack the real observed update
    local_steps: int | None = None
    trials: int = 1  # replays: independent batches attacked (more trials, tighter intervals)
    iterations: int | None = None  # None: each method's default
    max_images: int | None = None  # None: OBSERVED_MAX_IMAGES candidates for observed rows
    seed: int = 0
    device: str = "auto"

    @property
    def replay(self) -> bool:
        return self.batch_size is not None or self.local_steps is not None


def _check_options(options: InversionOptions) -> list[str]:
    for level in options.knowledge:
        check_knowledge(level)
    if options.max_images is not None and options.max_images < 1:
        raise PrivfedError(f"--max-images must be at least 1, got {options.max_images}")
    if options.trials < 1:
        raise PrivfedError(f"--trials must be at least 1, got {options.trials}")
    for name, value in (("--batch-size", options.batch_size), ("--local-steps", options.local_steps), ("--iterations", options.iterations)):
        if value is not None and value < (0 if name == "--iterations" else 1):
            raise PrivfedError(f"{name} must be positive, got {value}")
    applicable = methods_for(options.target)
    if options.methods is None:  # the strongest of each target; "all" runs every one
        return [m for m in applicable if INVERSION_METHODS.get(m).in_default] or applicable
    if list(options.methods) == ["all"]:
        return applicable
    for name in options.methods:
        INVERSION_METHODS.get(name)  # unknown name: PrivfedError with a did-you-mean
        if name not in applicable:
            raise PrivfedError(f"--method {name} does not attack --target {options.target}; use one of: {', '.join(applicable)}")
    return list(options.methods)


def position_of(knowledge: str, source: str) -> str:
    """realistic | worst-case | oracle: the attacker positions the study never mixes."""
    if knowledge == "full":
        return "oracle"
    return "worst-case" if source == "replay" else "realistic"


def _threat_model(options: InversionOptions, knowledge: str, r: int, k: int, source: str) -> str:
    what = "full model update" if options.target == "full-model" else "shared-layer update"
    how = ("the real update it received" if source == "observed"
           else "a replayed one-step gradient on a batch of the client's own images (worst case under chosen conditions)")
    return f"The server inverts client {k}'s {what} of round {r}, {how}; {KNOWLEDGE_MEANING[knowledge]}."


def _restrict(update: dict[str, torch.Tensor], model, target: str, seed: int) -> dict[str, torch.Tensor]:
    """The tensors the attack sees, in the attacker model's space (F-mapped if widths differ)."""
    if target == "shared-layer":
        update = {k: update[k] for k in SHARED}
        w, h = update["shared.weight"].shape[0], model.shared.weight.shape[0]
        if w != h:
            weight, bias = to_common(update["shared.weight"], update["shared.bias"], embedding_matrix(w, h, seed))
            update = {"shared.weight": weight, "shared.bias": bias}
        return update
    names = dict(model.named_parameters())
    return {k: v for k, v in update.items() if k in names and v.shape == names[k].shape}


def _feature_error(recovered: torch.Tensor, truth: torch.Tensor) -> float:
    """Relative error after matching each recovered feature vector to its closest true one."""
    distances = torch.cdist(recovered.double().cpu(), truth.double().cpu()).numpy()
    rows, cols = linear_sum_assignment(distances)
    rec, tru = recovered[rows].double().cpu(), truth[cols].double().cpu()
    return float((rec - tru).norm() / tru.norm().clamp(min=1e-12))


@torch.no_grad()
def _true_features(view, r, k, images, target_model, device) -> torch.Tensor:
    oracle = view.attacker_model(r, k, "full", device)
    feats = torch.cat([oracle.shared_input(chunk.to(device)) for chunk in images.split(32)])
    w, h = feats.shape[1], target_model.shared.weight.shape[0]
    if w != h:
        feats = feats @ embedding_matrix(w, h, int(view.config.get("seed", 0))).to(feats).T
    return feats


def _same_model_as(model: torch.nn.Module, seen: list) -> str | None:
    """The knowledge level already attacked with identical weights, if any (its rows are reused)."""
    state = model.state_dict()
    for knowledge, other in seen:
        other_state = other.state_dict()
        if state.keys() == other_state.keys() and all(torch.equal(state[n], other_state[n]) for n in state):
            return knowledge
    return None


@dataclass
class _Scored:
    """One method's reconstructions of one attacked update, matched and scored with their null."""

    rows: list[dict]  # per true image: the sample rows of the result JSON
    psnr: list[float]
    null_mean_psnr: list[float]  # the server's mean image as every guess
    null_sample_psnr: list[float]  # the server's own images as guesses
    ranks: list[int]
    null_mean_ranks: list[int]
    null_sample_ranks: list[int]
    paired: bool
    rec_index: list[int] = field(default_factory=list)  # reconstruction shown in each sample row
    null_index: list[int] = field(default_factory=list)  # server-image guess matched to each row (paired)
    #: the true images, their ids, the true image of each row, and the reconstruction shown in each row
    truth_images: torch.Tensor | None = None
    truth_ids: list[str] = field(default_factory=list)
    sources: list[int] = field(default_factory=list)
    shown: torch.Tensor | None = None
    #: the attack's reconstructions of *other* trials' images as guesses (see _other_trials_null)
    null_other_psnr: list[float] = field(default_factory=list)
    null_other_ranks: list[int] = field(default_factory=list)


class _IdentificationPool:
    """Per client: its training images plus as many images no client trained on (test images)."""

    def __init__(self, view, seed: int) -> None:
        self.view, self.seed, self._cache = view, seed, {}

    def get(self, k: int) -> tuple[list[str], torch.Tensor]:
        if k not in self._cache:
            rng = np.random.default_rng(self.seed * 7919 + k)
            members = list(self.view.client_ids(k))
            unseen = list(getattr(self.view.split, "test", []) or [])
            n = min(len(members), MAX_POOL_PER_SIDE)
            members = [members[i] for i in sorted(rng.choice(len(members), n, replace=False))] if n < len(members) else members
            m = min(len(unseen), n)
            unseen = [unseen[i] for i in sorted(rng.choice(len(unseen), m, replace=False))] if m < len(unseen) else unseen
            ids = members + unseen
            self._cache[k] = (ids, self.view.images(ids)[0] if ids else torch.empty(0))
        return self._cache[k]


def _score(rec: torch.Tensor, truth_images: torch.Tensor, truth_ids: list[str], labels: list[int], predicted: list[int],
           null_sample: torch.Tensor, mean_image: torch.Tensor | None, pool_ids: list[str], pool: torch.Tensor) -> _Scored:
    """Match the attack's and both null attacks' guesses to the truth the same way; rank the pool."""
    scores = score_reconstructions(rec, truth_images, truth_ids, labels, predicted)
    matched = [truth_ids.index(s.sample_id) for s in scores]
    paired = len(scores) == len(truth_ids)  # every true image matched on both sides: compare image by image

    def null_attack(guesses: torch.Tensor) -> tuple[list[float], list[int], list[int]]:
        """(PSNR per matched true image, rank of that image in the pool, guess index), like the attack."""
        values = psnr_matrix(guesses, truth_images)
        rows, cols = linear_sum_assignment(values, maximize=True)
        guess_of = dict(zip(cols.tolist(), rows.tolist()))
        sources = matched if paired else sorted(guess_of)
        order = [guess_of[j] for j in sources]
        psnrs = [min(float(values[guess_of[j], j]), PSNR_CAP) for j in sources]
        return psnrs, _ranks(guesses[order], [truth_ids[j] for j in sources], pool_ids, pool), order

    null_sample_psnr, null_sample_ranks, null_index = null_attack(null_sample)
    null_mean_psnr, null_mean_ranks = [], []
    if mean_image is not None:
        null_mean_psnr, null_mean_ranks, _ = null_attack(mean_image[None].expand(len(rec), *mean_image.shape))
    rec_index = [s.reconstruction_index for s in scores]
    ranks = _ranks(rec[rec_index], [s.sample_id for s in scores], pool_ids, pool)
    rows = [{**s.row(), "psnr": min(s.psnr, PSNR_CAP), "identification_rank": rank} for s, rank in zip(scores, ranks)]
    return _Scored(rows, [min(s.psnr, PSNR_CAP) for s in scores], null_mean_psnr, null_sample_psnr, ranks,
                   null_mean_ranks, null_sample_ranks, paired, rec_index, null_index if paired else [],
                   truth_images, list(truth_ids), matched, rec[rec_index])


def _ranks(guesses: torch.Tensor, source_ids: list[str], pool_ids: list[str], pool: torch.Tensor) -> list[int]:
    """Rank of each guess's true image in the pool by SSIM (a source missing from the pool ranks last)."""
    if not len(pool_ids):
        return []
    index = {i: n for n, i in enumerate(pool_ids)}
    ident = identify(guesses, [index.get(s, 0) for s in source_ids], pool)
    return [r if s in index else len(pool_ids) for r, s in zip(ident.ranks, source_ids)]


def _other_trials_null(parts: list[_Scored], pool_ids: list[str], pool: torch.Tensor) -> tuple[list[float], list[int]]:
    """(PSNR, rank) per row when each trial's images are "reconstructed" by the next trial's reconstructions.

    The attack's own output for an image it never saw knows nothing about this one, yet it
    carries whatever the attack produces regardless of its input (a smooth average head, the
    prior's texture). Scored like the attack, it is the null that such a generic output cannot
    beat: only an image-specific reconstruction can. Needs two or more trials (replays of
    different images) whose rows all matched; otherwise ``([], [])``.
    """
    if len(parts) < 2 or not all(p.paired and p.shown is not None for p in parts):
        return [], []
    psnrs, ranks = [], []
    for t, part in enumerate(parts):
        guesses = parts[(t + 1) % len(parts)].shown
        values = psnr_matrix(guesses, part.truth_images)
        rows, cols = linear_sum_assignment(values, maximize=True)
        guess_of = dict(zip(cols.tolist(), rows.tolist()))
        if any(j not in guess_of for j in part.sources):
            return [], []
        order = [guess_of[j] for j in part.sources]
        psnrs += [min(float(values[guess_of[j], j]), PSNR_CAP) for j in part.sources]
        ranks += _ranks(guesses[order], [part.truth_ids[j] for j in part.sources], pool_ids, pool)
    return psnrs, ranks


def _merge(parts: list[_Scored], pool_ids: list[str], pool: torch.Tensor) -> _Scored:
    """One row's figures over all its trials (each trial's lists concatenated, the other-trials null added).

    The pool is required so no caller can drop the attack-on-other-images null by omission.
    """
    out = _Scored([], [], [], [], [], [], [], all(p.paired for p in parts))
    for p in parts:
        for name in ("rows", "psnr", "null_mean_psnr", "null_sample_psnr", "ranks", "null_mean_ranks", "null_sample_ranks"):
            getattr(out, name).extend(getattr(p, name))
    out.null_other_psnr, out.null_other_ranks = _other_trials_null(parts, pool_ids, pool)
    return out


def leakage_fields(scored: _Scored, pool_size: int, alpha: float = 0.05, seed: int = 0) -> dict:
    """The null, gain and identification figures of one row (field names of docs/run-directory.md).

    The null attack is the stronger (by mean PSNR) of the know-nothing guesses: the server's
    own images, their mean, and (two or more trials) the attack's reconstructions of other
    images (:func:`_other_trials_null`). Choosing it after scoring favours the null, which only
    makes a leakage claim harder.
    """
    candidates = [("server-images", scored.null_sample_psnr, scored.null_sample_ranks)]
    if scored.null_mean_psnr:
        candidates.append(("server-mean-image", scored.null_mean_psnr, scored.null_mean_ranks))
    if scored.null_other_psnr:
        candidates.append(("attack-on-other-images", scored.null_other_psnr, scored.null_other_ranks))
    null_method, null_psnr, null_ranks = max(candidates, key=lambda c: float(np.mean(c[1])))
    gain, gain_ci = gain_interval(scored.psnr, null_psnr, scored.paired, alpha=alpha, seed=seed)
    found = Identification(scored.ranks, pool_size)
    null_found = Identification(null_ranks, pool_size)
    return {
        "null_method": null_method,
        "null_psnr_mean": float(np.mean(null_psnr)),
        "null_psnrs": [float(v) for v in null_psnr],
        "null_identification_ranks": list(null_ranks),
        "gain_db": gain,
        "gain_db_ci": gain_ci,
        "gain_paired": scored.paired,
        "identification_top1": found.top1,
        "identification_top1_ci": found.interval(alpha),
        "identification_chance": found.chance,
        "identification_pool": pool_size,
        "null_identification_top1": null_found.top1,
        "null_identification_top1_ci": null_found.interval(alpha),
    }


def attack_view(view, options: InversionOptions, progress: bool = True, command: str | None = None) -> Path:
    """Run the attacks on an opened run (a :class:`attacks.run_access.RunView` or lookalike)."""
    view.require_target(options.target)
    methods = _check_options(options)
    device = resolve_device(options.device)
    observed = view.observed_rounds()
    if not observed:
        raise PrivfedError(f"{view.path}: no observed rounds; train with --observe to record what the server sees")
    rounds = options.rounds or observed
    for r in rounds:
        if r not in observed:
            raise PrivfedError(f"--round {r} was not observed in {view.path}; observed rounds: {', '.join(map(str, observed))}")
    seed_cfg = int(view.config.get("seed", 0))
    dp = DPMechanism.from_config(view.config.get("dp"), (getattr(view, "summary", None) or {}).get("noise_multiplier"))
    out_dir = view.path / "attacks"
    image_dir_name = f"inversion-{options.target}"
    server_ids = list(view.split.server)[:MAX_SERVER_IMAGES]
    server_images = view.images(server_ids)[0] if server_ids else None
    pools = _IdentificationPool(view, options.seed)

    tasks = []
    for r in rounds:
        clients = view.round_clients(r)
        if options.clients is not None:
            missing = [k for k in options.clients if k not in clients]
            if missing:
                raise PrivfedError(f"--client {missing[0]} did not take part in round {r}; clients of that round: {clients}")
            clients = list(options.clients)
        tasks += [(r, k, knowledge) for k in clients for knowledge in options.knowledge]
    trials = options.trials if options.replay else 1

    results = []
    seen_models: dict[tuple[int, int], list] = {}
    from privfed.progress import progress_bar

    with progress_bar(enabled=progress) as bar:
        bars = {method: bar.add_task(f"inversion {method} ({options.target})", total=len(tasks) * trials) for method in methods}
        for r, k, knowledge in tasks:
            meta = view.client_meta(r, k)
            ids = view.client_ids(k)
            model = view.attacker_model(r, k, knowledge, device)
            twin = _same_model_as(model, seen_models.setdefault((r, k), []))
            if twin is not None:  # e.g. FedAvg: none, init and full all mean "the global model it sent"
                copies = [dict(row, knowledge=knowledge, same_as_knowledge=twin, position=position_of(knowledge, row["source"]),
                               threat_model=_threat_model(options, knowledge, r, k, row["source"]))
                          for row in results if row["round"] == r and row["client"] == k and row["knowledge"] == twin]
                results.extend(copies)
                for method in methods:
                    bar.advance(bars[method], trials)
                continue
            seen_models[(r, k)].append((knowledge, model))
            generator = torch.Generator().manual_seed(options.seed * 1000 + r * 97 + k)
            prior = ImagePrior.from_server_images(server_images, model) if server_images is not None else ImagePrior(greyscale=False)
            pool_ids, pool = pools.get(k)
            source = "replay" if options.replay else "observed"
            if options.replay:
                batch = options.batch_size or int(meta.get("batch_size", 1))
                step = ClientStep(lr=float(meta.get("lr", 0.01)), local_steps=options.local_steps or 1, batch_size=batch)
                order = torch.randperm(len(ids), generator=generator).tolist()
                batches = [[ids[order[(t * batch + j) % len(ids)]] for j in range(min(batch, len(ids)))] for t in range(trials)]
            else:
                step = ClientStep(lr=float(meta.get("lr", 0.01)), local_steps=int(meta.get("local_steps", 1)),
                                  batch_size=int(meta.get("batch_size", 1)), momentum=float(meta.get("momentum", 0.0) or 0.0),
                                  optimizer=str(meta.get("optimizer", "sgd")))
                batches = [ids]
            per_method: dict[str, dict] = {m: {"scored": [], "seconds": 0.0, "iterations": 0, "labels": [], "features": [],
                                               "grids": None} for m in methods}
            for trial, truth_ids in enumerate(batches):
                images, labels = view.images(truth_ids)
                if options.replay:
                    client = view.attacker_model(r, k, "full", device)
                    names = list(SHARED) if view.algorithm == "partial" else [n for n, _ in client.named_parameters()]
                    update = client_update(client, images.to(device), labels.to(device), step, names, dp, generator)
                    num_images = num_samples = len(truth_ids)
                else:
                    update = view.update(r, k)
                    num_samples = int(meta.get("num_samples", len(ids)))
                    num_images = min(options.max_images or OBSERVED_MAX_IMAGES, num_samples)
                update = {n: t.to(device) for n, t in _restrict(update, model, options.target, seed_cfg).items()}
                observation = Observation(model=model, update=update, step=step, num_images=num_images,
                                          image_size=view.image_size, num_classes=view.num_classes,
                                          target=options.target, prior=prior)
                truth_features = _true_features(view, r, k, images, model, device) if options.target == "shared-layer" else None
                if server_images is not None and len(server_images):
                    pick = torch.randint(0, len(server_images), (num_images,), generator=generator)
                    null_guesses = server_images[pick]
                else:
                    null_guesses = torch.full((num_images, 3, view.image_size, view.image_size), 0.5)
                for method in methods:
                    iterations = options.iterations
                    if iterations is None and source == "observed":
                        iterations = OBSERVED_ITERATIONS.get(method)
                    attack = INVERSION_METHODS.get(method)(iterations=iterations, seed=options.seed + trial)
                    start = time.perf_counter()
                    rec = attack.reconstruct(observation)
                    state = per_method[method]
                    state["seconds"] += time.perf_counter() - start
                    state["iterations"] = rec.iterations
                    state["attack"] = attack
                    state["posterior_used"] = state.get("posterior_used", False) or "posterior" in rec.stats
                    scored = _score(rec.images.cpu(), images, truth_ids, labels.tolist(), rec.labels.tolist(),
                                    null_guesses, prior.mean_image, pool_ids, pool)
                    state["scored"].append(scored)
                    if rec.features is not None and truth_features is not None:
                        state["features"].append(_feature_error(rec.features, truth_features))
                    state.setdefault("clusters", []).append(rec.stats.get("clusters_found"))
                    if state["grids"] is None or len(state["grids"][0]) < GRID_IMAGES:
                        truth_order = [truth_ids.index(row["sample_id"]) for row in scored.rows]
                        null_order = scored.null_index or list(range(min(len(null_guesses), len(truth_order))))
                        grids = (rec.images.cpu()[scored.rec_index], images[truth_order], null_guesses[null_order])
                        state["grids"] = grids if state["grids"] is None else tuple(
                            torch.cat([a, b]) for a, b in zip(state["grids"], grids))
                    bar.advance(bars[method])
            for method in methods:
                state = per_method[method]
                merged = _merge(state["scored"], pool_ids, pool)
                stem = f"r{r}-c{k}-{knowledge}-{method}-{source}"
                rec_grid, orig_grid, null_grid = (g[:GRID_IMAGES] for g in state["grids"])
                save_grid(out_dir / image_dir_name / f"{stem}.png", rec_grid)
                save_grid(out_dir / image_dir_name / f"{stem}-originals.png", orig_grid)
                save_grid(out_dir / image_dir_name / f"{stem}-null.png", null_grid)
                psnrs = np.asarray(merged.psnr)
                ssims = [row["ssim"] for row in merged.rows]
                baseline = float(np.mean(merged.null_mean_psnr)) if merged.null_mean_psnr else None
                attack = state["attack"]
                seconds = state["seconds"]
                results.append({
                    "attack": "inversion", "method": method, "target": options.target, "knowledge": knowledge,
                    "position": position_of(knowledge, source),
                    "round": r, "client": k, "source": source, "arch": view.client_arch(k),
                    "batch_size": step.batch_size, "local_steps": step.local_steps, "num_samples": num_samples,
                    "trials": len(batches), "dp_level": dp.level, "n_trials": len(merged.rows),
                    "psnr_mean": float(psnrs.mean()), "psnr_max": float(psnrs.max()),
                    "ssim_mean": float(np.mean(ssims)), "ssim_max": float(np.max(ssims)),
                    "mse_mean": float(np.mean([row["mse"] for row in merged.rows])),
                    **leakage_fields(merged, len(pool_ids), seed=options.seed),
                    "baseline_psnr_mean": baseline,
                    "psnr_gain_over_baseline": float(psnrs.mean()) - baseline if baseline is not None else None,
                    "label_accuracy": float(np.mean([row["predicted_label"] == row["label"] for row in merged.rows])),
                    "feature_rel_error": float(np.mean(state["features"])) if state["features"] else None,
                    "features_recovered": _first(state.get("clusters")),
                    "seconds": seconds, "iterations": state["iterations"],
                    "iterations_per_second": state["iterations"] * len(batches) / seconds if seconds > 0 else None,
                    "priors": [name for name in attack.priors(prior) if name != "server-posterior" or state["posterior_used"]],
                    "prior_fit": prior.fitted(), "paper": attack.paper,
                    "threat_model": _threat_model(options, knowledge, r, k, source),
                    "images": {"reconstructions": f"{image_dir_name}/{stem}.png", "originals": f"{image_dir_name}/{stem}-originals.png",
                               "null": f"{image_dir_name}/{stem}-null.png"},
                    "samples": merged.rows,
                })
    path = out_dir / f"inversion-{options.target}.json"
    previous, commands = _previous_results(path, results)
    all_results = previous + results
    if command:
        commands = [c for c in commands if c != command] + [command]
    write_json(path, {"format_version": RUN_FORMAT_VERSION, "run": str(view.path), "target": options.target,
                      "server_receives_target": server_receives(view.algorithm, options.target),
                      "psnr_cap": PSNR_CAP, "commands": commands, "positions": summarize_positions(all_results),
                      "results": all_results})
    return path


def _first(values):
    values = [v for v in (values or []) if v is not None]
    return values[0] if values else None


def _row_key(row: dict) -> tuple:
    return (row.get("source"), row.get("round"), row.get("client"), row.get("knowledge"), row.get("method"))


def _previous_results(path: Path, new: list[dict]) -> tuple[list[dict], list[str]]:
    """Rows already in the file that this call did not redo (another source, round, client...) are kept.

    So ``privfed compare`` can attack the observed updates and then a replay of the same run
    into one file, and a later call for one more client adds to it.
    """
    if not path.is_file():
        return [], []
    from privfed.io import read_json

    try:
        data = read_json(path)
    except PrivfedError:
        return [], []
    if not isinstance(data, dict):
        return [], []
    redone = {_row_key(row) for row in new}
    old = [row for row in data.get("results", []) if isinstance(row, dict) and "position" in row and _row_key(row) not in redone]
    commands = [c for c in data.get("commands", []) if isinstance(c, str)] if old else []
    return old, commands


def summarize_positions(results: list[dict], alpha: float = 0.05) -> dict:
    """Per attacker position, the strongest row with Bonferroni-widened intervals and the verdict.

    The strongest row is the one with the highest lower gain bound at the family level
    alpha / rows: picking the best of many rows cannot then turn chance into a claim.
    """
    out = {}
    for position in POSITIONS:
        rows = [r for r in results if r.get("position") == position]
        keys = {(r["knowledge"],) + _row_key(r)[:3] + (r["method"],) for r in rows}
        rows = [r for r in rows  # a copy whose original is in the same position counts once
                if not r.get("same_as_knowledge") or (r["same_as_knowledge"],) + _row_key(r)[:3] + (r["method"],) not in keys]
        if not rows:
            continue
        level = familywise_alpha(len(rows), alpha)
        best, best_key = None, None
        for row in rows:
            gain, gain_ci = gain_interval([s["psnr"] for s in row["samples"]], row["null_psnrs"], row["gain_paired"], alpha=level)
            found = Identification([s["identification_rank"] for s in row["samples"]], row["identification_pool"])
            null_found = Identification(row["null_identification_ranks"], row["identification_pool"])
            entry = {
                "method": row["method"], "knowledge": row["knowledge"], "source": row["source"], "round": row["round"],
                "client": row["client"], "psnr_mean": row["psnr_mean"], "null_psnr_mean": row["null_psnr_mean"],
                "gain_db": gain, "gain_db_ci": gain_ci, "identification_top1": row["identification_top1"],
                "identification_top1_ci": found.interval(level), "identification_chance": row["identification_chance"],
                "null_identification_top1": row["null_identification_top1"],
                "null_identification_top1_ci": null_found.interval(level), "n_images": len(row["samples"]),
                "images": row.get("images"),
            }
            entry["leaks"] = leaks(entry["gain_db_ci"], entry["identification_top1_ci"], entry["null_identification_top1_ci"])
            key = (entry["leaks"], entry["gain_db_ci"][0] if entry["gain_db_ci"] else -np.inf, entry["identification_top1_ci"][0])
            if best_key is None or key > best_key:
                best, best_key = entry, key
        out[position] = {**best, "rows": len(rows), "familywise_alpha": level}
    return out


def run_inversion_attacks(run_dir: Path, options: InversionOptions, progress: bool = True, command: str | None = None) -> Path:
    """Attack the run in ``run_dir`` per ``options``; returns the JSON path written.

    ``command``: the ``privfed attack`` line that reproduces this call (stored in ``commands``).
    """
    return attack_view(open_run(run_dir), options, progress, command)
