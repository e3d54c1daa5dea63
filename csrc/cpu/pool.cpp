// Pooling: generic kernels (any window) and the dispatch to the AVX-512 2x2 kernels. See pool.h.
#include "cpu/pool.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <vector>
#include <type_traits>

#include "common/check.h"
#include "common/cpu_features.h"
#include "cpu/conv2d_detail.h"

namespace bm {
namespace {

using conv_detail::parallel_for;

// Output windows [h0, h1) x [w0, w1) clipped to the input, and the average's divisor.
struct Window {
  int64_t h0, h1, w0, w1, div;
};

inline Window window(const Pool2dParams& p, int64_t oh, int64_t ow, bool count_include_pad) {
  int64_t h0 = oh * p.sh - p.ph, w0 = ow * p.sw - p.pw;
  int64_t h1 = std::min(h0 + p.kh, p.H + p.ph), w1 = std::min(w0 + p.kw, p.W + p.pw);
  const int64_t pool = (h1 - h0) * (w1 - w0);
  h0 = std::max<int64_t>(h0, 0);
  w0 = std::max<int64_t>(w0, 0);
  h1 = std::min(h1, p.H);
  w1 = std::min(w1, p.W);
  return {h0, h1, w0, w1, count_include_pad ? pool : (h1 - h0) * (w1 - w0)};
}

bool is_2x2(const Pool2dParams& p) {
  return p.kh == 2 && p.kw == 2 && p.sh == 2 && p.sw == 2 && p.ph == 0 && p.pw == 0 &&
         p.P == p.H / 2 && p.Q == p.W / 2;
}

}  // namespace

void pool2d_validate(const Pool2dParams& p) {
  BM_CHECK(p.N >= 0 && p.C >= 0 && p.H > 0 && p.W > 0 && p.P > 0 && p.Q > 0,
           "pool2d: sizes must be positive (N=", p.N, " C=", p.C, " H=", p.H, " W=", p.W, " P=",
           p.P, " Q=", p.Q, ")");
  BM_CHECK(p.kh > 0 && p.kw > 0 && p.sh > 0 && p.sw > 0, "pool2d: kernel and stride must be positive");
  // Bounded so that window ends and areas (kh * kw, the average's divisor) fit in int64.
  constexpr int64_t kMax = 2147483647;
  BM_CHECK(p.kh <= kMax && p.kw <= kMax && p.sh <= kMax && p.sw <= kMax,
           "pool2d: kernel_size and stride must be <= ", kMax, " (got kernel (", p.kh, ", ", p.kw,
           "), stride (", p.sh, ", ", p.sw, "))");
  BM_CHECK(p.ph >= 0 && p.pw >= 0 && 2 * p.ph <= p.kh && 2 * p.pw <= p.kw,
           "pool2d: padding must be between 0 and half the kernel");
  // Every window must start inside the input or its left/top padding (so it overlaps the input).
  BM_CHECK((p.P - 1) * p.sh < p.H + p.ph && (p.Q - 1) * p.sw < p.W + p.pw,
           "pool2d: output (", p.P, ", ", p.Q, ") too large for the input");
}

template <typename T>
void maxpool2d_forward(const Pool2dParams& p, const T* x, T* y, int64_t* indices) {
  pool2d_validate(p);
#if defined(BM_X86)
  if constexpr (std::is_same<T, float>::value)
    if (avx512_active() && is_2x2(p) && avx512::maxpool2d_2x2_forward(p, x, y, indices)) return;
#endif
  const int64_t HW = p.H * p.W, PQ = p.P * p.Q;
  parallel_for(p.N * p.C, [&](int64_t plane) {
    const T* xp = x + plane * HW;
    T* yp = y + plane * PQ;
    int64_t* ip = indices ? indices + plane * PQ : nullptr;
    for (int64_t oh = 0; oh < p.P; ++oh)
      for (int64_t ow = 0; ow < p.Q; ++ow) {
        const Window win = window(p, oh, ow, true);
        T best = -std::numeric_limits<T>::infinity();
        int64_t arg = win.h0 * p.W + win.w0;
        for (int64_t ih = win.h0; ih < win.h1; ++ih)
          for (int64_t iw = win.w0; iw < win.w1; ++iw) {
            const T v = xp[ih * p.W + iw];
            if (v > best || std::isnan(v)) {  // torch's rule: a later NaN replaces an earlier one
              best = v;
              arg = ih * p.W + iw;
            }
          }
        yp[oh * p.Q + ow] = best;
        if (ip) ip[oh * p.Q + ow] = arg;
      }
  });
}

template <typename T>
void maxpool2d_backward(const Pool2dParams& p, const T* dy, const int64_t* indices, T* dx) {
  // Only the sizes matter here (the window is encoded in the indices, each checked below).
  BM_CHECK(p.N >= 0 && p.C >= 0 && p.H > 0 && p.W > 0 && p.P > 0 && p.Q > 0,
           "max_pool2d_backward: sizes must be positive");
  const int64_t HW = p.H * p.W, PQ = p.P * p.Q;
  std::vector<char> done;  // planes the 2x2 kernel finished
#if defined(BM_X86)
  if constexpr (std::is_same<T, float>::value) {
    if (avx512_active()) {
      std::unique_ptr<bool[]> ok(new bool[size_t(p.N * p.C)]());
      if (avx512::maxpool2d_2x2_backward(p, dy, indices, dx, ok.get()))
        done.assign(ok.get(), ok.get() + p.N * p.C);
    }
  }
#endif
  parallel_for(p.N * p.C, [&](int64_t plane) {
    if (!done.empty() && done[size_t(plane)]) return;
    T* dxp = dx + plane * HW;
    const T* dyp = dy + plane * PQ;
    const int64_t* ip = indices + plane * PQ;
    std::memset(dxp, 0, sizeof(T) * size_t(HW));
    for (int64_t i = 0; i < PQ; ++i) {
      const int64_t j = ip[i];
      BM_CHECK(j >= 0 && j < HW, "max_pool2d_backward: index ", j, " outside the plane of ", HW,
               " pixels");
      dxp[j] += dyp[i];
    }
  });
}

template <typename T>
void avgpool2d_forward(const Pool2dParams& p, bool count_include_pad, const T* x, T* y) {
  pool2d_validate(p);
#if defined(BM_X86)
  if constexpr (std::is_same<T, float>::value)
    if (avx512_active() && is_2x2(p) && avx512::avgpool2d_2x2_forward(p, x, y)) return;
#endif
  const int64_t HW = p.H * p.W, PQ = p.P * p.Q;
  parallel_for(p.N * p.C, [&](int64_t plane) {
    const T* xp = x + plane * HW;
    T* yp = y + plane * PQ;
    for (int64_t oh = 0; oh < p.P; ++oh)
      for (int64_t ow = 0; ow < p.Q; ++ow) {
        const Window win = window(p, oh, ow, count_include_pad);
        T s = T(0);
        for (int64_t ih = win.h0; ih < win.h1; ++ih)
          for (int64_t iw = win.w0; iw < win.w1; ++iw) s += xp[ih * p.W + iw];
        yp[oh * p.Q + ow] = s / T(win.div);
      }
  });
}

template <typename T>
void avgpool2d_backward(const Pool2dParams& p, bool count_include_pad, const T* dy, T* dx) {
  pool2d_validate(p);
#if defined(BM_X86)
  if constexpr (std::is_same<T, float>::value)
    if (avx512_active() && is_2x2(p) && avx512::avgpool2d_2x2_backward(p, dy, dx)) return;
#endif
  const int64_t HW = p.H * p.W, PQ = p.P * p.Q;
  parallel_for(p.N * p.C, [&](int64_t plane) {
    T* dxp = dx + plane * HW;
    const T* dyp = dy + plane * PQ;
    std::memset(dxp, 0, sizeof(T) * size_t(HW));
    for (int64_t oh = 0; oh < p.P; ++oh)
      for (int64_t ow = 0; ow < p.Q; ++ow) {
        const Window win = window(p, oh, ow, count_include_pad);
        const T g = dyp[oh * p.Q + ow] / T(win.div);
        for (int64_t ih = win.h0; ih < win.h1; ++ih)
          for (int64_t iw = win.w0; iw < win.w1; ++iw) dxp[ih * p.W + iw] += g;
      }
  });
}

template <typename T>
void global_avgpool2d_forward(int64_t planes, int64_t HW, const T* x, T* y) {
  BM_CHECK(planes >= 0 && HW > 0, "global_avg_pool2d: empty planes (H*W=", HW, ")");
  parallel_for(planes, [&](int64_t i) {
    const T* row = x + i * HW;
    T lanes[16] = {};
    int64_t j = 0;
    for (; j + 16 <= HW; j += 16)
      for (int l = 0; l < 16; ++l) lanes[l] += row[j + l];
    T s = T(0);
    for (; j < HW; ++j) s += row[j];
    for (int l = 0; l < 16; ++l) s += lanes[l];
    y[i] = s / T(HW);
  });
}

template <typename T>
void global_avgpool2d_backward(int64_t planes, int64_t HW, const T* dy, T* dx) {
  BM_CHECK(planes >= 0 && HW > 0, "global_avg_pool2d_backward: empty planes (H*W=", HW, ")");
  parallel_for(planes, [&](int64_t i) {
    const T g = dy[i] / T(HW);
    std::fill(dx + i * HW, dx + (i + 1) * HW, g);
  });
}

#define BM_POOL_INST(T)                                                                       \
  template void maxpool2d_forward<T>(const Pool2dParams&, const T*, T*, int64_t*);            \
  template void maxpool2d_backward<T>(const Pool2dParams&, const T*, const int64_t*, T*);     \
  template void avgpool2d_forward<T>(const Pool2dParams&, bool, const T*, T*);                \
  template void avgpool2d_backward<T>(const Pool2dParams&, bool, const T*, T*);               \
  template void global_avgpool2d_forward<T>(int64_t, int64_t, const T*, T*);                  \
  template void global_avgpool2d_backward<T>(int64_t, int64_t, const T*, T*);
BM_POOL_INST(float)
BM_POOL_INST(double)
#undef BM_POOL_INST

}  // namespace bm
