// SpMM dispatcher (svd.h) and the portable kernels (baseline ISA, 16-byte vectors).
//
// Variants: avx512 (svd_avx512.cpp, 64-byte vectors), avx2 (svd_avx2.cpp, 32), portable (here);
// all three are the same source (spmm_kernels.h) compiled with different flags.
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <type_traits>
#include <vector>

#include "cpu/svd.h"

#include "common/check.h"
#include "common/cpu_features.h"

namespace bm {
namespace portable {
#define BM_SPMM_VB 16
#include "cpu/spmm_kernels.h"
#undef BM_SPMM_VB
}  // namespace portable

namespace {
template <typename T, typename I>
void check_ptr(int64_t M, int64_t N, int64_t K, const I* indptr, int64_t ldx, int64_t ldy,
               const char* name) {
  BM_CHECK(M >= 0 && N >= 0 && K >= 0, name, ": negative size (M=", M, ", N=", N, ", K=", K, ")");
  BM_CHECK(indptr[0] == 0, name, ": a.indptr[0] must be 0, got ", static_cast<int64_t>(indptr[0]));
  for (int64_t i = 0; i < M; ++i)
    BM_CHECK(indptr[i + 1] >= indptr[i], name, ": a.indptr must be non-decreasing (row ", i, ")");
}
}  // namespace

#define BM_SPMM_DISPATCH(fn, ...)                                                              \
  switch (active_isa()) {                                                                      \
    case Isa::avx512: ok = avx512::fn<T, I>(__VA_ARGS__); break;                               \
    case Isa::avx2: ok = avx2::fn<T, I>(__VA_ARGS__); break;                                   \
    default: ok = portable::fn<T, I>(__VA_ARGS__); break;                                      \
  }
#if !defined(BM_X86)
#undef BM_SPMM_DISPATCH
#define BM_SPMM_DISPATCH(fn, ...) ok = portable::fn<T, I>(__VA_ARGS__);
#endif

template <typename T, typename I>
void spmm_csr(int64_t M, int64_t N, int64_t K, const I* indptr, const I* indices, const T* data,
              const T* X, int64_t ldx, T* Y, int64_t ldy) {
  check_ptr<T>(M, N, K, indptr, ldx, ldy, "spmm_csr");
  BM_CHECK(ldx >= K && ldy >= K, "spmm_csr: leading dimensions must be >= K");
  if (M == 0 || K == 0) return;
  bool ok = true;
  BM_SPMM_DISPATCH(spmm_fwd, M, N, K, indptr, indices, data, X, ldx, Y, ldy, num_threads())
  BM_CHECK(ok, "spmm_csr: a.indices has an entry outside [0, ", N, ")");
}

template <typename T, typename I>
void spmm_csr_t(int64_t M, int64_t N, int64_t K, const I* indptr, const I* indices,
                const T* data, const T* X, int64_t ldx, T* Y, int64_t ldy) {
  check_ptr<T>(M, N, K, indptr, ldx, ldy, "spmm_csr");
  BM_CHECK(ldx >= K && ldy >= K, "spmm_csr_t: leading dimensions must be >= K");
  if (N == 0 || K == 0) return;
  bool ok = true;
  BM_SPMM_DISPATCH(spmm_trans, M, N, K, indptr, indices, data, X, ldx, Y, ldy, num_threads())
  BM_CHECK(ok, "spmm_csr: a.indices has an entry outside [0, ", N, ")");
}

#define BM_SPMM_API(T, I)                                                                      \
  template void spmm_csr<T, I>(int64_t, int64_t, int64_t, const I*, const I*, const T*,        \
                               const T*, int64_t, T*, int64_t);                                \
  template void spmm_csr_t<T, I>(int64_t, int64_t, int64_t, const I*, const I*, const T*,      \
                                 const T*, int64_t, T*, int64_t);
BM_SPMM_API(float, int32_t)
BM_SPMM_API(float, int64_t)
BM_SPMM_API(double, int32_t)
BM_SPMM_API(double, int64_t)

}  // namespace bm
