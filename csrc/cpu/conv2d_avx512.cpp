// AVX-512 kernels of the conv2d "small" variant (groups 1, C*R*S <= 27: first layers such as
// MNIST's 1->32 3x3 or RGB 3->64 3x3), float32.
//
// Forward: for 16 output pixels, the C*R*S im2col taps are loaded once into zmm registers; every
// output channel is then C*R*S broadcast-FMAs away, KB channels at a time so that KB independent
// FMA chains hide the 4-cycle latency. The kernel is compute-bound on registers (no reload of the
// input per channel) and writes each output once.
// dW: dW[k, t] = sum_j dy[k, j] * col[t, j]: KB x CRS vector accumulators (<= 28 zmm) over a
// tile of pixels, reduced horizontally once per tile.
// Both are instantiated for every tap count 1..27 (the register arrays need it at compile time).
// GCC 12's AVX-512 headers trip -Wuninitialized on their own `__Y = __Y` placeholders.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <array>
#include <utility>
#include <vector>

#include "cpu/conv2d_detail.h"

namespace bm {
namespace avx512 {
namespace {

using namespace conv_detail;

inline __mmask16 tail_mask(int64_t left) {
  return left >= 16 ? __mmask16(0xffff) : __mmask16((1u << left) - 1);
}

template <int CRS, int KB>
inline void fwd_channels(const __m512 (&tap)[CRS], const float* w, const float* b, int64_t k0,
                         float* y, int64_t PQ, __mmask16 m) {
  __m512 acc[KB];
#pragma GCC unroll 8
  for (int i = 0; i < KB; ++i) acc[i] = b ? _mm512_set1_ps(b[k0 + i]) : _mm512_setzero_ps();
#pragma GCC unroll 27
  for (int t = 0; t < CRS; ++t)
#pragma GCC unroll 8
    for (int i = 0; i < KB; ++i)
      acc[i] = _mm512_fmadd_ps(_mm512_set1_ps(w[(k0 + i) * CRS + t]), tap[t], acc[i]);
#pragma GCC unroll 8
  for (int i = 0; i < KB; ++i) _mm512_mask_storeu_ps(y + (k0 + i) * PQ, m, acc[i]);
}

template <int CRS>
void fwd_tile(const float* col, int64_t ld, int64_t pt, const float* w, const float* b, int64_t K,
              float* y, int64_t PQ) {
  constexpr int KB = CRS <= 23 ? 8 : 4;
  for (int64_t j0 = 0; j0 < pt; j0 += 16) {
    const __mmask16 m = tail_mask(pt - j0);
    __m512 tap[CRS];
#pragma GCC unroll 27
    for (int t = 0; t < CRS; ++t) tap[t] = _mm512_load_ps(col + t * ld + j0);
    int64_t k = 0;
    for (; k + KB <= K; k += KB) fwd_channels<CRS, KB>(tap, w, b, k, y + j0, PQ, m);
    for (; k < K; ++k) fwd_channels<CRS, 1>(tap, w, b, k, y + j0, PQ, m);
  }
}

template <int CRS, int KB>
inline void dw_channels(const float* col, int64_t ld, int64_t pt, const float* dy, int64_t PQ,
                        float* acc) {
  __m512 a[KB][CRS];
#pragma GCC unroll 4
  for (int i = 0; i < KB; ++i)
#pragma GCC unroll 27
    for (int t = 0; t < CRS; ++t) a[i][t] = _mm512_setzero_ps();
  for (int64_t j0 = 0; j0 < pt; j0 += 16) {
    const __mmask16 m = tail_mask(pt - j0);
    __m512 d[KB];
#pragma GCC unroll 4
    for (int i = 0; i < KB; ++i) d[i] = _mm512_maskz_loadu_ps(m, dy + i * PQ + j0);
#pragma GCC unroll 27
    for (int t = 0; t < CRS; ++t) {
      const __m512 c = _mm512_maskz_load_ps(m, col + t * ld + j0);
#pragma GCC unroll 4
      for (int i = 0; i < KB; ++i) a[i][t] = _mm512_fmadd_ps(d[i], c, a[i][t]);
    }
  }
#pragma GCC unroll 4
  for (int i = 0; i < KB; ++i)
#pragma GCC unroll 27
    for (int t = 0; t < CRS; ++t) acc[i * CRS + t] += _mm512_reduce_add_ps(a[i][t]);
}

template <int CRS>
void dw_tile(const float* col, int64_t ld, int64_t pt, const float* dy, int64_t K, int64_t PQ,
             float* acc) {
  constexpr int KB = CRS <= 7 ? 4 : 28 / CRS;
  int64_t k = 0;
  for (; k + KB <= K; k += KB) dw_channels<CRS, KB>(col, ld, pt, dy + k * PQ, PQ, acc + k * CRS);
  for (; k < K; ++k) dw_channels<CRS, 1>(col, ld, pt, dy + k * PQ, PQ, acc + k * CRS);
}

using FwdFn = void (*)(const float*, int64_t, int64_t, const float*, const float*, int64_t,
                       float*, int64_t);
using DwFn = void (*)(const float*, int64_t, int64_t, const float*, int64_t, int64_t, float*);

template <size_t... I>
constexpr std::array<FwdFn, sizeof...(I)> fwd_table(std::index_sequence<I...>) {
  return {&fwd_tile<int(I) + 1>...};
}
template <size_t... I>
constexpr std::array<DwFn, sizeof...(I)> dw_table(std::index_sequence<I...>) {
  return {&dw_tile<int(I) + 1>...};
}
constexpr auto kFwd = fwd_table(std::make_index_sequence<kSmallMaxTaps>());
constexpr auto kDw = dw_table(std::make_index_sequence<kSmallMaxTaps>());

}  // namespace

bool conv2d_small_forward(const Conv2dParams& p, const float* x, const float* w, const float* b,
                          float* y) {
  const int64_t CRS = p.C * p.R * p.S;
  if (p.G != 1 || CRS < 1 || CRS > kSmallMaxTaps) return false;
  const int64_t PQ = p.P * p.Q, HW = p.H * p.W;
  const int64_t TL = small_tile(PQ), ntiles = (PQ + TL - 1) / TL;
  const FwdFn fn = kFwd[size_t(CRS - 1)];
  parallel_for(p.N * ntiles, [&](int64_t item) {
    const int64_t n = item / ntiles, p0 = (item % ntiles) * TL;
    const int64_t pt = std::min(TL, PQ - p0);
    float* col = thread_scratch<float>(size_t(CRS) * TL, kSlotCol);
    im2col_tile(p, x + n * p.C * HW, p0, pt, col, TL);
    fn(col, TL, pt, w, b, p.K, y + n * p.K * PQ + p0, PQ);
  });
  return true;
}

bool conv2d_small_backward_weight(const Conv2dParams& p, const float* dy, const float* x,
                                  float* dw) {
  const int64_t CRS = p.C * p.R * p.S;
  if (p.G != 1 || CRS < 1 || CRS > kSmallMaxTaps) return false;
  const int64_t PQ = p.P * p.Q, HW = p.H * p.W, wsize = p.K * CRS;
  const int64_t TL = small_tile(PQ), ntiles = (PQ + TL - 1) / TL, items = p.N * ntiles;
  const DwFn fn = kDw[size_t(CRS - 1)];
  const int nt = static_cast<int>(std::min<int64_t>(num_threads(), items));
  std::vector<float> part(size_t(nt) * size_t(wsize), 0.f);
  std::exception_ptr err = nullptr;
#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    float* acc = part.data() + size_t(omp_get_thread_num()) * size_t(wsize);
#pragma omp for schedule(static)
    for (int64_t item = 0; item < items; ++item) {
      try {
        const int64_t n = item / ntiles, p0 = (item % ntiles) * TL;
        const int64_t pt = std::min(TL, PQ - p0);
        float* col = thread_scratch<float>(size_t(CRS) * TL, kSlotCol);
        im2col_tile(p, x + n * p.C * HW, p0, pt, col, TL);
        fn(col, TL, pt, dy + n * p.K * PQ + p0, p.K, PQ, acc);
      } catch (...) {
#pragma omp critical(bm_conv_err)
        if (!err) err = std::current_exception();
      }
    }
  }
  if (err) std::rethrow_exception(err);
  for (int64_t i = 0; i < wsize; ++i) {
    float s = 0.f;
    for (int t = 0; t < nt; ++t) s += part[size_t(t) * size_t(wsize) + size_t(i)];
    dw[i] = s;
  }
  return true;
}

}  // namespace avx512
}  // namespace bm
