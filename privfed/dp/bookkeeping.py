"""Per-sample clipping without materialising per-sample gradients of Linear layers.

Opacus' hooks mode stores a per-sample gradient for every parameter: for ``simple`` at
224x224 that is batch x 16928 x 1024 floats for ``fc`` alone, ~10x the non-private step.
Opacus' ghost clipping (Li et al. 2022) avoids it but needs a second backward pass and a
special loss object. We use book-keeping instead (Bu et al. 2023, "Differentially Private
Optimization on Large Model at Small Cost", https://arxiv.org/abs/2210.00038): for a
Linear layer fed a (batch, in) input, sample i's weight gradient is the outer product
``g_i a_i^T``, so its norm is ``|g_i| |a_i|`` and the clipped sum is one matrix product
``(c * G)^T A``. Every other layer keeps Opacus' per-sample gradients. The engine's
training loop stays ``loss.backward(); optimizer.step()``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from opacus import GradSampleModule
from opacus.optimizers import DPOptimizer
from torch import nn

from privfed.dp.conv_grad_sample import conv2d_grad_sample

#: Attribute holding (activations, backprops) of a Linear weight between backward and step.
LOWRANK_ATTR = "_privfed_lowrank"


class BookKeepingGradSampleModule(GradSampleModule):
    """GradSampleModule that keeps 2-D Linear layers' gradients as (A, G) factors.

    Conv2d per-sample gradients come from :func:`conv2d_grad_sample` (one grouped conv).
    """

    GRAD_SAMPLERS = {**GradSampleModule.GRAD_SAMPLERS, nn.Conv2d: conv2d_grad_sample}

    def capture_backprops_hook(self, module, _forward_input, forward_output, loss_reduction, batch_first):
        if (
            not self.hooks_enabled
            or type(module) is not nn.Linear
            or not module.weight.requires_grad
            or getattr(module.weight, "_forward_counter", 0) != 1
            or hasattr(module.weight, "_current_grad_sample")
            or not getattr(module, "activations", None)
            or module.activations[-1][0].dim() != 2
        ):
            return super().capture_backprops_hook(module, _forward_input, forward_output, loss_reduction, batch_first)
        backprops = forward_output[0].detach()
        activations, backprops = self.rearrange_grad_samples(
            module=module, backprops=backprops, loss_reduction=loss_reduction, batch_first=batch_first
        )
        weight = module.weight
        if getattr(weight, LOWRANK_ATTR, None) is not None or weight.grad_sample is not None:
            raise ValueError("gradient accumulation over several backward passes is not supported under DP")
        setattr(weight, LOWRANK_ATTR, (activations[0], backprops))
        weight._forward_counter -= 1
        if module.bias is not None and module.bias.requires_grad:
            module.bias.grad_sample = backprops  # per-sample bias gradient is g_i itself
            module.bias._forward_counter -= 1
        if len(module.activations) == 0 and hasattr(module, "max_batch_len"):
            del module.max_batch_len


class BookKeepingDPOptimizer(DPOptimizer):
    """DPOptimizer that understands the (A, G) factors left by BookKeepingGradSampleModule.

    ``regularizer``: an optional data-independent loss (e.g. FedProx's proximal term) whose
    gradient is added after noising. A term added to the training loss instead would be
    discarded, since the private gradient is rebuilt from per-sample gradients.
    """

    regularizer: Callable[[], torch.Tensor] | None = None

    def set_regularizer(self, fn: Callable[[], torch.Tensor] | None) -> None:
        self.regularizer = fn

    def _has_grads(self) -> bool:
        return any(
            getattr(p, LOWRANK_ATTR, None) is not None or getattr(p, "grad_sample", None) is not None
            for p in self.params
        )

    @property
    def accumulated_iterations(self) -> int:
        return 1

    def _per_sample_sq_norms(self) -> torch.Tensor | None:
        total = None
        for p in self.params:
            lowrank = getattr(p, LOWRANK_ATTR, None)
            if lowrank is not None:
                a, g = lowrank
                sq = a.pow(2).sum(1) * g.pow(2).sum(1)
            elif getattr(p, "grad_sample", None) is not None:
                gs = self._get_flat_grad_sample(p)
                sq = gs.flatten(1).pow(2).sum(1)
            else:
                continue
            sq = sq.to(self.params[0].device, torch.float32)
            total = sq if total is None else total + sq
        return total

    def clip_and_accumulate(self) -> None:
        sq = self._per_sample_sq_norms()
        factor = (self.max_grad_norm / (sq.sqrt() + 1e-6)).clamp(max=1.0)
        for p in self.params:
            lowrank = getattr(p, LOWRANK_ATTR, None)
            if lowrank is not None:
                a, g = lowrank
                grad = (g * factor.to(g.dtype)[:, None]).t() @ a
                setattr(p, LOWRANK_ATTR, None)
            elif getattr(p, "grad_sample", None) is not None:
                gs = self._get_flat_grad_sample(p)
                grad = torch.einsum("i,i...", factor.to(gs.device, gs.dtype), gs)
                p.grad_sample = None
            else:  # parameter unused in this forward pass: zero per-sample gradients
                grad = torch.zeros_like(p)
            grad = grad.to(p.dtype).view_as(p)
            p.summed_grad = grad if p.summed_grad is None else p.summed_grad + grad

    def add_noise(self) -> None:
        for p in self.params:
            noise = torch.normal(
                0.0, self.noise_multiplier * self.max_grad_norm, size=p.summed_grad.shape,
                generator=self.generator, device=p.device, dtype=p.dtype,
            ) if self.noise_multiplier > 0 else 0.0
            p.grad = (p.summed_grad + noise).view_as(p)
            p.summed_grad = None

    def pre_step(self, closure=None) -> bool:
        if not self._has_grads():
            return True  # nothing went through the model: behave like the plain optimizer
        self.clip_and_accumulate()
        self.add_noise()
        self.scale_grad()
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
            setattr(p, LOWRANK_ATTR, None)
        self.original_optimizer.zero_grad(set_to_none)


def strip_opacus_attributes(model: nn.Module) -> None:
    """Remove every attribute Opacus or book-keeping left on parameters and modules."""
    for p in model.parameters():
        for attr in ("grad_sample", "_forward_counter", "_current_grad_sample", "_norm_sample", "summed_grad", LOWRANK_ATTR):
            if hasattr(p, attr):
                delattr(p, attr)
    for m in model.modules():
        for attr in ("activations", "max_batch_len", "autograd_grad_sample_hooks"):
            if attr in m.__dict__:
                delattr(m, attr)
