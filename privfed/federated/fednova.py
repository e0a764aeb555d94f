"""FedNova: normalised averaging, so clients that take more local steps do not dominate.

Wang, Liu, Liang, Joshi, Poor, "Tackling the Objective Inconsistency Problem in
Heterogeneous Federated Optimization", NeurIPS 2020, https://arxiv.org/abs/2007.07481.

With p_k = n_k / n, client k's cumulative change Delta_k = w_global - w_k is divided by
||a_k||_1 (tau_k local steps for plain SGD or Adam; for SGD with momentum rho started from
a fresh buffer, ||a_k||_1 = [tau_k - rho (1 - rho^tau_k) / (1 - rho)] / (1 - rho)), and the
average of the normalised changes is rescaled by tau_eff = sum_k p_k ||a_k||_1:

    w_new = w_global - tau_eff * sum_k p_k Delta_k / ||a_k||_1

With equal ||a_k||_1 this is FedAvg exactly.
"""

from __future__ import annotations

import torch

from privfed.federated.strategy import ALGORITHMS, FedAvg


def momentum_a_norm(steps: int, momentum: float) -> float:
    """||a||_1 for ``steps`` SGD steps with heavy-ball momentum (PyTorch convention, no dampening)."""
    if momentum == 0 or steps == 0:
        return float(steps)
    rho = float(momentum)
    return (steps - rho * (1 - rho**steps) / (1 - rho)) / (1 - rho)


@ALGORITHMS.register("fednova")
class FedNova(FedAvg):
    """Only ``aggregate_train`` differs from FedAvg; clients report ``a_norm`` with their update."""

    name = "fednova"

    def aggregate_train(self, server_round, global_state, updates):
        total = float(sum(u.num_samples for u in updates))
        weights = [u.num_samples / total for u in updates]
        tau_eff = sum(p * u.a_norm for p, u in zip(weights, updates))
        result = {}
        for name, current in global_state.items():
            if not current.is_floating_point():
                result[name] = torch.stack([u.tensors[name] for u in updates]).amax(0)
                continue
            direction = torch.zeros_like(current, dtype=torch.float64)
            for p, u in zip(weights, updates):
                if u.a_norm > 0:
                    direction += (current.double() - u.tensors[name].double()) * (p / u.a_norm)
            result[name] = (current.double() - tau_eff * direction).to(current.dtype)
        return result
