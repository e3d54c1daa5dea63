// conv2d drivers: variant choice, im2col/col2im tiles on bm::gemm, the depthwise direct kernel,
// the portable small-C kernel, and the bias gradient. Layouts and variants: conv2d.h.
//
// Scratch: every im2col buffer is one tile (C/G*R*S x PT pixels, PT picked so the tile is about
// 256 KiB, half the L2), per thread, so memory does not grow with the image or the batch.
// Threads: work items are (image, group, pixel tile) for the forward and dW (dW accumulates into
// one per-thread copy of the weights, summed at the end), (image, group) for dx (each item owns
// its slice of dx, so no atomics). Inside the parallel regions bm::gemm runs single-threaded.
#include "cpu/conv2d.h"

#include <omp.h>

#include <algorithm>
#include <cstring>
#include <exception>
#include <type_traits>
#include <vector>

#include "common/check.h"
#include "common/cpu_features.h"
#include "common/scratch.h"
#include "cpu/conv2d_detail.h"
#include "cpu/gemm.h"

namespace bm {
namespace {

using namespace conv_detail;


bool is_pointwise(const Conv2dParams& p) {
  return p.R == 1 && p.S == 1 && p.stride_h == 1 && p.stride_w == 1 && p.pad_h == 0 &&
         p.pad_w == 0 && p.P == p.H && p.Q == p.W;
}

template <typename T>
void add_bias(const T* b, int64_t Kg, int64_t PQ, int64_t pt, T* y) {
  for (int64_t k = 0; k < Kg; ++k) {
    T* row = y + k * PQ;
    const T bk = b[k];
    for (int64_t j = 0; j < pt; ++j) row[j] += bk;
  }
}

// ---- gemm variant ------------------------------------------------------------------------------

template <typename T>
void forward_gemm(const Conv2dParams& p, const T* x, const T* w, const T* b, T* y) {
#if defined(BM_X86)
  if constexpr (std::is_same<T, float>::value)
    if (avx512_active()) return avx512::conv2d_gemm_forward(p, x, w, b, y);
#endif
  const int64_t PQ = p.P * p.Q, HW = p.H * p.W, Cg = p.Cg(), Kg = p.Kg();
  const int64_t CRS = Cg * p.R * p.S;
  const bool pw = is_pointwise(p);
  const int64_t PT = tile_pixels<T>(p, CRS), ntiles = (PQ + PT - 1) / PT;
  parallel_for(p.N * p.G * ntiles, [&](int64_t item) {
    const int64_t tile = item % ntiles, ng = item / ntiles, g = ng % p.G, n = ng / p.G;
    const int64_t p0 = tile * PT, pt = std::min(PT, PQ - p0);
    const T* xg = x + (n * p.C + g * Cg) * HW;
    T* yt = y + (n * p.K + g * Kg) * PQ + p0;
    if (pw) {
      gemm<T>(Kg, pt, CRS, T(1), w + g * Kg * CRS, CRS, 1, xg + p0, HW, 1, T(0), yt, PQ, 1);
    } else {
      T* col = thread_scratch<T>(size_t(CRS) * PT, kSlotCol);
      im2col_tile(p, xg, p0, pt, col, pt);
      gemm<T>(Kg, pt, CRS, T(1), w + g * Kg * CRS, CRS, 1, col, pt, 1, T(0), yt, PQ, 1);
    }
    if (b) add_bias(b + g * Kg, Kg, PQ, pt, yt);
  });
}

// Stride 1: dx = conv(dy, w'), w'[c, k, r, s] = w[k, c, R-1-r, S-1-s] within each group, with
// top/left padding d*(R-1) - pad (needs pad <= d*(R-1)): the forward kernel computes it.
template <typename T>
bool backward_data_as_forward(const Conv2dParams& p, const T* dy, const T* w, T* dx) {
#if defined(BM_X86)
  if constexpr (std::is_same<T, float>::value) {
    if (!avx512_active() || p.stride_h != 1 || p.stride_w != 1) return false;
    // The scatter form keeps a padded dx and dy in virtual rows per image: good while both fit
    // in L2 (MNIST-sized maps); larger maps (ResNet 56x56) run faster as a forward conv.
    const int64_t Hp = p.P + p.dil_h * (p.R - 1), Wp = p.Q + p.dil_w * (p.S - 1);
    const int64_t bytes = 4 * (p.Cg() * Hp * Wp + p.Kg() * (p.P * Wp + 48));
    if (avx512::conv2d_direct_applies(p) && bytes <= 512 * 1024) {
      avx512::conv2d_direct_backward_data(p, dy, w, dx);
      return true;
    }
    if (p.pad_h > p.dil_h * (p.R - 1) || p.pad_w > p.dil_w * (p.S - 1)) return false;
    const int64_t Cg = p.Cg(), Kg = p.Kg(), RS = p.R * p.S;
    std::vector<float> wt(size_t(p.K * Cg * RS));
    for (int64_t g = 0; g < p.G; ++g)
      for (int64_t k = 0; k < Kg; ++k)
        for (int64_t c = 0; c < Cg; ++c)
          for (int64_t rs = 0; rs < RS; ++rs)
            wt[size_t(((g * Cg + c) * Kg + k) * RS + (RS - 1 - rs))] =
                w[((g * Kg + k) * Cg + c) * RS + rs];
    Conv2dParams q = p;
    q.C = p.K; q.H = p.P; q.W = p.Q;
    q.K = p.C; q.P = p.H; q.Q = p.W;
    q.pad_h = p.dil_h * (p.R - 1) - p.pad_h;
    q.pad_w = p.dil_w * (p.S - 1) - p.pad_w;
    avx512::conv2d_gemm_forward(q, dy, wt.data(), nullptr, dx);
    return true;
  }
#endif
  return false;
}

template <typename T>
void backward_data_gemm(const Conv2dParams& p, const T* dy, const T* w, T* dx) {
  if (backward_data_as_forward(p, dy, w, dx)) return;
  const int64_t PQ = p.P * p.Q, HW = p.H * p.W, Cg = p.Cg(), Kg = p.Kg();
  const int64_t CRS = Cg * p.R * p.S;
  const bool pw = is_pointwise(p);
  const int64_t PT = tile_pixels<T>(p, CRS), ntiles = (PQ + PT - 1) / PT;
  // One item per (image, group): it owns dx[n, group channels]. With fewer items than threads
  // the items run one after the other and bm::gemm gets all threads.
  auto item_fn = [&](int64_t item) {
    const int64_t g = item % p.G, n = item / p.G;
    T* dxg = dx + (n * p.C + g * Cg) * HW;
    const T* wg = w + g * Kg * CRS;
    if (!pw) std::memset(dxg, 0, sizeof(T) * size_t(Cg * HW));
    for (int64_t tile = 0; tile < ntiles; ++tile) {
      const int64_t p0 = tile * PT, pt = std::min(PT, PQ - p0);
      const T* dyt = dy + (n * p.K + g * Kg) * PQ + p0;
      if (pw) {
        gemm<T>(Cg, pt, Kg, T(1), wg, 1, CRS, dyt, PQ, 1, T(0), dxg + p0, HW, 1);
      } else {
        T* col = thread_scratch<T>(size_t(CRS) * PT, kSlotCol);
        gemm<T>(CRS, pt, Kg, T(1), wg, 1, CRS, dyt, PQ, 1, T(0), col, pt, 1);
        col2im_tile_add(p, col, pt, p0, pt, dxg);
      }
    }
  };
  if (p.N * p.G >= num_threads()) {
    parallel_for(p.N * p.G, item_fn);
  } else {
    for (int64_t i = 0; i < p.N * p.G; ++i) item_fn(i);
  }
}

// Fraction of a 12 x 32 register tile grid that an M x N product fills (AVX-512 fp32 tiles;
// good enough to pick the orientation on every path).
inline double tile_fill(int64_t M, int64_t N) {
  const double m = double((M + 11) / 12 * 12), n = double((N + 31) / 32 * 32);
  return double(M) * double(N) / (m * n);
}

// Returns true when db was computed too (the AVX-512 stride-1 kernel reads dy once for both).
template <typename T>
bool backward_weight_gemm(const Conv2dParams& p, const T* dy, const T* x, T* dw, T* db) {
#if defined(BM_X86)
  if constexpr (std::is_same<T, float>::value)
    if (avx512_active()) return avx512::conv2d_gemm_backward_weight(p, dy, x, dw, db);
#endif
  const int64_t PQ = p.P * p.Q, HW = p.H * p.W, Cg = p.Cg(), Kg = p.Kg();
  const int64_t CRS = Cg * p.R * p.S, wsize = p.K * CRS;
  const bool pw = is_pointwise(p);
  const int64_t PT = tile_pixels<T>(p, CRS), ntiles = (PQ + PT - 1) / PT;
  const int64_t items = p.N * p.G * ntiles;
  // dW_g (Kg x CRS) += dy tile (Kg x pt) * col^T, or its transpose when that fills the
  // register tiles better (few output channels, e.g. Kg = 1).
  const bool transposed = tile_fill(CRS, Kg) > tile_fill(Kg, CRS);
  const int nt = static_cast<int>(std::min<int64_t>(num_threads(), items));
  std::vector<T> part(size_t(nt) * size_t(wsize), T(0));
  std::exception_ptr err = nullptr;
#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    T* acc = part.data() + size_t(omp_get_thread_num()) * size_t(wsize);
#pragma omp for schedule(static)
    for (int64_t item = 0; item < items; ++item) {
      try {
        const int64_t tile = item % ntiles, ng = item / ntiles, g = ng % p.G, n = ng / p.G;
        const int64_t p0 = tile * PT, pt = std::min(PT, PQ - p0);
        const T* xg = x + (n * p.C + g * Cg) * HW;
        const T* dyt = dy + (n * p.K + g * Kg) * PQ + p0;
        const T* col;
        int64_t ldc;
        if (pw) {
          col = xg + p0;
          ldc = HW;
        } else {
          T* buf = thread_scratch<T>(size_t(CRS) * PT, kSlotCol);
          im2col_tile(p, xg, p0, pt, buf, pt);
          col = buf;
          ldc = pt;
        }
        T* accg = acc + g * Kg * CRS;
        if (transposed)
          gemm<T>(CRS, Kg, pt, T(1), col, ldc, 1, dyt, 1, PQ, T(1), accg, 1, CRS);
        else
          gemm<T>(Kg, CRS, pt, T(1), dyt, PQ, 1, col, 1, ldc, T(1), accg, CRS, 1);
      } catch (...) {
#pragma omp critical(bm_conv_err)
        if (!err) err = std::current_exception();
      }
    }
  }
  if (err) std::rethrow_exception(err);
  parallel_for((wsize + 4095) / 4096, [&](int64_t blk) {
    const int64_t i0 = blk * 4096, i1 = std::min(wsize, i0 + 4096);
    for (int64_t i = i0; i < i1; ++i) {
      T s = part[size_t(i)];
      for (int t = 1; t < nt; ++t) s += part[size_t(t) * size_t(wsize) + size_t(i)];
      dw[i] = s;
    }
  });
  return false;
}

// ---- depthwise variant (C/G == 1) ---------------------------------------------------------------

template <typename T>
void forward_depthwise(const Conv2dParams& p, const T* x, const T* w, const T* b, T* y) {
  const int64_t PQ = p.P * p.Q, HW = p.H * p.W, Kg = p.Kg(), sw = p.stride_w;
  parallel_for(p.N * p.K, [&](int64_t item) {
    const int64_t k = item % p.K, n = item / p.K, c = k / Kg;
    const T* xc = x + (n * p.C + c) * HW;
    const T* wk = w + k * p.R * p.S;
    T* yk = y + (n * p.K + k) * PQ;
    const T bk = b ? b[k] : T(0);
    for (int64_t oh = 0; oh < p.P; ++oh) {
      T* yr = yk + oh * p.Q;
      for (int64_t ow = 0; ow < p.Q; ++ow) yr[ow] = bk;
      for (int64_t r = 0; r < p.R; ++r) {
        const int64_t ih = oh * p.stride_h - p.pad_h + r * p.dil_h;
        if (ih < 0 || ih >= p.H) continue;
        for (int64_t s = 0; s < p.S; ++s) {
          const int64_t off = s * p.dil_w - p.pad_w;
          int64_t lo, hi;
          valid_cols(off, sw, p.W, p.Q, lo, hi);
          const T* xr = xc + ih * p.W + off;
          const T wv = wk[r * p.S + s];
          if (sw == 1)
            for (int64_t ow = lo; ow < hi; ++ow) yr[ow] += wv * xr[ow];
          else
            for (int64_t ow = lo; ow < hi; ++ow) yr[ow] += wv * xr[ow * sw];
        }
      }
    }
  });
}

template <typename T>
void backward_data_depthwise(const Conv2dParams& p, const T* dy, const T* w, T* dx) {
  const int64_t PQ = p.P * p.Q, HW = p.H * p.W, Kg = p.Kg(), sw = p.stride_w;
  parallel_for(p.N * p.C, [&](int64_t item) {
    const int64_t c = item % p.C, n = item / p.C;
    T* dxc = dx + (n * p.C + c) * HW;
    std::memset(dxc, 0, sizeof(T) * size_t(HW));
    for (int64_t m = 0; m < Kg; ++m) {
      const int64_t k = c * Kg + m;
      const T* dyk = dy + (n * p.K + k) * PQ;
      const T* wk = w + k * p.R * p.S;
      for (int64_t oh = 0; oh < p.P; ++oh) {
        const T* dyr = dyk + oh * p.Q;
        for (int64_t r = 0; r < p.R; ++r) {
          const int64_t ih = oh * p.stride_h - p.pad_h + r * p.dil_h;
          if (ih < 0 || ih >= p.H) continue;
          for (int64_t s = 0; s < p.S; ++s) {
            const int64_t off = s * p.dil_w - p.pad_w;
            int64_t lo, hi;
            valid_cols(off, sw, p.W, p.Q, lo, hi);
            T* xr = dxc + ih * p.W + off;
            const T wv = wk[r * p.S + s];
            if (sw == 1)
              for (int64_t ow = lo; ow < hi; ++ow) xr[ow] += wv * dyr[ow];
            else
              for (int64_t ow = lo; ow < hi; ++ow) xr[ow * sw] += wv * dyr[ow];
          }
        }
      }
    }
  });
}

// Dot product with 16 independent partial sums (vectorises without reassociation flags).
template <typename T>
T dot_strided(const T* a, const T* b, int64_t sb, int64_t n) {
  T lanes[16] = {};
  int64_t i = 0;
  if (sb == 1) {
    for (; i + 16 <= n; i += 16)
      for (int l = 0; l < 16; ++l) lanes[l] += a[i + l] * b[i + l];
  }
  T s = T(0);
  for (; i < n; ++i) s += a[i] * b[i * sb];
  for (int l = 0; l < 16; ++l) s += lanes[l];
  return s;
}

template <typename T>
void backward_weight_depthwise(const Conv2dParams& p, const T* dy, const T* x, T* dw) {
  const int64_t PQ = p.P * p.Q, HW = p.H * p.W, Kg = p.Kg(), sw = p.stride_w;
  const int64_t RS = p.R * p.S;
  parallel_for(p.K, [&](int64_t k) {
    const int64_t c = k / Kg;
    std::vector<T> acc(size_t(RS), T(0));
    for (int64_t n = 0; n < p.N; ++n) {
      const T* xc = x + (n * p.C + c) * HW;
      const T* dyk = dy + (n * p.K + k) * PQ;
      for (int64_t oh = 0; oh < p.P; ++oh) {
        const T* dyr = dyk + oh * p.Q;
        for (int64_t r = 0; r < p.R; ++r) {
          const int64_t ih = oh * p.stride_h - p.pad_h + r * p.dil_h;
          if (ih < 0 || ih >= p.H) continue;
          for (int64_t s = 0; s < p.S; ++s) {
            const int64_t off = s * p.dil_w - p.pad_w;
            int64_t lo, hi;
            valid_cols(off, sw, p.W, p.Q, lo, hi);
            if (hi > lo)
              acc[size_t(r * p.S + s)] +=
                  dot_strided(dyr + lo, xc + ih * p.W + off + lo * sw, sw, hi - lo);
          }
        }
      }
    }
    std::copy(acc.begin(), acc.end(), dw + k * RS);
  });
}

// ---- small variant (groups 1, C*R*S <= 27), portable ---------------------------------------------

bool small_applies(const Conv2dParams& p) {
  return p.G == 1 && p.C * p.R * p.S <= kSmallMaxTaps;
}

template <typename T>
void forward_small(const Conv2dParams& p, const T* x, const T* w, const T* b, T* y) {
  const int64_t PQ = p.P * p.Q, HW = p.H * p.W, CRS = p.C * p.R * p.S;
  const int64_t TL = small_tile(PQ), ntiles = (PQ + TL - 1) / TL;
  parallel_for(p.N * ntiles, [&](int64_t item) {
    const int64_t n = item / ntiles, p0 = (item % ntiles) * TL;
    const int64_t pt = std::min(TL, PQ - p0);
    T* col = thread_scratch<T>(size_t(CRS) * TL, kSlotCol);
    im2col_tile(p, x + n * p.C * HW, p0, pt, col, TL);
    for (int64_t j0 = 0; j0 < pt; j0 += 16) {
      const int64_t nj = std::min<int64_t>(16, pt - j0);
      for (int64_t k = 0; k < p.K; ++k) {
        T acc[16];
        const T bk = b ? b[k] : T(0);
        for (int l = 0; l < 16; ++l) acc[l] = bk;
        const T* wk = w + k * CRS;
        for (int64_t t = 0; t < CRS; ++t) {
          const T* ct = col + t * TL + j0;
          for (int l = 0; l < 16; ++l) acc[l] += wk[t] * (l < nj ? ct[l] : T(0));
        }
        T* yk = y + (n * p.K + k) * PQ + p0 + j0;
        for (int64_t l = 0; l < nj; ++l) yk[l] = acc[l];
      }
    }
  });
}

template <typename T>
void backward_weight_small(const Conv2dParams& p, const T* dy, const T* x, T* dw) {
  const int64_t PQ = p.P * p.Q, HW = p.H * p.W, CRS = p.C * p.R * p.S, wsize = p.K * CRS;
  const int64_t TL = small_tile(PQ), ntiles = (PQ + TL - 1) / TL, items = p.N * ntiles;
  const int nt = static_cast<int>(std::min<int64_t>(num_threads(), items));
  std::vector<T> part(size_t(nt) * size_t(wsize), T(0));
  std::exception_ptr err = nullptr;
#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    T* acc = part.data() + size_t(omp_get_thread_num()) * size_t(wsize);
#pragma omp for schedule(static)
    for (int64_t item = 0; item < items; ++item) {
      try {
        const int64_t n = item / ntiles, p0 = (item % ntiles) * TL;
        const int64_t pt = std::min(TL, PQ - p0);
        T* col = thread_scratch<T>(size_t(CRS) * TL, kSlotCol);
        im2col_tile(p, x + n * p.C * HW, p0, pt, col, TL);
        for (int64_t k = 0; k < p.K; ++k) {
          const T* dyk = dy + (n * p.K + k) * PQ + p0;
          for (int64_t t = 0; t < CRS; ++t) acc[k * CRS + t] += dot_strided(dyk, col + t * TL, 1, pt);
        }
      } catch (...) {
#pragma omp critical(bm_conv_err)
        if (!err) err = std::current_exception();
      }
    }
  }
  if (err) std::rethrow_exception(err);
  for (int64_t i = 0; i < wsize; ++i) {
    T s = T(0);
    for (int t = 0; t < nt; ++t) s += part[size_t(t) * size_t(wsize) + size_t(i)];
    dw[i] = s;
  }
}

template <typename T>
void backward_bias(const Conv2dParams& p, const T* dy, T* db) {
  const int64_t PQ = p.P * p.Q;
  parallel_for(p.K, [&](int64_t k) {
    T lanes[16] = {};
    T s = T(0);
    for (int64_t n = 0; n < p.N; ++n) {
      const T* row = dy + (n * p.K + k) * PQ;
      int64_t i = 0;
      for (; i + 16 <= PQ; i += 16)
        for (int l = 0; l < 16; ++l) lanes[l] += row[i + l];
      for (; i < PQ; ++i) s += row[i];
    }
    for (int l = 0; l < 16; ++l) s += lanes[l];
    db[k] = s;
  });
}

}  // namespace

void conv2d_validate(const Conv2dParams& p) {
  BM_CHECK(p.N >= 0 && p.C > 0 && p.H > 0 && p.W > 0 && p.K > 0 && p.R > 0 && p.S > 0,
           "conv2d: sizes must be positive (N=", p.N, " C=", p.C, " H=", p.H, " W=", p.W,
           " K=", p.K, " R=", p.R, " S=", p.S, ")");
  BM_CHECK(p.G > 0 && p.C % p.G == 0 && p.K % p.G == 0, "conv2d: groups=", p.G,
           " must divide C=", p.C, " and K=", p.K);
  BM_CHECK(p.stride_h > 0 && p.stride_w > 0 && p.dil_h > 0 && p.dil_w > 0,
           "conv2d: stride and dilation must be positive");
  BM_CHECK(p.pad_h >= 0 && p.pad_w >= 0, "conv2d: padding must be non-negative");
  // Bounded so that padded extents and dilated kernel extents fit in int64.
  constexpr int64_t kMax = 2147483647;
  BM_CHECK(p.stride_h <= kMax && p.stride_w <= kMax && p.dil_h <= kMax && p.dil_w <= kMax &&
               p.pad_h <= kMax && p.pad_w <= kMax && p.R <= kMax && p.S <= kMax,
           "conv2d: kernel size, stride, padding and dilation must be <= ", kMax);
  // P and Q imply the bottom/right padding; it must be non-negative and less than a stride
  // beyond what the last window needs, as for any padding the Python side accepts.
  BM_CHECK(p.P > 0 && p.Q > 0, "conv2d: empty output (P=", p.P, ", Q=", p.Q, ")");
  const int64_t last_h = (p.P - 1) * p.stride_h + p.dil_h * (p.R - 1) + 1;  // padded rows used
  const int64_t last_w = (p.Q - 1) * p.stride_w + p.dil_w * (p.S - 1) + 1;
  BM_CHECK(last_h <= p.H + 2 * p.pad_h + p.dil_h * (p.R - 1) &&
               last_w <= p.W + 2 * p.pad_w + p.dil_w * (p.S - 1),
           "conv2d: output size (", p.P, ", ", p.Q, ") too large for the input");
  BM_CHECK(p.variant >= 0 && p.variant <= 3, "conv2d: unknown variant ", p.variant);
}

int conv2d_variant(const Conv2dParams& p) {
  const bool small = small_applies(p), dw = p.Cg() == 1;
  switch (p.variant) {
    case 2: return small ? 2 : 1;
    case 3: return dw ? 3 : 1;
    case 1: return 1;
    default: return small ? 2 : dw ? 3 : 1;
  }
}

template <typename T>
void conv2d_forward(const Conv2dParams& p, const T* x, const T* w, const T* b, T* y) {
  conv2d_validate(p);
  if (p.N == 0) return;
  switch (conv2d_variant(p)) {
    case 2:
#if defined(BM_X86)
      if constexpr (std::is_same<T, float>::value)
        if (avx512_active() && avx512::conv2d_small_forward(p, x, w, b, y)) return;
#endif
      return forward_small(p, x, w, b, y);
    case 3: return forward_depthwise(p, x, w, b, y);
    default: return forward_gemm(p, x, w, b, y);
  }
}

template <typename T>
void conv2d_backward_data(const Conv2dParams& p, const T* dy, const T* w, T* dx) {
  conv2d_validate(p);
  if (p.N == 0) return;
  // First layers rarely need dx: the small variant's shapes go through gemm.
  if (conv2d_variant(p) == 3) return backward_data_depthwise(p, dy, w, dx);
  return backward_data_gemm(p, dy, w, dx);
}

template <typename T>
void conv2d_backward_weight(const Conv2dParams& p, const T* dy, const T* x, T* dw, T* db) {
  conv2d_validate(p);
  const int64_t wsize = p.K * p.Cg() * p.R * p.S;
  if (p.N == 0) {
    if (dw) std::fill(dw, dw + wsize, T(0));
    if (db) std::fill(db, db + p.K, T(0));
    return;
  }
  if (dw) {
    switch (conv2d_variant(p)) {
      case 2:
#if defined(BM_X86)
        if constexpr (std::is_same<T, float>::value)
          if (avx512_active() && avx512::conv2d_small_backward_weight(p, dy, x, dw, db)) {
            db = nullptr;  // done on the way
            break;
          }
#endif
        backward_weight_small(p, dy, x, dw);
        break;
      case 3: backward_weight_depthwise(p, dy, x, dw); break;
      default:
        if (backward_weight_gemm(p, dy, x, dw, db)) db = nullptr;
    }
  }
  if (db) backward_bias(p, dy, db);
}

template void conv2d_forward<float>(const Conv2dParams&, const float*, const float*, const float*,
                                    float*);
template void conv2d_forward<double>(const Conv2dParams&, const double*, const double*,
                                     const double*, double*);
template void conv2d_backward_data<float>(const Conv2dParams&, const float*, const float*, float*);
template void conv2d_backward_data<double>(const Conv2dParams&, const double*, const double*,
                                           double*);
template void conv2d_backward_weight<float>(const Conv2dParams&, const float*, const float*,
                                            float*, float*);
template void conv2d_backward_weight<double>(const Conv2dParams&, const double*, const double*,
                                             double*, double*);

}  // namespace bm
