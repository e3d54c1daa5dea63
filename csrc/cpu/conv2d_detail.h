// Helpers shared by the conv2d translation units (conv2d.cpp, conv2d_avx512.cpp): the parallel
// loop, im2col / col2im of one pixel tile, and the small variant's tiling.
#pragma once
#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <exception>

#include "common/cpu_features.h"
#include "common/scratch.h"
#include "cpu/conv2d.h"

namespace bm {
namespace conv_detail {
// Internal linkage: this header is compiled into the baseline and the AVX-512 translation units
// with different flags; shared inline symbols would let the linker keep one ISA's copy for all
// (AVX-512 instructions on the portable path of a CPU without them).
namespace {

// Scratch slots 0-2 belong to bm::gemm (called from the same threads); conv uses 4 and up.
constexpr int kSlotCol = 4;

// Runs f(i) for i in [0, n) on up to num_threads() threads; the first exception is rethrown.
template <class F>
void parallel_for(int64_t n, F&& f) {
  const int nt = static_cast<int>(std::min<int64_t>(num_threads(), std::max<int64_t>(n, 1)));
  std::exception_ptr err = nullptr;
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
  for (int64_t i = 0; i < n; ++i) {
    try {
      f(i);
    } catch (...) {
#pragma omp critical(bm_conv_err)
      if (!err) err = std::current_exception();
    }
  }
  if (err) std::rethrow_exception(err);
}

// Output columns ow in [lo, hi) read input column ow*stride + off inside [0, W).
inline void valid_cols(int64_t off, int64_t stride, int64_t W, int64_t Q, int64_t& lo,
                       int64_t& hi) {
  lo = off >= 0 ? 0 : (-off + stride - 1) / stride;
  hi = (W - 1 - off) < 0 ? 0 : (W - 1 - off) / stride + 1;
  lo = std::min(lo, Q);
  hi = std::max(lo, std::min(hi, Q));
}

// Pixel tile width: about 256 KiB of im2col per thread, a multiple of 16, and at least two tiles
// per thread overall when the images are few.
template <typename T>
int64_t tile_pixels(const Conv2dParams& p, int64_t rows) {
  const int64_t PQ = p.P * p.Q;
  int64_t pt = (int64_t(256) * 1024 / int64_t(sizeof(T))) / std::max<int64_t>(rows, 1);
  const int64_t want_items = 2 * int64_t(num_threads());
  const int64_t per_image = (want_items + p.N * p.G - 1) / (p.N * p.G);
  if (per_image > 1) pt = std::min(pt, (PQ + per_image - 1) / per_image);
  pt = std::max<int64_t>(16, pt / 16 * 16);
  return std::min(pt, PQ);
}

// col[t*ld + j] = input pixel seen by tap t = (c, r, s) for output pixel p0 + j, j < pt; zero in
// the padding. xg points at channel 0 of the group in image n.
template <typename T>
void im2col_tile(const Conv2dParams& p, const T* xg, int64_t p0, int64_t pt, T* col, int64_t ld) {
  const int64_t H = p.H, W = p.W, Q = p.Q, sw = p.stride_w;
  for (int64_t c = 0; c < p.Cg(); ++c)
    for (int64_t r = 0; r < p.R; ++r)
      for (int64_t s = 0; s < p.S; ++s) {
        T* dst = col + ((c * p.R + r) * p.S + s) * ld;
        const T* xc = xg + c * H * W;
        const int64_t off = s * p.dil_w - p.pad_w;
        int64_t lo, hi;
        valid_cols(off, sw, W, Q, lo, hi);
        for (int64_t j = 0, pix = p0; j < pt;) {
          const int64_t oh = pix / Q, ow0 = pix % Q, len = std::min(Q - ow0, pt - j);
          const int64_t ih = oh * p.stride_h - p.pad_h + r * p.dil_h;
          T* d = dst + j - ow0;  // d[ow] for ow in [ow0, ow0 + len)
          const int64_t a = std::clamp(lo, ow0, ow0 + len), b = std::clamp(hi, a, ow0 + len);
          if (ih < 0 || ih >= H) {
            for (int64_t ow = ow0; ow < ow0 + len; ++ow) d[ow] = T(0);
          } else {
            const T* xr = xc + ih * W + off;
            for (int64_t ow = ow0; ow < a; ++ow) d[ow] = T(0);
            if (sw == 1)
              for (int64_t ow = a; ow < b; ++ow) d[ow] = xr[ow];
            else
              for (int64_t ow = a; ow < b; ++ow) d[ow] = xr[ow * sw];
            for (int64_t ow = b; ow < ow0 + len; ++ow) d[ow] = T(0);
          }
          j += len;
          pix += len;
        }
      }
}

// The adjoint of im2col_tile: dxg[pixel seen by tap t for output p0 + j] += col[t*ld + j].
template <typename T>
void col2im_tile_add(const Conv2dParams& p, const T* col, int64_t ld, int64_t p0, int64_t pt,
                     T* dxg) {
  const int64_t H = p.H, W = p.W, Q = p.Q, sw = p.stride_w;
  for (int64_t c = 0; c < p.Cg(); ++c)
    for (int64_t r = 0; r < p.R; ++r)
      for (int64_t s = 0; s < p.S; ++s) {
        const T* src = col + ((c * p.R + r) * p.S + s) * ld;
        T* xc = dxg + c * H * W;
        const int64_t off = s * p.dil_w - p.pad_w;
        int64_t lo, hi;
        valid_cols(off, sw, W, Q, lo, hi);
        for (int64_t j = 0, pix = p0; j < pt;) {
          const int64_t oh = pix / Q, ow0 = pix % Q, len = std::min(Q - ow0, pt - j);
          const int64_t ih = oh * p.stride_h - p.pad_h + r * p.dil_h;
          if (ih >= 0 && ih < H) {
            const T* sr = src + j - ow0;
            T* xr = xc + ih * W + off;
            const int64_t a = std::clamp(lo, ow0, ow0 + len), b = std::clamp(hi, a, ow0 + len);
            if (sw == 1)
              for (int64_t ow = a; ow < b; ++ow) xr[ow] += sr[ow];
            else
              for (int64_t ow = a; ow < b; ++ow) xr[ow * sw] += sr[ow];
          }
          j += len;
          pix += len;
        }
      }
}

// The small variant (groups 1, C*R*S <= 27): tiles of at most 512 output pixels (27 x 512 x 4 =
// 54 KiB of im2col), the image split evenly, each tile a multiple of 16 pixels wide.
constexpr int64_t kSmallMaxTaps = 27;
inline int64_t small_tile(int64_t PQ) {
  const int64_t ntiles = (PQ + 511) / 512;
  return ((PQ + ntiles - 1) / ntiles + 15) / 16 * 16;
}

}  // namespace
}  // namespace conv_detail
}  // namespace bm
