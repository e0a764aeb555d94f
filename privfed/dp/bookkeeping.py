"""Per-sample clipping in one backward pass, without the weight gradients autograd would make.

Opacus' hooks mode stores a per-sample gradient for every parameter: for ``simple`` at
224x224 that is batch x 16928 x 1024 floats for ``fc`` alone, ~10x the non-private step.
Its ghost clipping (Li et al. 2022) avoids that but runs a second backward pass. We use
book-keeping instead (Bu et al. 2023, "Differentially Private Optimization on Large Model
at Small Cost", https://arxiv.org/abs/2210.00038): during the forward pass the parameters
are taken out of the autograd graph, so ``loss.backward()`` computes only activation
gradients; a hook on each layer's output receives its output gradient and turns it, with
the layer's input, into a :class:`~privfed.dp.clip_records.ClipRecord` (per-sample norms,
and what is needed for the clip-weighted sum; see :mod:`privfed.dp.layer_rules`). At
``optimizer.step()`` the clip factors follow from the summed norms, and each layer's
clipped sum is one weighted batch gradient. No weight gradient is computed twice, and the
training loop stays ``loss.backward(); optimizer.step()``.

Contract (checked where it can be): each trainable parameter is used only inside its own
layer's ``forward`` (no tied weights used elsewhere), each layer once per forward pass, and
each backward pass is followed by a step.
"""

from __future__ import annotations

import math

from collections.abc import Callable

import torch
from opacus.optimizers import DPOptimizer
from torch import nn

from privfed.dp.clip_records import ClipRecord
from privfed.dp.layer_rules import RecordRule, rule_for
from privfed.dp.noise import NoiseStream
from privfed.errors import PrivfedError


class _EmptyBatch(ClipRecord):
    """A layer that saw an empty (Poisson) batch: no samples, zero gradient."""

    def __init__(self, layer: nn.Module, device: torch.device) -> None:
        self.params = [p for p in layer.parameters(recurse=False) if p.requires_grad]
        self.sq_norms = torch.zeros(0, device=device)

    def weighted_sum(self, weights: torch.Tensor) -> dict[nn.Parameter, torch.Tensor]:
        return {p: torch.zeros_like(p) for p in self.params}


class BookKeepingGradSampleModule(nn.Module):
    """Wraps ``module``; after each backward pass holds one clip record per trainable layer.

    ``loss_reduction``: ``"mean"`` if the loss is the batch mean of per-sample losses (each
    sample's gradient is then the batch size times its share), ``"sum"`` if their sum.
    """

    def __init__(self, module: nn.Module, loss_reduction: str = "mean") -> None:
        super().__init__()
        if loss_reduction not in ("mean", "sum"):
            raise PrivfedError(f"loss_reduction must be 'mean' or 'sum', got {loss_reduction!r}")
        self._module = module
        self.loss_reduction = loss_reduction
        self._trainable = [p for p in module.parameters() if p.requires_grad]
        self._records: dict[nn.Module, ClipRecord] = {}
        self._batch_size: int | None = None
        self._capturing = False
        self._handles = []
        for name, layer in module.named_modules():
            if any(p.requires_grad for p in layer.parameters(recurse=False)):
                self._handles.append(layer.register_forward_hook(self._capture_hook(rule_for(layer, name), name)))

    def forward(self, *args, **kwargs):
        if not torch.is_grad_enabled() or self._capturing:
            return self._module(*args, **kwargs)
        for p in self._trainable:  # no weight gradients in this graph: the records replace them
            p.requires_grad_(False)
        self._capturing = True
        try:
            return self._module(*args, **kwargs)
        finally:
            self._capturing = False
            for p in self._trainable:
                p.requires_grad_(True)

    def _capture_hook(self, rule: RecordRule, name: str):
        def hook(layer: nn.Module, inputs: tuple, output: torch.Tensor):
            if not self._capturing:
                return None
            if not isinstance(output, torch.Tensor):
                raise PrivfedError(f"sample-level DP cannot clip layer {name!r}: its output is not a single tensor")
            activation = inputs[0].detach()
            replaced = not output.requires_grad
            if replaced:  # nothing below needs a gradient: the graph starts at this output
                output = output.detach().requires_grad_(True)
            output.register_hook(lambda grad: self._record(rule, name, layer, activation, grad.detach()))
            return output if replaced else None

        return hook

    def _record(self, rule: RecordRule, name: str, layer: nn.Module, activation: torch.Tensor, grad: torch.Tensor) -> None:
        if layer in self._records:
            raise PrivfedError(
                f"layer {name!r} received a second gradient before optimizer.step(): under sample-level DP "
                "each layer must be used once per forward pass, and each backward pass followed by a step"
            )
        batch = activation.shape[0]
        self._batch_size = batch
        if batch == 0:
            self._records[layer] = _EmptyBatch(layer, activation.device)
        else:
            self._records[layer] = rule(layer, activation, grad)

    @property
    def has_records(self) -> bool:
        return bool(self._records)

    def take_records(self) -> tuple[list[ClipRecord], float]:
        """This step's records and the factor from recorded to per-sample gradients; clears them."""
        records = list(self._records.values())
        scale = float(self._batch_size) if self.loss_reduction == "mean" and self._batch_size else 1.0
        self.clear_records()
        return records, scale

    def clear_records(self) -> None:
        self._records = {}
        self._batch_size = None

    def cleanup(self) -> None:
        """Remove the hooks; ``module`` is then an ordinary model again."""
        for handle in self._handles:
            handle.remove()
        self._handles = []
        self.clear_records()


class BookKeepingDPOptimizer(DPOptimizer):
    """DPOptimizer whose clipped sum comes from the records of a BookKeepingGradSampleModule.

    ``regularizer``: an optional data-independent loss (e.g. FedProx's proximal term) whose
    gradient is added after noising. A term added to the training loss instead would be
    discarded, since the private gradient is rebuilt from per-sample gradients.
    """

    regularizer: Callable[[], torch.Tensor] | None = None

    def __init__(self, optimizer: torch.optim.Optimizer, *, module: BookKeepingGradSampleModule, clipping: str = "flat",
                 **kwargs) -> None:
        super().__init__(optimizer, **kwargs)
        self.module = module
        self.clipping = clipping
        self._noise = NoiseStream(self.generator)

    def close(self) -> None:
        """Stop drawing noise ahead (call when training with this optimizer is over)."""
        self._noise.discard()

    def set_regularizer(self, fn: Callable[[], torch.Tensor] | None) -> None:
        self.regularizer = fn

    @property
    def accumulated_iterations(self) -> int:
        return 1

    @property
    def _divisor(self) -> float:
        """What a mean loss divides the noisy sum by (Opacus' ``scale_grad``)."""
        return float(self.expected_batch_size * self.accumulated_iterations) if self.loss_reduction == "mean" else 1.0

    def clip_and_accumulate(self) -> None:
        """p.summed_grad = sum of clipped per-sample gradients, already divided by ``_divisor``.

        ``clipping="flat"`` clips each sample's whole gradient to C. ``"per-layer"`` clips each
        layer's part to C / sqrt(L) for L layers (McMahan et al. 2018, sec. 3; group-wise
        clipping of He et al. 2023, https://arxiv.org/abs/2212.01539): the whole gradient is
        still at most C, so noise and accounting are unchanged, but a small layer whose
        gradient carries little norm (the classifier, which sets the decision threshold) no
        longer gets a vanishing share of each sample's budget.
        """
        records, scale = self.module.take_records()
        device = self.params[0].device
        divide = scale / self._divisor
        sums: dict[nn.Parameter, torch.Tensor] = {}
        if self.clipping == "per-layer":
            budget = self.max_grad_norm / math.sqrt(len(records))
            for record in records:
                norms = record.sq_norms.to(device, torch.float64).sqrt() * scale
                sums.update(record.weighted_sum((budget / (norms + 1e-6)).clamp(max=1.0) * divide))
        else:
            sq_norms = torch.stack([record.sq_norms.to(device, torch.float64) for record in records]).sum(0) * scale**2
            factor = (self.max_grad_norm / (sq_norms.sqrt() + 1e-6)).clamp(max=1.0)
            for record in records:
                sums.update(record.weighted_sum(factor * divide))
        for p in self.params:
            p.summed_grad = sums[p].to(p.dtype).view_as(p) if p in sums else torch.zeros_like(p)

    def add_noise(self) -> None:
        """p.grad = (clipped sum + N(0, (sigma C)^2)) / ``_divisor``, as one multi-tensor op."""
        params = self.params
        grads = [p.summed_grad for p in params]
        std = self.noise_multiplier * self.max_grad_norm
        if std > 0:
            noise = self._noise.take(sum(g.numel() for g in grads), grads[0].device, grads[0].dtype)
            pieces = noise.split([g.numel() for g in grads])
            torch._foreach_add_(grads, [n.view_as(g).to(g.dtype) for n, g in zip(pieces, grads)], alpha=std / self._divisor)
        for p, grad in zip(params, grads):
            p.grad = grad
            p.summed_grad = None

    def pre_step(self, closure=None) -> bool:
        if not self.module.has_records:
            return True  # nothing went through the model: behave like the plain optimizer
        self.clip_and_accumulate()
        self.add_noise()  # the mean's scaling is folded into both
        if self.regularizer is not None:
            params = self.params
            extra = torch.autograd.grad(self.regularizer(), params, allow_unused=True)
            for p, g in zip(params, extra):
                if g is not None:
                    p.grad = p.grad + g
        if self.step_hook:
            self.step_hook(self)
        return True

    def zero_grad(self, set_to_none: bool = False) -> None:
        for p in self.params:
            p.grad_sample = None
            p.summed_grad = None
        self.module.clear_records()
        self.original_optimizer.zero_grad(set_to_none)


def strip_opacus_attributes(model: nn.Module) -> None:
    """Remove every attribute Opacus or book-keeping left on parameters and modules."""
    for p in model.parameters():
        for attr in ("grad_sample", "_forward_counter", "_current_grad_sample", "_norm_sample", "summed_grad"):
            if hasattr(p, attr):
                delattr(p, attr)
    for m in model.modules():
        for attr in ("activations", "max_batch_len", "autograd_grad_sample_hooks"):
            if attr in m.__dict__:
                delattr(m, attr)
