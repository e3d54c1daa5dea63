"""Datasets and loaders: Dataset, TensorDataset, DataLoader, and real datasets (MNIST)."""
from .loader import DataLoader, Dataset, TensorDataset
from .mnist import load_mnist

__all__ = [n for n in dir() if not n.startswith("_")]
