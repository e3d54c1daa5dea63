// Sparse (CSR) x dense products on the GPU for truncated SVD: Y = A·X, and the CSR -> CSR
// transpose that turns Aᵀ·X into the same forward product. The dense products of the SVD go
// through the CUDA GEMM (gemm.h); the orchestration (range finder, CholeskyQR2, the small SVD)
// is python/bigmodel/ops/svd.py.
//
// Plain C++ (no CUDA types) so the pybind11 glue compiles with the host compiler.
// A is CSR: `rows` x `cols`, indptr[rows + 1], indices[stored] and data[stored] (`stored` is the
// length of the index/data arrays; the entries used are [0, indptr[rows])). Column indices may
// be unsorted and repeated (repeats are summed). Dense blocks are row-major with a leading
// dimension: X (cols x K) at X[j*ldx + c], Y (rows x K) at Y[i*ldy + c], ld >= K; columns beyond
// K are neither read nor written.
//
// Every launcher first validates A on the device (indptr[0] == 0, indptr non-decreasing,
// indptr[rows] <= stored, every used column index in [0, cols)) and waits for that check: a bad
// matrix throws std::invalid_argument before any kernel reads through it. Workspace is device
// memory the caller allocates (CuPy); nothing here allocates. Results are bitwise reproducible:
// no floating-point atomics, every sum has a fixed order.
#pragma once
#include <cstddef>
#include <cstdint>

#include "cuda/gemm.h"  // DType

namespace bm::cuda {

enum class IndexType { i32, i64 };

struct CsrMatrix {
  int64_t rows = 0, cols = 0;
  int64_t stored = 0;              // length of indices and of data
  const void* indptr = nullptr;    // rows + 1 entries
  const void* indices = nullptr;
  const void* data = nullptr;
  IndexType index_type = IndexType::i32;
  DType dtype = DType::f32;        // f32 or f64
};

// Bytes of workspace launch_spmm_csr needs (an upper bound: it depends on `stored`, not on the
// number of entries actually used).
std::size_t spmm_csr_workspace_bytes(int64_t rows, int64_t stored, int64_t K, DType dtype);

// Y (rows x K) = A · X (cols x K). Merge-path SpMM (see svd.cu). Synchronizes the stream once,
// for the validation; the product itself is queued asynchronously.
void launch_spmm_csr(const CsrMatrix& a, const void* X, int64_t ldx, void* Y, int64_t ldy,
                     int64_t K, void* work, std::size_t work_bytes, std::uintptr_t stream);

// Bytes of workspace launch_csr_transpose needs.
std::size_t csr_transpose_workspace_bytes(int64_t rows, int64_t cols, int64_t stored,
                                          IndexType index_type);

// The CSR form of Aᵀ (cols x rows): indptr_t[cols + 1], indices_t[stored], data_t[stored]
// (index type and dtype as A's; entries past indptr_t[cols] are left untouched). Stable
// counting sort by column: within a column the entries keep A's order, so row indices are
// ascending when A's rows are. Synchronizes the stream once, for the validation.
void launch_csr_transpose(const CsrMatrix& a, void* indptr_t, void* indices_t, void* data_t,
                          void* work, std::size_t work_bytes, std::uintptr_t stream);

}  // namespace bm::cuda
