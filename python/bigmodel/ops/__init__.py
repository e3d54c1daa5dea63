"""Array-level kernels: NumPy in -> NumPy out (CPU module), CuPy in -> CuPy out (CUDA module).

Every op validates its arguments first and raises ValueError/TypeError naming the argument and
the shapes it got; it allocates the output on the inputs' device and calls the native kernel
with the GIL released.
"""
from .gemm import gemm, matmul
from .svd import spmm_csr, truncated_svd

__all__ = ["gemm", "matmul", "spmm_csr", "truncated_svd"]
