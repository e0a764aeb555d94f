"""Can the layer-wise attack go one layer below fc? conv3's input from frozen max-pool switches.

Usage:
    .venv/bin/python bench/conv3_switches.py [--images 5] [--threads 1]

R-GAP / R-CONV's next step after the fc input ``h`` (exact at batch 1): with the max-pool
switches of ``simple``'s last block frozen (which of the 9 cells of each 3x3 window holds
its maximum) and the ReLU set known from ``h > 0``, conv3's weight gradient and ``h`` itself
are *linear* in conv3's input ``r2`` (16 x 18 x 18 at 64x64): about 5,100 equations for
5,184 unknowns, of which 4,624 reach ``h`` at all (the pool drops the last row and column).
The gain of the whole attack hinges on that input: the pixel pass given the true ``r2``
measured +5.7 dB against +3.7 dB today (issue 14's note).

Per attacked image (64x64, one plain SGD step of a freshly initialised ``simple``,
knowledge init, as in bench/inversion.py) this prints, on the 4,624 visible values of r2:

* the rank of the linear system with the true switches;
* ``cand``: relative error of the ``layerwise`` reconstruction's r2 (the baseline);
* ``true-sw``: the system solved with the *true* switches, its null space filled from the
  candidate (ridge towards it): what the cascade step gives if the switches are known;
* ``cand-sw``: the same with the candidate's own switches (what an attacker can do today);
* the share of active windows whose switch the candidate has right.

The dense solve is for 64x64 only (at 224x224 r2 has 82,944 values); about a minute per
image on 2 cores (the attack, two solves and two rank computations).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from attacks.inversion import INVERSION_METHODS, ClientStep, ImagePrior, Observation
from attacks.inversion.layerwise import output_gradients
from attacks.inversion.simulate import client_update
from privfed.models import build_model

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "brain-mri"
SIZE = 64
SERVER_IMAGES = 256
#: ridge weight towards the candidate: small, so it only fills the system's null space
RIDGE = 1e-6


def backbone_parts(backbone, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(r2, a3): conv3's input after ReLU and conv3's output before it, for ``simple``."""
    r2 = F.relu(backbone.conv2(backbone.pool(F.relu(backbone.conv1(images)))))
    return r2, backbone.conv3(r2)


def pool_switches(a3: torch.Tensor) -> torch.Tensor:
    """Flat position (in conv3's output map) of each 3x3 window's maximum, per channel: (C, windows)."""
    _, index = F.max_pool2d(F.relu(a3)[None], 3, return_indices=True)
    return index[0].flatten(1)


def frozen_switch_system(conv3, switches, output_gradient, h, shape, gradient_norm):
    """f(r2) = [conv3's weight gradient / its norm, conv3's output at the switches / |h|], linear in r2."""
    weight, bias = conv3.weight.detach().double().flatten(1), conv3.bias.detach().double()
    active = h > 0

    def system(r2_flat: torch.Tensor) -> torch.Tensor:
        patches = F.unfold(r2_flat.view(shape)[None], 3)[0]                    # (C_in*9, positions)
        routed = torch.zeros(weight.shape[0], patches.shape[1], dtype=patches.dtype)
        routed.scatter_(1, switches, output_gradient * active)                  # dL/da3, zero off the switches
        weight_gradient = (routed @ patches.T).flatten() / gradient_norm
        at_switches = (weight @ patches + bias[:, None]).gather(1, switches)[active] / h.norm()
        return torch.cat([weight_gradient, at_switches])

    return system


def solve(system, target: torch.Tensor, prior: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Least squares with a tiny ridge towards ``prior`` (it only decides the null space); (solution, rank)."""
    zero = torch.zeros_like(prior)
    jacobian = torch.func.jacrev(system)(zero)
    offset = system(zero)
    normal = jacobian.T @ jacobian + RIDGE * torch.eye(jacobian.shape[1], dtype=jacobian.dtype)
    solution = torch.linalg.solve(normal, jacobian.T @ (target - offset) + RIDGE * prior)
    return solution.clamp(min=0), int(torch.linalg.matrix_rank(jacobian))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    if not DATA.is_dir():
        print(f"skipped: {DATA} not found (the brain-MRI images are needed for this benchmark)")
        return 0
    torch.set_num_threads(args.threads)
    from privfed.data import open_dataset

    dataset = open_dataset(DATA, SIZE)
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(0)).tolist()
    server_images, _ = dataset.load([dataset.ids[i] for i in order[:SERVER_IMAGES]])
    torch.manual_seed(0)
    model = build_model("simple", image_size=SIZE, shared_width=1024).eval()
    prior = ImagePrior.from_server_images(server_images, model)
    step = ClientStep(lr=0.01, local_steps=1, batch_size=1)
    names = [name for name, _ in model.named_parameters()]
    backbone = model.backbone
    print(f"# simple at {SIZE}x{SIZE}, one plain SGD step, knowledge init; relative error of conv3's input on its "
          f"visible values; {torch.get_num_threads()} thread(s)")
    print(f"{'image':>5} {'rank':>5} {'cand':>6} {'true-sw':>8} {'cand-sw':>8} {'switches right':>15}")
    rows = []
    for trial in range(args.images):
        images, labels = dataset.load([dataset.ids[order[-1 - trial]]])
        update = client_update(model, images, labels, step, names)
        observation = Observation(model, update, step, 1, SIZE, 2, target="full-model", prior=prior)
        candidate = INVERSION_METHODS.get("layerwise")(seed=trial).reconstruct(observation).images
        with torch.no_grad():
            r2, a3 = backbone_parts(backbone, images)
            r2_candidate, a3_candidate = backbone_parts(backbone, candidate)
            h = torch.flatten(backbone(images), 1)
        channels = a3.shape[1]
        h_map = h[0].view(channels, -1).double()
        output_gradient = output_gradients(model, h, labels)[0].view(channels, -1).double()
        weight_gradient = (-update["backbone.conv3.weight"] / step.lr).double().flatten()
        target = torch.cat([weight_gradient / weight_gradient.norm(), h_map[h_map > 0] / h_map.norm()])
        truth, start = r2[0].double().flatten(), r2_candidate[0].double().flatten()
        visible = torch.zeros_like(r2[0], dtype=torch.bool)
        visible[:, : 3 * (a3.shape[-2] // 3) + 2, : 3 * (a3.shape[-1] // 3) + 2] = True
        visible = visible.flatten()

        def error(x: torch.Tensor) -> float:
            return float((x - truth)[visible].norm() / truth[visible].norm())

        true_switches, candidate_switches = pool_switches(a3[0]), pool_switches(a3_candidate[0])
        results = {}
        for name, switches in (("true", true_switches), ("candidate", candidate_switches)):
            system = frozen_switch_system(backbone.conv3, switches, output_gradient, h_map, r2[0].shape,
                                          weight_gradient.norm())
            solution, rank = solve(system, target, start)
            results[name] = (error(solution), rank)
        right = float((candidate_switches == true_switches)[h_map > 0].double().mean())
        row = (results["true"][1], error(start), results["true"][0], results["candidate"][0], right)
        rows.append(row)
        print(f"{trial:5d} {row[0]:5d} {row[1]:6.3f} {row[2]:8.3f} {row[3]:8.3f} {row[4]:15.2f}", flush=True)
    mean = np.mean(np.array(rows), axis=0)
    print(f" mean {mean[0]:5.0f} {mean[1]:6.3f} {mean[2]:8.3f} {mean[3]:8.3f} {mean[4]:15.2f}")
    print(f"error relative to the candidate's: true switches {mean[2] / mean[1]:.2f}x, candidate switches "
          f"{mean[3] / mean[1]:.2f}x (below 1: the step would help)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
