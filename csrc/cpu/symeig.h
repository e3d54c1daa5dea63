// Top-k eigenpairs of a small dense symmetric float64 matrix (the projected Gram matrices of the
// block Lanczos SVD: n = 32..600, typically n = 160, k = 20..40).
//
// Layout: a is row-major n x n with leading dimension lda >= n; only its LOWER triangle
// (a[i * lda + j], j <= i) is read, the strictly upper part is never touched. On return
// w[0..k) holds the k largest eigenvalues in descending order and z (row-major n x k, leading
// dimension ldz >= k) the matching orthonormal eigenvectors, column c for w[c].
// Single-threaded and deterministic: the same input gives the same bits on the same ISA path.
// Throws std::invalid_argument (BM_CHECK) for bad sizes, null pointers or a non-finite entry of
// the lower triangle, before anything is written.
//
// Accuracy (float64, checked by tests/test_symeig.py): |w_i - w_i(LAPACK)| <= 1e-12 ||A||_2,
// ||A z_i - w_i z_i|| <= 1e-11 ||A||_2, ||Z^T Z - I||_max <= 1e-12, also for clusters, exactly
// repeated eigenvalues and rank-deficient matrices. Algorithm: symeig_impl.h; why: symeig.cpp.
#pragma once
#include <cstdint>

namespace bm {

void sym_eig_top(int64_t n, const double* a, int64_t lda, int64_t k, double* w, double* z,
                 int64_t ldz);

// Per-ISA solvers (symeig.cpp portable, symeig_avx2.cpp, symeig_avx512.cpp), all compiled from
// symeig_impl.h; called by sym_eig_top after its checks with amax = max|lower triangle| > 0.
#define BM_SYMEIG_DECL(ns)                                                                     \
  namespace ns {                                                                               \
  void sym_eig_top_run(int64_t n, const double* a, int64_t lda, int64_t k, double* w,          \
                       double* z, int64_t ldz, double amax);                                   \
  }
BM_SYMEIG_DECL(portable)
BM_SYMEIG_DECL(avx2)
BM_SYMEIG_DECL(avx512)
#undef BM_SYMEIG_DECL

}  // namespace bm
