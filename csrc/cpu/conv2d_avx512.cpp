// AVX-512 conv2d kernels, float32 (variants and when each runs: conv2d.h):
//   1. the "small" variant (groups 1, C*R*S <= 27: MNIST's 1->32 3x3, RGB 3->64 3x3);
//   2. the gemm variant on im2col tiles (any stride), unpacked micro-kernels;
//   3. the gemm variant at stride 1 without im2col ("virtual pixels").
//
// 1. Forward: for 16 output pixels, the C*R*S im2col taps are loaded once into zmm registers; every
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
                                  float* dw, float* db) {
  const int64_t CRS = p.C * p.R * p.S;
  if (p.G != 1 || CRS < 1 || CRS > kSmallMaxTaps) return false;
  const int64_t PQ = p.P * p.Q, HW = p.H * p.W, wsize = p.K * CRS;
  // Tiles of up to 1024 pixels: the horizontal sums at the end of a tile are amortised over more
  // FMAs than in the forward's tiles (27 x 1024 x 4 = 108 KiB of im2col at most).
  const int64_t nsplit = (PQ + 1023) / 1024;
  const int64_t TL = ((PQ + nsplit - 1) / nsplit + 15) / 16 * 16;
  const int64_t ntiles = (PQ + TL - 1) / TL, items = p.N * ntiles;
  const DwFn fn = kDw[size_t(CRS - 1)];
  const int nt = static_cast<int>(std::min<int64_t>(num_threads(), items));
  const int64_t psize = wsize + p.K;  // per thread: dW, then db
  std::vector<float> part(size_t(nt) * size_t(psize), 0.f);
  std::exception_ptr err = nullptr;
#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    float* acc = part.data() + size_t(omp_get_thread_num()) * size_t(psize);
#pragma omp for schedule(static)
    for (int64_t item = 0; item < items; ++item) {
      try {
        const int64_t n = item / ntiles, p0 = (item % ntiles) * TL;
        const int64_t pt = std::min(TL, PQ - p0);
        float* col = thread_scratch<float>(size_t(CRS) * TL, kSlotCol);
        im2col_tile(p, x + n * p.C * HW, p0, pt, col, TL);
        const float* dyn = dy + n * p.K * PQ + p0;
        fn(col, TL, pt, dyn, p.K, PQ, acc);
        if (db)  // db while this tile of dy is still in cache
          for (int64_t k = 0; k < p.K; ++k) {
            __m512 s = _mm512_setzero_ps();
            for (int64_t j = 0; j < pt; j += 16)
              s = _mm512_add_ps(s, _mm512_maskz_loadu_ps(tail_mask(pt - j), dyn + k * PQ + j));
            acc[wsize + k] += _mm512_reduce_add_ps(s);
          }
      } catch (...) {
#pragma omp critical(bm_conv_err)
        if (!err) err = std::current_exception();
      }
    }
  }
  if (err) std::rethrow_exception(err);
  for (int64_t i = 0; i < psize; ++i) {
    if (i >= wsize && !db) break;
    float s = 0.f;
    for (int t = 0; t < nt; ++t) s += part[size_t(t) * size_t(psize) + size_t(i)];
    if (i < wsize) dw[i] = s;
    else db[i - wsize] = s;
  }
  return true;
}

}  // namespace avx512

// ---- gemm variant, AVX-512: unpacked implicit GEMM on im2col tiles ------------------------------
//
// Forward: y_g (Kg x pixels) = W_g (Kg x CRS) * col (CRS x pixels). The im2col tile's rows are
// pixel-contiguous, so it is the vector operand as it stands (NR = 48 pixels = 3 zmm) and the
// weights are broadcast straight from W's rows (MR = 8 output channels): 24 accumulators, no
// packing besides the im2col itself. The 8 x CRS weight panel stays in L1 while the kernel sweeps
// the tile's pixel panels, which stream from L2.
// dW: dW_g^T (CRS x Kg) += col (CRS x pixels) * dy^T (pixels x Kg): the tile of dy is transposed
// (Kg x pixels is small: the cost is 1/CRS of the FLOPs) so that it is the vector operand (NR =
// up to 64 channels), and col's rows are broadcast (MR = 6..12): the reduction runs over pixels.
// dx (stride 1): dx = conv(dy, W flipped and transposed, padding d*(R-1) - pad), the forward.
namespace avx512 {
namespace {

inline __mmask16 lanes(int64_t n) {
  return n >= 16 ? __mmask16(0xffff) : n <= 0 ? __mmask16(0) : __mmask16((1u << n) - 1);
}

// C[MR x 48] = A (MR rows of lda, CRS columns) * B (CRS rows of ldb, 48 columns) (+ bias).
template <int MR>
inline void fwd_ukr(int64_t crs, const float* a, int64_t lda, const float* b, int64_t ldb,
                    float* c, int64_t ldc, int64_t n, const float* bias) {
  __m512 acc[MR][3];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) {
    const __m512 init = bias ? _mm512_set1_ps(bias[i]) : _mm512_setzero_ps();
    acc[i][0] = acc[i][1] = acc[i][2] = init;
  }
  for (int64_t k = 0; k < crs; ++k) {
    const __m512 b0 = _mm512_load_ps(b), b1 = _mm512_load_ps(b + 16), b2 = _mm512_load_ps(b + 32);
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      const __m512 ai = _mm512_set1_ps(a[i * lda + k]);
      acc[i][0] = _mm512_fmadd_ps(ai, b0, acc[i][0]);
      acc[i][1] = _mm512_fmadd_ps(ai, b1, acc[i][1]);
      acc[i][2] = _mm512_fmadd_ps(ai, b2, acc[i][2]);
    }
    b += ldb;
  }
  const __mmask16 m0 = lanes(n), m1 = lanes(n - 16), m2 = lanes(n - 32);
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) {
    _mm512_mask_storeu_ps(c + i * ldc, m0, acc[i][0]);
    _mm512_mask_storeu_ps(c + i * ldc + 16, m1, acc[i][1]);
    _mm512_mask_storeu_ps(c + i * ldc + 32, m2, acc[i][2]);
  }
}

using FwdUkr = void (*)(int64_t, const float*, int64_t, const float*, int64_t, float*, int64_t,
                        int64_t, const float*);
constexpr FwdUkr kFwdUkr[9] = {nullptr, fwd_ukr<1>, fwd_ukr<2>, fwd_ukr<3>, fwd_ukr<4>,
                               fwd_ukr<5>, fwd_ukr<6>, fwd_ukr<7>, fwd_ukr<8>};

// C[MR x 16*NV] += A (MR rows of lda, np columns) * B (np rows of ldb, 16*NV columns).
template <int NV, int MR>
inline void dw_ukr(int64_t np, const float* a, int64_t lda, const float* b, int64_t ldb, float* c,
                   int64_t ldc, int64_t n) {
  __m512 acc[MR][NV];
#pragma GCC unroll 12
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_setzero_ps();
  for (int64_t k = 0; k < np; ++k) {
    __m512 bv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) bv[v] = _mm512_load_ps(b + 16 * v);
#pragma GCC unroll 12
    for (int i = 0; i < MR; ++i) {
      const __m512 ai = _mm512_set1_ps(a[i * lda + k]);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_fmadd_ps(ai, bv[v], acc[i][v]);
    }
    b += ldb;
  }
#pragma GCC unroll 12
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
      const __mmask16 m = lanes(n - 16 * v);
      float* dst = c + i * ldc + 16 * v;
      _mm512_mask_storeu_ps(dst, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, dst), acc[i][v]));
    }
}

constexpr int dw_mr(int nv) { return nv == 4 ? 6 : nv == 3 ? 8 : 12; }

template <int NV, int... I>
constexpr auto dw_row(std::integer_sequence<int, I...>) {
  using Fn = void (*)(int64_t, const float*, int64_t, const float*, int64_t, float*, int64_t, int64_t);
  return std::array<Fn, 13>{nullptr, (I + 1 <= dw_mr(NV) ? &dw_ukr<NV, (I + 1 <= dw_mr(NV) ? I + 1 : 1)> : nullptr)...};
}
constexpr auto kDwUkr1 = dw_row<1>(std::make_integer_sequence<int, 12>());
constexpr auto kDwUkr2 = dw_row<2>(std::make_integer_sequence<int, 12>());
constexpr auto kDwUkr3 = dw_row<3>(std::make_integer_sequence<int, 12>());
constexpr auto kDwUkr4 = dw_row<4>(std::make_integer_sequence<int, 12>());

// Pixel tile width for the forward: ~192 KiB of im2col, a multiple of 48, at least 2 items per
// thread.
int64_t fwd_tile(const Conv2dParams& p, int64_t CRS) {
  const int64_t PQ = p.P * p.Q;
  int64_t nb = (int64_t(48) * 1024) / CRS;
  const int64_t want = 2 * int64_t(num_threads());
  const int64_t per_image = (want + p.N * p.G - 1) / (p.N * p.G);
  if (per_image > 1) nb = std::min(nb, (PQ + per_image - 1) / per_image);
  nb = std::max<int64_t>(48, (nb + 47) / 48 * 48);
  return std::min(nb, (PQ + 47) / 48 * 48);
}

}  // namespace

void conv2d_gemm_forward(const Conv2dParams& p, const float* x, const float* w, const float* b,
                         float* y) {
  if (conv2d_direct_applies(p)) return conv2d_direct_forward(p, x, w, b, y);
  const int64_t PQ = p.P * p.Q, HW = p.H * p.W, Cg = p.Cg(), Kg = p.Kg();
  const int64_t CRS = Cg * p.R * p.S;
  const int64_t NB = fwd_tile(p, CRS), ntiles = (PQ + NB - 1) / NB;
  parallel_for(p.N * p.G * ntiles, [&](int64_t item) {
    const int64_t tile = item % ntiles, ng = item / ntiles, g = ng % p.G, n = ng / p.G;
    const int64_t p0 = tile * NB, pt = std::min(NB, PQ - p0);
    float* col = thread_scratch<float>(size_t(CRS) * NB, kSlotCol);
    im2col_tile(p, x + (n * p.C + g * Cg) * HW, p0, pt, col, NB);
    if (pt < NB)  // the last panel's unused columns: zeros, not stale (possibly denormal) data
      for (int64_t t = 0; t < CRS; ++t) std::fill(col + t * NB + pt, col + (t + 1) * NB, 0.f);
    const float* wg = w + g * Kg * CRS;
    float* yg = y + (n * p.K + g * Kg) * PQ + p0;
    for (int64_t k0 = 0; k0 < Kg; k0 += 8) {
      const int mr = static_cast<int>(std::min<int64_t>(8, Kg - k0));
      const float* bias = b ? b + g * Kg + k0 : nullptr;
      for (int64_t j0 = 0; j0 < pt; j0 += 48)
        kFwdUkr[mr](CRS, wg + k0 * CRS, CRS, col + j0, NB, yg + k0 * PQ + j0, PQ,
                    std::min<int64_t>(48, pt - j0), bias);
    }
  });
}

bool conv2d_gemm_backward_weight(const Conv2dParams& p, const float* dy, const float* x,
                                 float* dw, float* db) {
  if (conv2d_direct_applies(p)) {
    conv2d_direct_backward_weight(p, dy, x, dw, db);
    return true;
  }
  const int64_t PQ = p.P * p.Q, HW = p.H * p.W, Cg = p.Cg(), Kg = p.Kg();
  const int64_t CRS = Cg * p.R * p.S, wsize = p.K * CRS;
  const int64_t Kpad = (Kg + 15) / 16 * 16;
  // Pixel tile: ~128 KiB of im2col and dy^T (<= 32 KiB, stays in L1 while col streams).
  int64_t NB = std::min<int64_t>(32768 / CRS, 8192 / Kpad);
  NB = std::clamp<int64_t>(NB / 16 * 16, 16, 512);
  NB = std::min(NB, (PQ + 15) / 16 * 16);
  const int64_t ntiles = (PQ + NB - 1) / NB, items = p.N * p.G * ntiles;
  const int nt = static_cast<int>(std::min<int64_t>(num_threads(), items));
  std::vector<float> part(size_t(nt) * size_t(wsize), 0.f);  // per thread: dW_g^T (CRS x Kg)
  std::exception_ptr err = nullptr;
#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    float* acc = part.data() + size_t(omp_get_thread_num()) * size_t(wsize);
#pragma omp for schedule(static)
    for (int64_t item = 0; item < items; ++item) {
      try {
        const int64_t tile = item % ntiles, ng = item / ntiles, g = ng % p.G, n = ng / p.G;
        const int64_t p0 = tile * NB, pt = std::min(NB, PQ - p0);
        float* col = thread_scratch<float>(size_t(CRS) * NB, kSlotCol);
        float* dyt = thread_scratch<float>(size_t(NB) * Kpad, kSlotCol + 1);
        im2col_tile(p, x + (n * p.C + g * Cg) * HW, p0, pt, col, NB);
        const float* dyg = dy + (n * p.K + g * Kg) * PQ + p0;
        for (int64_t j = 0; j < pt; ++j) {
          float* row = dyt + j * Kpad;
          for (int64_t k = 0; k < Kg; ++k) row[k] = dyg[k * PQ + j];
          for (int64_t k = Kg; k < Kpad; ++k) row[k] = 0.f;
        }
        float* accg = acc + g * Kg * CRS;
        for (int64_t j0 = 0; j0 < Kg; j0 += 64) {
          const int64_t nc = std::min<int64_t>(64, Kg - j0);
          const int nv = static_cast<int>((nc + 15) / 16);
          const auto& row = nv == 4 ? kDwUkr4 : nv == 3 ? kDwUkr3 : nv == 2 ? kDwUkr2 : kDwUkr1;
          const int64_t MR = dw_mr(nv);
          for (int64_t i0 = 0; i0 < CRS; i0 += MR) {
            const int mr = static_cast<int>(std::min<int64_t>(MR, CRS - i0));
            row[mr](pt, col + i0 * NB, NB, dyt + j0, Kpad, accg + i0 * Kg + j0, Kg, nc);
          }
        }
      } catch (...) {
#pragma omp critical(bm_conv_err)
        if (!err) err = std::current_exception();
      }
    }
  }
  if (err) std::rethrow_exception(err);
  // dw[g*Kg + k][t] = sum over threads of part[g][t][k].
  parallel_for(p.G * Kg, [&](int64_t gk) {
    const int64_t g = gk / Kg, k = gk % Kg;
    for (int64_t t = 0; t < CRS; ++t) {
      float s = 0.f;
      for (int th = 0; th < nt; ++th) s += part[size_t(th) * wsize + size_t(g * Kg * CRS + t * Kg + k)];
      dw[gk * CRS + t] = s;
    }
  });
  return false;
}

}  // namespace avx512
}  // namespace bm

// ---- stride-1 direct path, AVX-512: "virtual pixels" on a zero-padded copy ----------------------
//
// With stride 1, im2col row (c, r, s) over output pixels is the padded input shifted by a
// constant. Computing outputs on the padded grid (P rows of Wp = Q + dw*(S-1) "virtual" pixels;
// the last dw*(S-1) of each row are discarded) makes every tap's 48 pixels one contiguous load at
// xpad + off[c, r, s] + v: no im2col at all. Forward: the 24 accumulators are compressed to the
// valid lanes (vcompressps into a register, then a contiguous masked store). dW: the tile of dy is
// transposed into virtual-pixel rows (zero rows for the discarded columns) and the padded input's
// taps are broadcast. Waste: dw*(S-1)/Wp of the FLOPs (3% for ResNet 56x56, 8% at 24x24).
// Memory: one padded image (group) per thread, chunks of pixels sized for L2.
namespace bm {
namespace avx512 {
namespace {

struct Virtual {
  int64_t Hp, Wp, plane, V, npanels;
  std::vector<int64_t> off;      // CRS tap offsets into the padded group
  std::vector<uint64_t> mask;    // per 48-pixel panel: valid lanes
  std::vector<int64_t> first;    // per panel: output index of its first valid lane
};

Virtual make_virtual(const Conv2dParams& p) {
  Virtual v;
  v.Hp = p.P + p.dil_h * (p.R - 1);
  v.Wp = p.Q + p.dil_w * (p.S - 1);
  v.plane = v.Hp * v.Wp;
  v.V = p.P * v.Wp;
  v.npanels = (v.V + 47) / 48;
  for (int64_t c = 0; c < p.Cg(); ++c)
    for (int64_t r = 0; r < p.R; ++r)
      for (int64_t s = 0; s < p.S; ++s) v.off.push_back(c * v.plane + r * p.dil_h * v.Wp + s * p.dil_w);
  for (int64_t j = 0; j < v.npanels; ++j) {
    const int64_t v0 = j * 48;
    uint64_t m = 0;
    for (int l = 0; l < 48; ++l) {
      const int64_t vv = v0 + l;
      if (vv < v.V && vv % v.Wp < p.Q) m |= uint64_t(1) << l;
    }
    v.mask.push_back(m);
    v.first.push_back((v0 / v.Wp) * p.Q + std::min(v0 % v.Wp, p.Q));
  }
  return v;
}

// xp (Cg planes of Hp x Wp, then 64 zeros) = x of one group, zero-padded.
void pad_group(const Conv2dParams& p, const Virtual& v, const float* xg, float* xp) {
  for (int64_t c = 0; c < p.Cg(); ++c)
    for (int64_t i = 0; i < v.Hp; ++i) {
      float* row = xp + c * v.plane + i * v.Wp;
      const int64_t ih = i - p.pad_h;
      if (ih < 0 || ih >= p.H) {
        std::fill(row, row + v.Wp, 0.f);
        continue;
      }
      const int64_t a = std::min(p.pad_w, v.Wp), b = std::min(p.pad_w + p.W, v.Wp);
      std::fill(row, row + a, 0.f);
      std::copy(xg + (c * p.H + ih) * p.W, xg + (c * p.H + ih) * p.W + (b - a), row + a);
      std::fill(row + b, row + v.Wp, 0.f);
    }
  std::fill(xp + p.Cg() * v.plane, xp + p.Cg() * v.plane + 64, 0.f);
}

template <int MR>
inline void vfwd_ukr(int64_t crs, const float* a, int64_t lda, const float* b, const int64_t* off,
                     float* c, int64_t ldc, uint64_t mask, const float* bias) {
  __m512 acc[MR][3];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) {
    const __m512 init = bias ? _mm512_set1_ps(bias[i]) : _mm512_setzero_ps();
    acc[i][0] = acc[i][1] = acc[i][2] = init;
  }
  for (int64_t k = 0; k < crs; ++k) {
    const float* bk = b + off[k];
    const __m512 b0 = _mm512_loadu_ps(bk), b1 = _mm512_loadu_ps(bk + 16), b2 = _mm512_loadu_ps(bk + 32);
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      const __m512 ai = _mm512_set1_ps(a[i * lda + k]);
      acc[i][0] = _mm512_fmadd_ps(ai, b0, acc[i][0]);
      acc[i][1] = _mm512_fmadd_ps(ai, b1, acc[i][1]);
      acc[i][2] = _mm512_fmadd_ps(ai, b2, acc[i][2]);
    }
  }
  const __mmask16 m0 = __mmask16(mask), m1 = __mmask16(mask >> 16), m2 = __mmask16(mask >> 32);
  const int n0 = __builtin_popcount(m0), n1 = __builtin_popcount(m1), n2 = __builtin_popcount(m2);
  const __mmask16 s0 = lanes(n0), s1 = lanes(n1), s2 = lanes(n2);
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) {
    float* row = c + i * ldc;
    _mm512_mask_storeu_ps(row, s0, _mm512_maskz_compress_ps(m0, acc[i][0]));
    _mm512_mask_storeu_ps(row + n0, s1, _mm512_maskz_compress_ps(m1, acc[i][1]));
    _mm512_mask_storeu_ps(row + n0 + n1, s2, _mm512_maskz_compress_ps(m2, acc[i][2]));
  }
}

using VFwdUkr = void (*)(int64_t, const float*, int64_t, const float*, const int64_t*, float*,
                         int64_t, uint64_t, const float*);
constexpr VFwdUkr kVFwdUkr[9] = {nullptr, vfwd_ukr<1>, vfwd_ukr<2>, vfwd_ukr<3>, vfwd_ukr<4>,
                                 vfwd_ukr<5>, vfwd_ukr<6>, vfwd_ukr<7>, vfwd_ukr<8>};

// Row-exact panels (Q >= 16): 48 consecutive *output* pixels, so nothing is computed for the
// discarded columns. A 16-pixel vector spans at most two output rows; lanes on the second row
// read the padded copy Wp - Q further on (a second masked load). BITS: which of the 3 vectors
// cross a row.
struct RowPanel {
  int64_t base[3];        // virtual index of each vector's first pixel
  __mmask16 ma[3], mb[3];  // lanes on the first row / on the next row
  int bits;
};

template <int MR, int BITS>
void rfwd_ukr(int64_t crs, const float* a, int64_t lda, const float* xp, const int64_t* off,
              const RowPanel& rp, int64_t shift, float* c, int64_t ldc, int64_t n,
              const float* bias) {
  __m512 acc[MR][3];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) {
    const __m512 init = bias ? _mm512_set1_ps(bias[i]) : _mm512_setzero_ps();
    acc[i][0] = acc[i][1] = acc[i][2] = init;
  }
  const float *p0 = xp + rp.base[0], *p1 = xp + rp.base[1], *p2 = xp + rp.base[2];
  const __mmask16 a0 = rp.ma[0], a1 = rp.ma[1], a2 = rp.ma[2];
  const __mmask16 b0m = rp.mb[0], b1m = rp.mb[1], b2m = rp.mb[2];
  for (int64_t k = 0; k < crs; ++k) {
    const int64_t o = off[k];
    // BITS 8: a full panel (no tail), where a vector on one row is a plain load.
    constexpr bool full = BITS & 8;
    __m512 b0 = full && !(BITS & 1) ? _mm512_loadu_ps(p0 + o) : _mm512_maskz_loadu_ps(a0, p0 + o);
    __m512 b1 = full && !(BITS & 2) ? _mm512_loadu_ps(p1 + o) : _mm512_maskz_loadu_ps(a1, p1 + o);
    __m512 b2 = full && !(BITS & 4) ? _mm512_loadu_ps(p2 + o) : _mm512_maskz_loadu_ps(a2, p2 + o);
    if (BITS & 1) b0 = _mm512_mask_loadu_ps(b0, b0m, p0 + o + shift);
    if (BITS & 2) b1 = _mm512_mask_loadu_ps(b1, b1m, p1 + o + shift);
    if (BITS & 4) b2 = _mm512_mask_loadu_ps(b2, b2m, p2 + o + shift);
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      const __m512 ai = _mm512_set1_ps(a[i * lda + k]);
      acc[i][0] = _mm512_fmadd_ps(ai, b0, acc[i][0]);
      acc[i][1] = _mm512_fmadd_ps(ai, b1, acc[i][1]);
      acc[i][2] = _mm512_fmadd_ps(ai, b2, acc[i][2]);
    }
  }
  const __mmask16 m0 = lanes(n), m1 = lanes(n - 16), m2 = lanes(n - 32);
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) {
    _mm512_mask_storeu_ps(c + i * ldc, m0, acc[i][0]);
    _mm512_mask_storeu_ps(c + i * ldc + 16, m1, acc[i][1]);
    _mm512_mask_storeu_ps(c + i * ldc + 32, m2, acc[i][2]);
  }
}

using RFwdUkr = void (*)(int64_t, const float*, int64_t, const float*, const int64_t*,
                         const RowPanel&, int64_t, float*, int64_t, int64_t, const float*);
template <int MR, int... B>
constexpr std::array<RFwdUkr, 16> rfwd_row(std::integer_sequence<int, B...>) {
  return {rfwd_ukr<MR, B>...};
}
template <int MR>
constexpr std::array<RFwdUkr, 16> rfwd_row() {
  return rfwd_row<MR>(std::make_integer_sequence<int, 16>());
}
constexpr std::array<std::array<RFwdUkr, 16>, 9> kRFwd = {
    std::array<RFwdUkr, 16>{}, rfwd_row<1>(), rfwd_row<2>(), rfwd_row<3>(), rfwd_row<4>(),
    rfwd_row<5>(), rfwd_row<6>(), rfwd_row<7>(), rfwd_row<8>()};

std::vector<RowPanel> row_panels(const Conv2dParams& p, int64_t Wp) {
  const int64_t PQ = p.P * p.Q;
  std::vector<RowPanel> out;
  for (int64_t p0 = 0; p0 < PQ; p0 += 48) {
    RowPanel rp{};
    for (int v = 0; v < 3; ++v) {
      const int64_t q0 = p0 + 16 * v;
      const int64_t n = std::clamp<int64_t>(PQ - q0, 0, 16);
      const int64_t oh = q0 / p.Q, ow = q0 % p.Q;
      rp.base[v] = n > 0 ? oh * Wp + ow : 0;
      const int64_t first = std::min(n, p.Q - ow);  // lanes on row oh
      rp.ma[v] = lanes(first);
      rp.mb[v] = __mmask16(lanes(n) & ~lanes(first));
      if (rp.mb[v]) rp.bits |= 1 << v;
    }
    if (p0 + 48 <= PQ) rp.bits |= 8;
    out.push_back(rp);
  }
  return out;
}

// In-register 16 x 16 transpose (unpack ps, unpack pd, two rounds of 128-bit lane shuffles).
inline void transpose16(__m512 (&r)[16]) {
  __m512 t[16];
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
  }
  auto lo = [](__m512 a, __m512 b) {
    return _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(a), _mm512_castps_pd(b)));
  };
  auto hi = [](__m512 a, __m512 b) {
    return _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(a), _mm512_castps_pd(b)));
  };
  for (int i = 0; i < 16; i += 4) {
    r[i] = lo(t[i], t[i + 2]);
    r[i + 1] = hi(t[i], t[i + 2]);
    r[i + 2] = lo(t[i + 1], t[i + 3]);
    r[i + 3] = hi(t[i + 1], t[i + 3]);
  }
  for (int i = 0; i < 4; ++i) {
    t[i] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0x88);
    t[i + 4] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0xdd);
    t[i + 8] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0x88);
    t[i + 12] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0xdd);
  }
  for (int i = 0; i < 8; ++i) {
    r[i] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0x88);
    r[i + 8] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0xdd);
  }
}

// dyt[j][k] = src[k*ld + j] for j < np (<= 16), k < nk (<= 16); dbv += the column sums.
inline void transpose_block(const float* src, int64_t ld, int64_t nk, int64_t np, float* dyt,
                            int64_t ldt, __m512& dbv) {
  __m512 r[16];
  const __mmask16 mp = lanes(np);
  for (int i = 0; i < 16; ++i)
    r[i] = i < nk ? _mm512_maskz_loadu_ps(mp, src + i * ld) : _mm512_setzero_ps();
  transpose16(r);
  for (int j = 0; j < np; ++j) {  // all 16 columns: those past nk are zeros (dyt's padding)
    _mm512_storeu_ps(dyt + j * ldt, r[j]);
    dbv = _mm512_add_ps(dbv, r[j]);
  }
}

// C[MR x 16*NV] += sum over np pixels of A_i[v] * B[v][:], A_i = a + off[i] (broadcast rows).
template <int NV, int MR>
inline void vdw_ukr(int64_t np, const float* a, const int64_t* off, const int64_t* pix,
                    const float* b, int64_t ldb, float* c, int64_t ldc, int64_t n) {
  __m512 acc[MR][NV];
  const float* ap[MR];
#pragma GCC unroll 12
  for (int i = 0; i < MR; ++i) {
    ap[i] = a + off[i];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_setzero_ps();
  }
  for (int64_t k = 0; k < np; ++k) {
    __m512 bv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) bv[v] = _mm512_load_ps(b + 16 * v);
    const int64_t pk = pix[k];
#pragma GCC unroll 12
    for (int i = 0; i < MR; ++i) {
      const __m512 ai = _mm512_set1_ps(ap[i][pk]);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_fmadd_ps(ai, bv[v], acc[i][v]);
    }
    b += ldb;
  }
#pragma GCC unroll 12
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
      const __mmask16 m = lanes(n - 16 * v);
      float* dst = c + i * ldc + 16 * v;
      _mm512_mask_storeu_ps(dst, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, dst), acc[i][v]));
    }
}

template <int NV, int... I>
constexpr auto vdw_row(std::integer_sequence<int, I...>) {
  using Fn = void (*)(int64_t, const float*, const int64_t*, const int64_t*, const float*, int64_t,
                     float*, int64_t, int64_t);
  return std::array<Fn, 13>{nullptr, (I + 1 <= dw_mr(NV) ? &vdw_ukr<NV, (I + 1 <= dw_mr(NV) ? I + 1 : 1)> : nullptr)...};
}
constexpr auto kVDw1 = vdw_row<1>(std::make_integer_sequence<int, 12>());
constexpr auto kVDw2 = vdw_row<2>(std::make_integer_sequence<int, 12>());
constexpr auto kVDw3 = vdw_row<3>(std::make_integer_sequence<int, 12>());
constexpr auto kVDw4 = vdw_row<4>(std::make_integer_sequence<int, 12>());

// dx, stride 1: the tile of im2col gradients, W^T (MR taps x Kg) * dy (Kg x 48 virtual pixels),
// is added straight into the padded dx at each tap's offset (the adjoint of the forward's
// loads). dy in virtual-pixel rows is the vector operand: its 48-pixel panel (Kg x 48) stays in
// L1 while all the taps' weight panels stream by.
template <int MR>
void dxs_ukr(int64_t kg, const float* a, int64_t lda, const float* b, int64_t ldb, float* dst,
             const int64_t* off) {
  __m512 acc[MR][3];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) {
    acc[i][0] = acc[i][1] = acc[i][2] = _mm512_setzero_ps();
    // The destination rows are read-modified-written at the end: fetch them meanwhile.
    const char* d = reinterpret_cast<const char*>(dst + off[i]);
    _mm_prefetch(d, _MM_HINT_T0);
    _mm_prefetch(d + 64, _MM_HINT_T0);
    _mm_prefetch(d + 128, _MM_HINT_T0);
    _mm_prefetch(d + 188, _MM_HINT_T0);
  }
  for (int64_t k = 0; k < kg; ++k) {
    const __m512 b0 = _mm512_load_ps(b), b1 = _mm512_load_ps(b + 16), b2 = _mm512_load_ps(b + 32);
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      const __m512 ai = _mm512_set1_ps(a[k * lda + i]);
      acc[i][0] = _mm512_fmadd_ps(ai, b0, acc[i][0]);
      acc[i][1] = _mm512_fmadd_ps(ai, b1, acc[i][1]);
      acc[i][2] = _mm512_fmadd_ps(ai, b2, acc[i][2]);
    }
    b += ldb;
  }
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) {
    float* d = dst + off[i];
    _mm512_storeu_ps(d, _mm512_add_ps(_mm512_loadu_ps(d), acc[i][0]));
    _mm512_storeu_ps(d + 16, _mm512_add_ps(_mm512_loadu_ps(d + 16), acc[i][1]));
    _mm512_storeu_ps(d + 32, _mm512_add_ps(_mm512_loadu_ps(d + 32), acc[i][2]));
  }
}
using DxsUkr = void (*)(int64_t, const float*, int64_t, const float*, int64_t, float*, const int64_t*);
constexpr DxsUkr kDxs[9] = {nullptr, dxs_ukr<1>, dxs_ukr<2>, dxs_ukr<3>, dxs_ukr<4>,
                            dxs_ukr<5>, dxs_ukr<6>, dxs_ukr<7>, dxs_ukr<8>};

}  // namespace

bool conv2d_direct_applies(const Conv2dParams& p) {
  // The padded copy of one image's group is per-thread scratch: at most 8 MiB, else im2col tiles.
  const int64_t padded = p.Cg() * (p.P + p.dil_h * (p.R - 1)) * (p.Q + p.dil_w * (p.S - 1));
  return p.stride_h == 1 && p.stride_w == 1 && p.N * p.G >= 2 * int64_t(num_threads()) &&
         padded <= (int64_t(8) << 20) / 4;
}

void conv2d_direct_forward(const Conv2dParams& p, const float* x, const float* w, const float* b,
                           float* y) {
  const int64_t PQ = p.P * p.Q, HW = p.H * p.W, Cg = p.Cg(), Kg = p.Kg();
  const int64_t CRS = Cg * p.R * p.S;
  const Virtual v = make_virtual(p);
  // Pixel chunks: the rows a chunk reads (with the R-1 halo) stay in L2 across the weight panels.
  const int64_t rows = std::max<int64_t>(1, (128 * 1024 / 4) / (Cg * v.Wp) - p.dil_h * (p.R - 1));
  const int64_t chunk = std::max<int64_t>(1, rows * v.Wp / 48);
  // Rows of at least 16 pixels: row-exact panels (no discarded columns computed).
  const std::vector<RowPanel> rows_exact = p.Q >= 16 ? row_panels(p, v.Wp) : std::vector<RowPanel>();
  parallel_for(p.N * p.G, [&](int64_t ng) {
    const int64_t g = ng % p.G, n = ng / p.G;
    float* xp = thread_scratch<float>(size_t(Cg * v.plane + 64), kSlotCol);
    pad_group(p, v, x + (n * p.C + g * Cg) * HW, xp);
    const float* wg = w + g * Kg * CRS;
    float* yg = y + (n * p.K + g * Kg) * PQ;
    if (!rows_exact.empty()) {
      const int64_t np = int64_t(rows_exact.size()), rchunk = std::max<int64_t>(1, rows * p.Q / 48);
      for (int64_t j0 = 0; j0 < np; j0 += rchunk) {
        const int64_t j1 = std::min(np, j0 + rchunk);
        for (int64_t k0 = 0; k0 < Kg; k0 += 8) {
          const int mr = static_cast<int>(std::min<int64_t>(8, Kg - k0));
          const float* bias = b ? b + g * Kg + k0 : nullptr;
          for (int64_t j = j0; j < j1; ++j) {
            const RowPanel& rp = rows_exact[size_t(j)];
            kRFwd[size_t(mr)][size_t(rp.bits)](CRS, wg + k0 * CRS, CRS, xp, v.off.data(), rp,
                                               v.Wp - p.Q, yg + k0 * PQ + j * 48, PQ,
                                               std::min<int64_t>(48, PQ - j * 48), bias);
          }
        }
      }
      return;
    }
    for (int64_t j0 = 0; j0 < v.npanels; j0 += chunk) {
      const int64_t j1 = std::min(v.npanels, j0 + chunk);
      for (int64_t k0 = 0; k0 < Kg; k0 += 8) {
        const int mr = static_cast<int>(std::min<int64_t>(8, Kg - k0));
        const float* bias = b ? b + g * Kg + k0 : nullptr;
        for (int64_t j = j0; j < j1; ++j)
          kVFwdUkr[mr](CRS, wg + k0 * CRS, CRS, xp + j * 48, v.off.data(),
                       yg + k0 * PQ + v.first[size_t(j)], PQ, v.mask[size_t(j)], bias);
      }
    }
  });
}

void conv2d_direct_backward_weight(const Conv2dParams& p, const float* dy, const float* x,
                                   float* dw, float* db) {
  const int64_t PQ = p.P * p.Q, HW = p.H * p.W, Cg = p.Cg(), Kg = p.Kg();
  const int64_t CRS = Cg * p.R * p.S, wsize = p.K * CRS;
  const int64_t Kpad = (Kg + 15) / 16 * 16;
  const Virtual v = make_virtual(p);
  // dy^T chunk: 128 KiB (L2; streamed in order). 32 KiB (L1) measured 0-6% slower for dW.
  const int64_t VB = std::clamp<int64_t>((128 * 1024 / 4) / Kpad / 16 * 16, 16, 4096);
  // Output pixel -> its virtual index in the padded copy (the broadcast taps skip the discarded
  // columns, so no FLOP is wasted).
  std::vector<int64_t> pix(static_cast<size_t>(PQ));
  for (int64_t q = 0; q < PQ; ++q) pix[size_t(q)] = (q / p.Q) * v.Wp + q % p.Q;
  const int64_t items = p.N * p.G;
  const int nt = static_cast<int>(std::min<int64_t>(num_threads(), items));
  // Per thread: dW_g^T (CRS x Kg) for every group, then db (K): dy is read once, for both.
  const int64_t psize = wsize + p.K;
  std::vector<float> part(size_t(nt) * size_t(psize), 0.f);
  std::exception_ptr err = nullptr;
#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    float* acc = part.data() + size_t(omp_get_thread_num()) * size_t(psize);
#pragma omp for schedule(static)
    for (int64_t ng = 0; ng < items; ++ng) {
      try {
        const int64_t g = ng % p.G, n = ng / p.G;
        float* xp = thread_scratch<float>(size_t(Cg * v.plane + 64), kSlotCol);
        float* dyt = thread_scratch<float>(size_t(VB) * Kpad, kSlotCol + 1);
        pad_group(p, v, x + (n * p.C + g * Cg) * HW, xp);
        const float* dyg = dy + (n * p.K + g * Kg) * PQ;
        float* accg = acc + g * Kg * CRS;
        float* dbg = acc + wsize + g * Kg;
        for (int64_t v0 = 0; v0 < PQ; v0 += VB) {  // output pixels, in chunks
          const int64_t nv_px = std::min(VB, PQ - v0);
          for (int64_t k = 0; k < Kpad; k += 16) {  // dy^T (pixels x Kpad) and db, 16 x 16
            __m512 dbv = _mm512_setzero_ps();
            for (int64_t j = 0; j < nv_px; j += 16)
              transpose_block(dyg + k * PQ + v0 + j, PQ, std::min<int64_t>(16, Kg - k),
                              std::min<int64_t>(16, nv_px - j), dyt + j * Kpad + k, Kpad, dbv);
            const __mmask16 mk = lanes(Kg - k);
            _mm512_mask_storeu_ps(dbg + k, mk, _mm512_add_ps(_mm512_maskz_loadu_ps(mk, dbg + k), dbv));
          }
          for (int64_t j0 = 0; j0 < Kg; j0 += 64) {
            const int64_t nc = std::min<int64_t>(64, Kg - j0);
            const int nvec = static_cast<int>((nc + 15) / 16);
            const auto& row = nvec == 4 ? kVDw4 : nvec == 3 ? kVDw3 : nvec == 2 ? kVDw2 : kVDw1;
            const int64_t MR = dw_mr(nvec);
            for (int64_t i0 = 0; i0 < CRS; i0 += MR) {
              const int mr = static_cast<int>(std::min<int64_t>(MR, CRS - i0));
              row[mr](nv_px, xp, v.off.data() + i0, pix.data() + v0, dyt + j0, Kpad,
                      accg + i0 * Kg + j0, Kg, nc);
            }
          }
        }
      } catch (...) {
#pragma omp critical(bm_conv_err)
        if (!err) err = std::current_exception();
      }
    }
  }
  if (err) std::rethrow_exception(err);
  parallel_for(p.G * Kg, [&](int64_t gk) {
    const int64_t g = gk / Kg, k = gk % Kg;
    for (int64_t t = 0; t < CRS; ++t) {
      float s = 0.f;
      for (int th = 0; th < nt; ++th) s += part[size_t(th) * psize + size_t(g * Kg * CRS + t * Kg + k)];
      dw[gk * CRS + t] = s;
    }
    if (db) {
      float s = 0.f;
      for (int th = 0; th < nt; ++th) s += part[size_t(th) * psize + size_t(wsize + gk)];
      db[gk] = s;
    }
  });
}

void conv2d_direct_backward_data(const Conv2dParams& p, const float* dy, const float* w,
                                 float* dx) {
  const int64_t PQ = p.P * p.Q, HW = p.H * p.W, Cg = p.Cg(), Kg = p.Kg();
  const int64_t CRS = Cg * p.R * p.S;
  const Virtual v = make_virtual(p);
  const int64_t Vpad = v.npanels * 48;
  parallel_for(p.N * p.G, [&](int64_t ng) {
    const int64_t g = ng % p.G, n = ng / p.G;
    float* dxp = thread_scratch<float>(size_t(Cg * v.plane + 64), kSlotCol);
    float* dyv = thread_scratch<float>(size_t(Kg * Vpad), kSlotCol + 1);
    std::fill(dxp, dxp + Cg * v.plane + 64, 0.f);
    const float* dyg = dy + (n * p.K + g * Kg) * PQ;
    for (int64_t k = 0; k < Kg; ++k) {  // dy in virtual-pixel rows, zeros in the discarded columns
      float* row = dyv + k * Vpad;
      std::fill(row, row + Vpad, 0.f);
      for (int64_t oh = 0; oh < p.P; ++oh)
        std::copy(dyg + k * PQ + oh * p.Q, dyg + k * PQ + (oh + 1) * p.Q, row + oh * v.Wp);
    }
    const float* wg = w + g * Kg * CRS;
    for (int64_t j = 0; j < v.npanels; ++j)
      for (int64_t i0 = 0; i0 < CRS; i0 += 8) {
        const int mr = static_cast<int>(std::min<int64_t>(8, CRS - i0));
        kDxs[mr](Kg, wg + i0, CRS, dyv + j * 48, Vpad, dxp + j * 48, v.off.data() + i0);
      }
    float* dxg = dx + (n * p.C + g * Cg) * HW;
    for (int64_t c = 0; c < Cg; ++c)
      for (int64_t ih = 0; ih < p.H; ++ih) {
        const float* src = dxp + c * v.plane + (ih + p.pad_h) * v.Wp + p.pad_w;
        std::copy(src, src + p.W, dxg + (c * p.H + ih) * p.W);
      }
  });
}

}  // namespace avx512
}  // namespace bm
