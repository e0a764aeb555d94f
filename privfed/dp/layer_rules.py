"""Which clipping record each layer type gets, chosen per layer by its sizes.

* Linear: factored (ghost norm, book-keeping sum) when cheaper than per-sample gradients,
  which for a flat input (T = 1) it always is; per-sample bias gradient = output gradient.
* Conv2d, groups = 1: mixed ghost clipping (Bu et al. 2022, https://arxiv.org/abs/2205.10683):
  factored when the ghost norm is the cheaper (:func:`~privfed.dp.ghost_clipping.prefer_ghost`,
  small T against d p: deep 1x1 layers), else per-sample gradients from one library call
  (:mod:`privfed.dp.conv_grad_sample`). Depthwise: always per-sample (d = k*k is tiny).
* GroupNorm / LayerNorm: per-sample affine gradients are per-channel sums, as small as the
  parameters themselves.
* Anything else with trainable parameters: Opacus' per-sample grad sampler for that type.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from privfed.dp.clip_records import ClipRecord, CombinedRecord, PerSampleGradients
from privfed.dp.conv_grad_sample import conv2d_grad_sample, conv2d_weight_per_sample
from privfed.dp.ghost_clipping import FactoredConv2d, FactoredLinear, prefer_ghost
from privfed.errors import PrivfedError

RecordRule = Callable[[nn.Module, torch.Tensor, torch.Tensor], ClipRecord]


def _bias_record(bias: nn.Parameter | None, per_sample: Callable[[], torch.Tensor]) -> list[ClipRecord]:
    if bias is None or not bias.requires_grad:
        return []
    return [PerSampleGradients({bias: per_sample()})]


def linear_record(layer: nn.Linear, a: torch.Tensor, g: torch.Tensor) -> ClipRecord:
    batch = a.shape[0]
    a3 = a.reshape(batch, -1, a.shape[-1])
    g3 = g.reshape(batch, -1, g.shape[-1])
    parts = _bias_record(layer.bias, lambda: g3.sum(1))
    if layer.weight.requires_grad:
        if prefer_ghost(a3.shape[1], layer.in_features, layer.out_features):
            parts.append(FactoredLinear(layer.weight, a3, g3))
        else:
            parts.append(PerSampleGradients({layer.weight: torch.bmm(g3.transpose(1, 2), a3)}))
    return CombinedRecord(parts)


def conv2d_record(layer: nn.Conv2d, a: torch.Tensor, g: torch.Tensor) -> ClipRecord:
    dense = layer.groups == 1 and isinstance(layer.padding, tuple) and layer.padding_mode == "zeros"
    if not dense:  # depthwise or otherwise grouped: per-sample gradients are small
        return PerSampleGradients(conv2d_grad_sample(layer, [a], g))
    parts = _bias_record(layer.bias, lambda: g.sum((2, 3)))
    if layer.weight.requires_grad:
        positions = g.shape[2] * g.shape[3]
        patch = layer.in_channels * layer.kernel_size[0] * layer.kernel_size[1]
        if prefer_ghost(positions, patch, layer.out_channels):
            parts.append(FactoredConv2d(layer, a, g))
        else:
            parts.append(PerSampleGradients({layer.weight: conv2d_weight_per_sample(layer, a, g)}))
    return CombinedRecord(parts)


def group_norm_record(layer: nn.GroupNorm, a: torch.Tensor, g: torch.Tensor) -> ClipRecord:
    grads: dict[nn.Parameter, torch.Tensor] = {}
    batch, channels = a.shape[:2]
    g_flat = g.reshape(batch, channels, -1)
    if layer.weight is not None and layer.weight.requires_grad:
        normalised = F.group_norm(a, layer.num_groups, eps=layer.eps).reshape(batch, channels, -1)
        grads[layer.weight] = normalised.mul_(g_flat).sum(2)  # in place: faster than einsum on CPU
    if layer.bias is not None and layer.bias.requires_grad:
        grads[layer.bias] = g_flat.sum(2)
    return PerSampleGradients(grads)


def layer_norm_record(layer: nn.LayerNorm, a: torch.Tensor, g: torch.Tensor) -> ClipRecord:
    grads: dict[nn.Parameter, torch.Tensor] = {}
    sample_dims = tuple(range(1, a.dim() - len(layer.normalized_shape)))
    if layer.weight is not None and layer.weight.requires_grad:
        normalised = F.layer_norm(a, layer.normalized_shape, eps=layer.eps)
        grads[layer.weight] = (normalised * g).sum(sample_dims) if sample_dims else normalised * g
    if layer.bias is not None and layer.bias.requires_grad:
        grads[layer.bias] = g.sum(sample_dims) if sample_dims else g
    return PerSampleGradients(grads)


RULES: dict[type[nn.Module], RecordRule] = {
    nn.Linear: linear_record,
    nn.Conv2d: conv2d_record,
    nn.GroupNorm: group_norm_record,
    nn.LayerNorm: layer_norm_record,
}


def _opacus_rule(sampler) -> RecordRule:
    def record(layer: nn.Module, a: torch.Tensor, g: torch.Tensor) -> ClipRecord:
        grads = sampler(layer, [a], g)
        return PerSampleGradients({p: gs for p, gs in grads.items() if p.requires_grad})

    return record


def rule_for(layer: nn.Module, name: str) -> RecordRule:
    """The record rule for ``layer`` (named ``name`` in its model); unknown types are refused."""
    rule = RULES.get(type(layer))
    if rule is not None:
        return rule
    from opacus import GradSampleModule

    sampler = GradSampleModule.GRAD_SAMPLERS.get(type(layer))
    if sampler is None:
        raise PrivfedError(
            f"sample-level DP cannot clip layer {name!r} ({type(layer).__name__}): no per-sample gradient "
            "rule for that type; use an architecture from build_model(..., dp=True)"
        )
    return _opacus_rule(sampler)


__all__ = ["RULES", "conv2d_record", "group_norm_record", "layer_norm_record", "linear_record", "rule_for"]
