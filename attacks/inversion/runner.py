"""Run the gradient-inversion attacks on a run directory; write ``attacks/inversion-<target>.json``.

Threat model: the attacker is the server. It has what it observed (``observed/``), its own
model and data (``split.server``), the architecture names and, per ``knowledge``, the
client's starting weights (see :mod:`attacks.run_access`). The evaluator additionally holds
the ground truth (the client's images, from split.json) to score reconstructions.

Two kinds of rows, told apart by the field ``source``:

* ``"observed"`` (default, ``batch_size`` and ``local_steps`` left ``None``): the attack
  targets the real update the client sent (``received - before``), which covers a whole local
  epoch over all of the client's samples. The attack reconstructs ``max_images`` candidates,
  simulating the client's local steps (lr, steps, batch size, momentum from meta.json) on
  them, and each candidate is matched to the closest of the client's true images. This is
  the honest figure: how much leaks from the updates the run really produced.
* ``"replay"`` (``batch_size`` and/or ``local_steps`` given): the evaluator simulates client
  k's training step on ``batch_size`` of its true images (chosen by ``seed``), from the
  client's real weights at that round (the oracle: it simulates the client), for
  ``local_steps`` steps over that batch (default 1; ``batch_size`` defaults to the run's),
  applying the run's DP mechanism when the run used one; the attacker then attacks that
  update with its own knowledge level. Batch 1, one step is the worst case.
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
from attacks.metrics.image import PSNR_CAP, psnr, score_reconstructions
from attacks.run_access import KNOWLEDGE_LEVELS, KNOWLEDGE_MEANING, check_knowledge, open_run
from privfed.devices import resolve_device
from privfed import RUN_FORMAT_VERSION
from privfed.errors import PrivfedError
from privfed.io import write_json
from privfed.models.mapping import embedding_matrix, to_common

SHARED = ("shared.weight", "shared.bias")
MAX_SERVER_IMAGES = 64

#: Iterations per method on ``observed`` rows when ``--iterations`` is not given. An observed
#: update covers a whole local epoch (the quick preset: 7 steps of 32 images, momentum), which
#: no attack inverts well, and the update-matching attacks simulate every local step per
#: iteration; these caps keep a default ``privfed attack RUN --kind inversion`` on the quick
#: preset to a few minutes on 2 CPU cores. Replays use each method's own default.
#: Candidates reconstructed from an observed (whole-epoch) update when --max-images is not given.
OBSERVED_MAX_IMAGES = 4
OBSERVED_ITERATIONS = {"analytic": 200, "shared-analytic": 200, "inverting-gradients": 20, "dlg": 10, "idlg": 10,
                       "shared-gradient-matching": 50}


@dataclass
class InversionOptions:
    target: str
    knowledge: list[str] = field(default_factory=lambda: list(KNOWLEDGE_LEVELS))
    methods: list[str] | None = None  # None: every method applicable to the target
    rounds: list[int] | None = None  # None: every observed round
    clients: list[int] | None = None  # None: every client of each round
    batch_size: int | None = None  # None (with local_steps None): attack the real observed update
    local_steps: int | None = None
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
    for name, value in (("--batch-size", options.batch_size), ("--local-steps", options.local_steps), ("--iterations", options.iterations)):
        if value is not None and value < (0 if name == "--iterations" else 1):
            raise PrivfedError(f"{name} must be positive, got {value}")
    applicable = methods_for(options.target)
    if options.methods is None:
        return applicable
    for name in options.methods:
        INVERSION_METHODS.get(name)  # unknown name: PrivfedError with a did-you-mean
        if name not in applicable:
            raise PrivfedError(f"--method {name} does not attack --target {options.target}; use one of: {', '.join(applicable)}")
    return list(options.methods)


def _threat_model(options: InversionOptions, knowledge: str, r: int, k: int, source: str) -> str:
    what = "full model update" if options.target == "full-model" else "shared-layer update"
    how = ("the real update it received" if source == "observed"
           else "a replayed update of a batch of the client's own images (worst case under chosen conditions)")
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


def attack_view(view, options: InversionOptions, progress: bool = True) -> Path:
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
    dp = DPMechanism.from_config(view.config.get("dp"))
    out_dir = view.path / "attacks"
    image_dir_name = f"inversion-{options.target}"
    server_ids = list(view.split.server)[:MAX_SERVER_IMAGES]
    server_images = view.images(server_ids)[0] if server_ids else None

    tasks = []
    for r in rounds:
        clients = view.round_clients(r)
        if options.clients is not None:
            missing = [k for k in options.clients if k not in clients]
            if missing:
                raise PrivfedError(f"--client {missing[0]} did not take part in round {r}; clients of that round: {clients}")
            clients = list(options.clients)
        tasks += [(r, k, knowledge) for k in clients for knowledge in options.knowledge]

    results = []
    seen_models: dict[tuple[int, int], list] = {}
    from rich.progress import Progress

    with Progress(disable=not progress, transient=True) as bar:
        task_id = bar.add_task(f"inversion ({options.target})", total=len(tasks) * len(methods))
        for r, k, knowledge in tasks:
            meta = view.client_meta(r, k)
            ids = view.client_ids(k)
            model = view.attacker_model(r, k, knowledge, device)
            twin = _same_model_as(model, seen_models.setdefault((r, k), []))
            if twin is not None:  # e.g. FedAvg: none, init and full all mean "the global model it sent"
                copies = [dict(row, knowledge=knowledge, same_as_knowledge=twin,
                               threat_model=_threat_model(options, knowledge, r, k, row["source"]))
                          for row in results if row["round"] == r and row["client"] == k and row["knowledge"] == twin]
                results.extend(copies)
                bar.advance(task_id, len(methods))
                continue
            seen_models[(r, k)].append((knowledge, model))
            generator = torch.Generator().manual_seed(options.seed * 1000 + r * 97 + k)
            if options.replay:
                source = "replay"
                batch = options.batch_size or int(meta.get("batch_size", 1))
                step = ClientStep(lr=float(meta.get("lr", 0.01)), local_steps=options.local_steps or 1, batch_size=batch,
                                  momentum=float(meta.get("momentum", 0.0) or 0.0))
                chosen = torch.randperm(len(ids), generator=generator)[: min(batch, len(ids))].tolist()
                truth_ids = [ids[i] for i in chosen]
                images, labels = view.images(truth_ids)
                client = view.attacker_model(r, k, "full", device)
                names = list(SHARED) if view.algorithm == "partial" else [n for n, _ in client.named_parameters()]
                update = client_update(client, images.to(device), labels.to(device), step, names, dp, generator)
                num_images, num_samples = len(truth_ids), len(truth_ids)
            else:
                source = "observed"
                step = ClientStep(lr=float(meta.get("lr", 0.01)), local_steps=int(meta.get("local_steps", 1)),
                                  batch_size=int(meta.get("batch_size", 1)), momentum=float(meta.get("momentum", 0.0) or 0.0),
                                  optimizer=str(meta.get("optimizer", "sgd")))
                truth_ids = ids
                images, labels = view.images(truth_ids)
                update = view.update(r, k)
                num_samples = int(meta.get("num_samples", len(ids)))
                num_images = min(options.max_images or OBSERVED_MAX_IMAGES, num_samples)
            update = {n: t.to(device) for n, t in _restrict(update, model, options.target, seed_cfg).items()}
            prior = ImagePrior.from_server_images(server_images, model) if server_images is not None else ImagePrior()
            observation = Observation(model=model, update=update, step=step, num_images=num_images,
                                      image_size=view.image_size, num_classes=view.num_classes,
                                      target=options.target, prior=prior)
            truth_features = _true_features(view, r, k, images, model, device) if options.target == "shared-layer" else None
            for method in methods:
                iterations = options.iterations
                if iterations is None and source == "observed":
                    iterations = OBSERVED_ITERATIONS.get(method)
                attack = INVERSION_METHODS.get(method)(iterations=iterations, seed=options.seed)
                start = time.perf_counter()
                rec = attack.reconstruct(observation)
                seconds = time.perf_counter() - start
                scores = score_reconstructions(rec.images, images, truth_ids, labels.tolist(), rec.labels.tolist())
                stem = f"r{r}-c{k}-{knowledge}-{method}-{source}"
                order = [s.reconstruction_index for s in scores]
                matched = [truth_ids.index(s.sample_id) for s in scores]
                save_grid(out_dir / image_dir_name / f"{stem}.png", rec.images[order])
                save_grid(out_dir / image_dir_name / f"{stem}-originals.png", images[matched])
                psnrs = np.minimum([s.psnr for s in scores], PSNR_CAP)
                # What the server gets without attacking at all: its own mean image as the guess.
                baseline = (float(np.mean([min(psnr(prior.mean_image, images[i]), PSNR_CAP) for i in matched]))
                            if prior.mean_image is not None else None)
                feature_error = None
                if rec.features is not None and truth_features is not None:
                    feature_error = _feature_error(rec.features, truth_features)
                results.append({
                    "attack": "inversion", "method": method, "target": options.target, "knowledge": knowledge,
                    "round": r, "client": k, "source": source, "arch": view.client_arch(k),
                    "batch_size": step.batch_size, "local_steps": step.local_steps, "num_samples": num_samples,
                    "dp_level": dp.level, "n_trials": len(scores),
                    "psnr_mean": float(np.mean(psnrs)), "psnr_max": float(np.max(psnrs)),
                    "ssim_mean": float(np.mean([s.ssim for s in scores])), "ssim_max": float(np.max([s.ssim for s in scores])),
                    "mse_mean": float(np.mean([s.mse for s in scores])),
                    "baseline_psnr_mean": baseline,
                    "psnr_gain_over_baseline": float(np.mean(psnrs)) - baseline if baseline is not None else None,
                    "label_accuracy": float(np.mean([s.predicted_label == s.label for s in scores])),
                    "feature_rel_error": feature_error, "features_recovered": rec.stats.get("clusters_found"),
                    "seconds": seconds, "iterations": rec.iterations,
                    "iterations_per_second": rec.iterations / seconds if seconds > 0 else None,
                    "priors": attack.priors(prior), "paper": attack.paper,
                    "threat_model": _threat_model(options, knowledge, r, k, source),
                    "images": {"reconstructions": f"{image_dir_name}/{stem}.png", "originals": f"{image_dir_name}/{stem}-originals.png"},
                    "samples": [{**s.row(), "psnr": min(s.psnr, PSNR_CAP)} for s in scores],
                })
                bar.advance(task_id)
    path = out_dir / f"inversion-{options.target}.json"
    write_json(path, {"format_version": RUN_FORMAT_VERSION, "run": str(view.path), "target": options.target,
                      "psnr_cap": PSNR_CAP, "results": results})
    return path


def run_inversion_attacks(run_dir: Path, options: InversionOptions, progress: bool = True) -> Path:
    """Attack the run in ``run_dir`` per ``options``; returns the JSON path written."""
    return attack_view(open_run(run_dir), options, progress)
