// Top-k symmetric eigensolver: argument checks, trivial cases and the ISA dispatch (symeig.h);
// the portable kernels (baseline ISA, 16-byte vectors). The algorithm is in symeig_impl.h.
//
// Why our own: the block Lanczos SVD solves one small dense problem (n ~ 160, k ~ 20..40) per
// restart, and OpenBLAS's LAPACK is slow at these sizes on our machine (Zen 4, one core):
// dsyevr(range="I") takes 1.5 ms for n=160, k=20 and 2.4 ms for k=32 -- dsytrd 0.43 ms, dsterf
// 0.35 ms, and dstebz alone 0.94 ms for 20 eigenvalues, because each bisection there is a chain
// of dependent scalar divisions. Same algorithm family here (tridiagonalize, bisect, inverse
// iteration, back-transform), but with the k eigenvalues processed in lock step, Newton-
// accelerated bisection and register-blocked fused loops; timings in benchmarks/bench_symeig.py.
//
// Variants: avx512 (symeig_avx512.cpp, 64-byte vectors), avx2 (symeig_avx2.cpp, 32), portable
// (here, 16); the same source compiled three times.
#include "cpu/symeig.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "common/check.h"
#include "common/cpu_features.h"

namespace bm {
namespace portable {
#define BM_SYMEIG_VB 16
#include "cpu/symeig_impl.h"
#undef BM_SYMEIG_VB
}  // namespace portable

void sym_eig_top(int64_t n, const double* a, int64_t lda, int64_t k, double* w, double* z,
                 int64_t ldz) {
  BM_CHECK(n >= 1, "sym_eig_top: n must be >= 1, got ", n);
  BM_CHECK(k >= 1 && k <= n, "sym_eig_top: k must be in [1, n], got k=", k, ", n=", n);
  BM_CHECK(lda >= n, "sym_eig_top: lda=", lda, " < n=", n);
  BM_CHECK(ldz >= k, "sym_eig_top: ldz=", ldz, " < k=", k);
  BM_CHECK(a && w && z, "sym_eig_top: null pointer");
  double amax = 0;
  bool finite = true;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j <= i; ++j) {
      const double x = a[i * lda + j];
      finite &= std::isfinite(x);
      amax = std::max(amax, std::fabs(x));
    }
  BM_CHECK(finite, "sym_eig_top: the matrix (n=", n, ") has a non-finite entry");
  if (n == 1 || amax == 0) {  // 1 x 1 or zero: the eigenvectors are the unit vectors
    for (int64_t c = 0; c < k; ++c) {
      w[c] = n == 1 ? a[0] : 0.0;
      for (int64_t j = 0; j < n; ++j) z[j * ldz + c] = j == c ? 1.0 : 0.0;
    }
    return;
  }
#if defined(BM_X86)
  switch (active_isa()) {
    case Isa::avx512: avx512::sym_eig_top_run(n, a, lda, k, w, z, ldz, amax); return;
    case Isa::avx2: avx2::sym_eig_top_run(n, a, lda, k, w, z, ldz, amax); return;
    default: break;
  }
#endif
  portable::sym_eig_top_run(n, a, lda, k, w, z, ldz, amax);
}

}  // namespace bm
