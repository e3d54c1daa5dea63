// Sparse x dense products for truncated SVD (randomized range finder, block Lanczos).
//
// A is CSR: M rows, N columns, indptr[M + 1], indices[nnz] (column of each entry, any order,
// duplicates summed), data[nnz]. Dense blocks are row-major with a leading dimension (ld >= K):
//   spmm_csr   : Y (M x K) = A   · X,  X (N x K)     one pass over A, rows split by nnz
//   spmm_csr_t : Y (N x K) = Aᵀ · X,  X (M x K)     A is read as stored (no Aᵀ is formed):
//                each thread scatters its rows into a private N x K accumulator (thread 0 writes
//                into Y), then the accumulators are summed. Extra memory (threads-1)·N·K.
// Columns beyond K are never read or written (x and y may be column views of larger arrays).
// An index outside [0, N) (or [0, M) for the rows) throws std::invalid_argument; it is checked
// while the entry is loaded, so a bad matrix never touches memory out of bounds.
#pragma once
#include <cstdint>

namespace bm {

template <typename T, typename I>
void spmm_csr(int64_t M, int64_t N, int64_t K, const I* indptr, const I* indices, const T* data,
              const T* X, int64_t ldx, T* Y, int64_t ldy);
template <typename T, typename I>
void spmm_csr_t(int64_t M, int64_t N, int64_t K, const I* indptr, const I* indices,
                const T* data, const T* X, int64_t ldx, T* Y, int64_t ldy);

// Per-ISA entry points (svd.cpp portable, svd_avx2.cpp, svd_avx512.cpp); same signature plus
// the thread count. Return false when an index was out of range.
#define BM_SPMM_DECL(ns)                                                                       \
  namespace ns {                                                                               \
  template <typename T, typename I>                                                            \
  bool spmm_fwd(int64_t, int64_t, int64_t, const I*, const I*, const T*, const T*, int64_t,    \
                T*, int64_t, int);                                                             \
  template <typename T, typename I>                                                            \
  bool spmm_trans(int64_t, int64_t, int64_t, const I*, const I*, const T*, const T*, int64_t,  \
                  T*, int64_t, int);                                                           \
  }
BM_SPMM_DECL(portable)
BM_SPMM_DECL(avx2)
BM_SPMM_DECL(avx512)
#undef BM_SPMM_DECL

}  // namespace bm
