"""Training methods (losses) and the solvers they use."""

from rtrbench.methods.solvers.alpha_expansion import alpha_expansion
from rtrbench.methods.base import Batch, Method, MethodContext, NoParams
from rtrbench.methods.solvers.bilateral import bilateral_filter
from rtrbench.methods.losses.dense_crf import dense_crf_loss
from rtrbench.methods.losses.grid_potts import grid_potts_loss
from rtrbench.methods.losses.relaxations import RELAXATIONS, collision_cross_entropy, potts_relaxation
from rtrbench.methods.pce import PCEGD, FullSupervision, partial_cross_entropy
from rtrbench.methods.solvers.potts import contrast_weights, contrast_weights_torch, potts_energy
from rtrbench.methods.losses.robust import robust_cross_entropy
from rtrbench.methods.world import World

__all__ = [
    "PCEGD",
    "RELAXATIONS",
    "World",
    "Batch",
    "FullSupervision",
    "Method",
    "MethodContext",
    "NoParams",
    "alpha_expansion",
    "bilateral_filter",
    "collision_cross_entropy",
    "contrast_weights",
    "contrast_weights_torch",
    "dense_crf_loss",
    "grid_potts_loss",
    "partial_cross_entropy",
    "potts_energy",
    "potts_relaxation",
    "robust_cross_entropy",
]
