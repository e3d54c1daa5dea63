"""NumPy float64 references of every op, same signatures as bigmodel.ops: the readable spec."""
from .gemm import gemm, matmul
from .svd import spmm_csr, truncated_svd

__all__ = ["gemm", "matmul", "spmm_csr", "truncated_svd"]
