"""NumPy float64 references of every op, same signatures as bigmodel.ops: the readable spec."""
from .gemm import gemm, matmul

__all__ = ["gemm", "matmul"]
