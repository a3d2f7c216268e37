"""Training methods (losses and their solvers)."""

from rtrbench.methods.base import Batch, Method, MethodContext, NoParams
from rtrbench.methods.pce import FullSupervision, PCEGD, partial_cross_entropy

__all__ = ["Batch", "FullSupervision", "Method", "MethodContext", "NoParams", "PCEGD", "partial_cross_entropy"]
