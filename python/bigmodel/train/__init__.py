"""Training loop (Keras-style fit/evaluate/predict for PyTorch-style modules), metrics,
callbacks and checkpoints."""
from .checkpoint import load, save
from .trainer import Callback, EarlyStopping, History, LRScheduler, ModelCheckpoint, Trainer, accuracy

__all__ = [n for n in dir() if not n.startswith("_")]
