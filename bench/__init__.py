"""rtrbench: optimizers of regularized losses for scribble-supervised segmentation."""
__version__ = "0.1.0"
