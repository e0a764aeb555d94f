"""Gradient-inversion attacks (issue 6): what an honest-but-curious server can rebuild of a
client's images from the updates it receives.

Each method is one small class in its own module, registered in
:data:`attacks.inversion.base.INVERSION_METHODS`; :mod:`attacks.inversion.runner` runs them
on a run directory and writes ``attacks/inversion-<target>.json`` (docs/run-directory.md).
"""

from attacks.inversion import analytic, dlg, inverting_gradients, layerwise, shared_layer  # noqa: F401  (register methods)
from attacks.inversion.base import (
    INVERSION_METHODS,
    ClientStep,
    InversionAttack,
    Observation,
    Reconstruction,
    methods_for,
)
from attacks.inversion.priors import ImagePrior

__all__ = [
    "INVERSION_METHODS",
    "ClientStep",
    "ImagePrior",
    "InversionAttack",
    "Observation",
    "Reconstruction",
    "methods_for",
]
