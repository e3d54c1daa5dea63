// Body of the row-wise kernels (cpu/nn.h), included once by each per-ISA translation unit with
// BM_ISA_NS defined. Rows are independent: OpenMP over rows, static schedule; the plain loops
// are written for the compiler to vectorise under that unit's ISA flags (#pragma omp simd),
// and the exp is vm::exp_row / exp_sum (cpu/vmath.h).
#pragma once
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "common/cpu_features.h"
#include "cpu/nn.h"
#include "cpu/vmath.h"

namespace bm {
namespace BM_ISA_NS {
namespace nn {

using bm::threads_for;  // ~64K elements per thread at least (common/cpu_features.h)

template <typename T>
void softmax_forward(const T* x, T* y, int64_t N, int64_t C, bool log) {
#pragma omp parallel for schedule(static) num_threads(threads_for(N * C))
  for (int64_t n = 0; n < N; ++n) {
    const T* xr = x + n * C;
    T* yr = y + n * C;
    const T m = vm::max_row(xr, C);
    if (log) {
      const T lse = m + std::log(vm::exp_sum(xr, C, m));
#pragma omp simd
      for (int64_t c = 0; c < C; ++c) yr[c] = xr[c] - lse;
    } else {
      const T inv = T(1) / vm::exp_copy(xr, yr, C, m);
#pragma omp simd
      for (int64_t c = 0; c < C; ++c) yr[c] *= inv;
    }
  }
}

// softmax: dx = y * (dy - <dy, y>); log-softmax: dx = dy - exp(y) * sum(dy).
template <typename T>
void softmax_backward(const T* dy, const T* y, T* dx, int64_t N, int64_t C, bool log) {
#pragma omp parallel for schedule(static) num_threads(threads_for(N * C))
  for (int64_t n = 0; n < N; ++n) {
    const T *g = dy + n * C, *yr = y + n * C;
    T* d = dx + n * C;
    T s = 0;
    if (log) {
#pragma omp simd reduction(+ : s)
      for (int64_t c = 0; c < C; ++c) s += g[c];
      vm::exp_copy(yr, d, C, T(0));
#pragma omp simd
      for (int64_t c = 0; c < C; ++c) d[c] = g[c] - d[c] * s;
    } else {
#pragma omp simd reduction(+ : s)
      for (int64_t c = 0; c < C; ++c) s += g[c] * yr[c];
#pragma omp simd
      for (int64_t c = 0; c < C; ++c) d[c] = yr[c] * (g[c] - s);
    }
  }
}

// loss_i = (1 - eps) * (lse - x[t]) + eps / C * (C * lse - sum_c x_c)   (torch's smoothing)
template <typename T>
void cross_entropy_forward(const T* x, const int64_t* t, T* loss, int64_t N, int64_t C,
                           int64_t ignore, T eps) {
#pragma omp parallel for schedule(static) num_threads(threads_for(N * C))
  for (int64_t n = 0; n < N; ++n) {
    if (t[n] == ignore) {
      loss[n] = 0;
      continue;
    }
    const T* xr = x + n * C;
    const T m = vm::max_row(xr, C);
    const T lse = m + std::log(vm::exp_sum(xr, C, m));
    T l = (T(1) - eps) * (lse - xr[t[n]]);
    if (eps != T(0)) {
      T s = 0;
#pragma omp simd reduction(+ : s)
      for (int64_t c = 0; c < C; ++c) s += xr[c];
      l += eps * (lse - s / T(C));
    }
    loss[n] = l;
  }
}

// dx_i = w_i * (softmax(x_i) - (1 - eps) onehot(t_i) - eps / C); 0 for ignored rows.
template <typename T>
void cross_entropy_backward(const T* x, const int64_t* t, const T* w, T* dx, int64_t N,
                            int64_t C, int64_t ignore, T eps) {
#pragma omp parallel for schedule(static) num_threads(threads_for(N * C))
  for (int64_t n = 0; n < N; ++n) {
    T* d = dx + n * C;
    if (t[n] == ignore) {
      std::memset(d, 0, sizeof(T) * C);
      continue;
    }
    const T* xr = x + n * C;
    const T m = vm::max_row(xr, C);
    const T wn = w[n] / vm::exp_copy(xr, d, C, m);
    const T off = w[n] * eps / T(C);
#pragma omp simd
    for (int64_t c = 0; c < C; ++c) d[c] = d[c] * wn - off;
    d[t[n]] -= w[n] * (T(1) - eps);
  }
}

template <typename T>
void layer_norm_forward(const T* x, const T* w, const T* b, T* y, T* mean, T* rstd, int64_t N,
                        int64_t D, T eps) {
#pragma omp parallel for schedule(static) num_threads(threads_for(N * D))
  for (int64_t n = 0; n < N; ++n) {
    const T* xr = x + n * D;
    T* yr = y + n * D;
    T s = 0;
#pragma omp simd reduction(+ : s)
    for (int64_t d = 0; d < D; ++d) s += xr[d];
    const T mu = s / T(D);
    T v = 0;  // two-pass variance: the row is in L1/L2 and it avoids cancellation
#pragma omp simd reduction(+ : v)
    for (int64_t d = 0; d < D; ++d) v += (xr[d] - mu) * (xr[d] - mu);
    const T rs = T(1) / std::sqrt(v / T(D) + eps);
    mean[n] = mu;
    rstd[n] = rs;
    if (w && b) {
#pragma omp simd
      for (int64_t d = 0; d < D; ++d) yr[d] = (xr[d] - mu) * rs * w[d] + b[d];
    } else if (w) {
#pragma omp simd
      for (int64_t d = 0; d < D; ++d) yr[d] = (xr[d] - mu) * rs * w[d];
    } else if (b) {
#pragma omp simd
      for (int64_t d = 0; d < D; ++d) yr[d] = (xr[d] - mu) * rs + b[d];
    } else {
#pragma omp simd
      for (int64_t d = 0; d < D; ++d) yr[d] = (xr[d] - mu) * rs;
    }
  }
}

// xhat = (x - mean) rstd, g = dy * w:  dx = rstd * (g - mean(g) - xhat * mean(g * xhat));
// dw = sum_n dy * xhat, db = sum_n dy (per-thread partial sums in double, then reduced).
template <typename T>
void layer_norm_backward(const T* dy, const T* x, const T* w, const T* mean, const T* rstd,
                         T* dx, T* dw, T* db, int64_t N, int64_t D) {
  const int nt = threads_for(N * D);
  const bool want_param = dw || db;
  std::vector<double> part(want_param ? size_t(nt) * 2 * D : 0, 0.0);
#pragma omp parallel num_threads(nt)
  {
    const int tid = omp_get_thread_num();
    double* pw = want_param ? part.data() + size_t(tid) * 2 * D : nullptr;
    double* pb = want_param ? pw + D : nullptr;
#pragma omp for schedule(static)
    for (int64_t n = 0; n < N; ++n) {
      const T *g = dy + n * D, *xr = x + n * D;
      T* d = dx + n * D;
      const T mu = mean[n], rs = rstd[n];
      T s1 = 0, s2 = 0;
      if (w) {
#pragma omp simd reduction(+ : s1, s2)
        for (int64_t c = 0; c < D; ++c) {
          const T gw = g[c] * w[c];
          s1 += gw;
          s2 += gw * (xr[c] - mu) * rs;
        }
      } else {
#pragma omp simd reduction(+ : s1, s2)
        for (int64_t c = 0; c < D; ++c) {
          s1 += g[c];
          s2 += g[c] * (xr[c] - mu) * rs;
        }
      }
      s1 /= T(D);
      s2 /= T(D);
      if (w) {
#pragma omp simd
        for (int64_t c = 0; c < D; ++c) d[c] = rs * (g[c] * w[c] - s1 - (xr[c] - mu) * rs * s2);
      } else {
#pragma omp simd
        for (int64_t c = 0; c < D; ++c) d[c] = rs * (g[c] - s1 - (xr[c] - mu) * rs * s2);
      }
      if (want_param) {
#pragma omp simd
        for (int64_t c = 0; c < D; ++c) {
          pw[c] += double(g[c]) * double((xr[c] - mu) * rs);
          pb[c] += double(g[c]);
        }
      }
    }
  }
  if (want_param) {
    for (int64_t c = 0; c < D; ++c) {
      double sw = 0, sb = 0;
      for (int t = 0; t < nt; ++t) {
        sw += part[size_t(t) * 2 * D + c];
        sb += part[size_t(t) * 2 * D + D + c];
      }
      if (dw) dw[c] = static_cast<T>(sw);
      if (db) db[c] = static_cast<T>(sb);
    }
  }
}

}  // namespace nn

#define BM_NN_DEF_T(T)                                                                          \
  void softmax_forward(const T* x, T* y, int64_t N, int64_t C, bool log) {                      \
    nn::softmax_forward(x, y, N, C, log);                                                       \
  }                                                                                             \
  void softmax_backward(const T* dy, const T* y, T* dx, int64_t N, int64_t C, bool log) {       \
    nn::softmax_backward(dy, y, dx, N, C, log);                                                 \
  }                                                                                             \
  void cross_entropy_forward(const T* x, const int64_t* t, T* loss, int64_t N, int64_t C,       \
                             int64_t ignore, T eps) {                                           \
    nn::cross_entropy_forward(x, t, loss, N, C, ignore, eps);                                   \
  }                                                                                             \
  void cross_entropy_backward(const T* x, const int64_t* t, const T* w, T* dx, int64_t N,       \
                              int64_t C, int64_t ignore, T eps) {                               \
    nn::cross_entropy_backward(x, t, w, dx, N, C, ignore, eps);                                 \
  }                                                                                             \
  void layer_norm_forward(const T* x, const T* w, const T* b, T* y, T* mean, T* rstd,           \
                          int64_t N, int64_t D, T eps) {                                        \
    nn::layer_norm_forward(x, w, b, y, mean, rstd, N, D, eps);                                  \
  }                                                                                             \
  void layer_norm_backward(const T* dy, const T* x, const T* w, const T* mean, const T* rstd,   \
                           T* dx, T* dw, T* db, int64_t N, int64_t D) {                         \
    nn::layer_norm_backward(dy, x, w, mean, rstd, dx, dw, db, N, D);                            \
  }
BM_NN_DEF_T(float)
BM_NN_DEF_T(double)
#undef BM_NN_DEF_T

}  // namespace BM_ISA_NS
}  // namespace bm
