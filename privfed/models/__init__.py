"""Model registry: one builder per architecture, each returning the shared head.

``build_model(arch, ...)`` dispatches through :data:`MODEL_BUILDERS`; every model exposes
``backbone``, ``fc``, ``shared`` and ``classifier`` (see :mod:`privfed.models.head`).
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from privfed.errors import PrivfedError
from privfed.models.head import SharedHeadModel
from privfed.models.simple import SimpleBackbone, simple_feature_dim
from privfed.registry import Registry

#: name -> function(image_size, dp) -> (backbone, feature_dim)
MODEL_BUILDERS: Registry[Callable[[int, bool], tuple[nn.Module, int]]] = Registry("architecture", "--arch")

#: Smallest image side each architecture accepts (its total downsampling).
MIN_IMAGE_SIZE: dict[str, int] = {}


def register_architecture(name: str, min_image_size: int):
    def decorator(builder):
        MODEL_BUILDERS.add(name, builder)
        MIN_IMAGE_SIZE[name] = min_image_size
        return builder

    return decorator


@register_architecture("simple", 23)
def _simple(image_size: int, dp: bool) -> tuple[nn.Module, int]:
    return SimpleBackbone(), simple_feature_dim(image_size)


@register_architecture("mobilenet_v3_large", 32)
def _mobilenet_v3_large(image_size: int, dp: bool) -> tuple[nn.Module, int]:
    from privfed.models.torchvision_backbones import mobilenet_v3_large_backbone

    return mobilenet_v3_large_backbone(dp)


@register_architecture("mobilenet_v3_small", 32)
def _mobilenet_v3_small(image_size: int, dp: bool) -> tuple[nn.Module, int]:
    from privfed.models.torchvision_backbones import mobilenet_v3_small_backbone

    return mobilenet_v3_small_backbone(dp)


@register_architecture("densenet121", 32)
def _densenet121(image_size: int, dp: bool) -> tuple[nn.Module, int]:
    from privfed.models.torchvision_backbones import densenet121_backbone

    return densenet121_backbone(dp)


ARCHITECTURES: list[str] = MODEL_BUILDERS.names()


def build_model(
    arch: str, num_classes: int = 2, image_size: int = 224, shared_width: int = 1024, dp: bool = False
) -> SharedHeadModel:
    """Build a randomly initialised model; seed torch beforehand for repeatable weights.

    ``dp=True`` gives the Opacus-compatible variant (GroupNorm instead of BatchNorm); every
    variant is free of in-place operations.
    """
    builder = MODEL_BUILDERS.get(arch)
    if image_size < MIN_IMAGE_SIZE[arch]:
        raise PrivfedError(
            f"--image-size {image_size} is too small for architecture {arch!r}; use at least {MIN_IMAGE_SIZE[arch]}"
        )
    if shared_width < 1:
        raise PrivfedError(f"shared width must be positive, got {shared_width}")
    if num_classes < 2:
        raise PrivfedError(f"num_classes must be at least 2, got {num_classes}")
    backbone, feature_dim = builder(image_size, dp)
    return SharedHeadModel(backbone, feature_dim, num_classes, shared_width, arch)


__all__ = ["ARCHITECTURES", "MIN_IMAGE_SIZE", "MODEL_BUILDERS", "SharedHeadModel", "build_model", "register_architecture"]
