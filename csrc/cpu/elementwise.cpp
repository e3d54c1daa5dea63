// Element-wise kernels (see elementwise.h). Memory-bound: plain loops that the compiler
// vectorises, split across threads only when the array is large enough to pay for it.
#include "cpu/elementwise.h"

#include <omp.h>

#include <cmath>

#include "common/cpu_features.h"

namespace bm {

template <typename T>
void relu_forward(const T* x, T* y, int64_t n) {
#pragma omp parallel for simd num_threads(threads_for(n)) schedule(static)
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] < T(0) ? T(0) : x[i];  // NaN stays NaN (torch)
}

template <typename T>
void relu_backward(const T* dy, const T* x, T* dx, int64_t n) {
#pragma omp parallel for simd num_threads(threads_for(n)) schedule(static)
  for (int64_t i = 0; i < n; ++i) dx[i] = x[i] > T(0) ? dy[i] : T(0);
}

template <typename T>
void sgd_update(T* w, const T* g, T* buf, int64_t n, double lr_, double mom_, double wd_,
                bool nesterov, bool first_step) {
  const T lr = T(lr_), mom = T(mom_), wd = T(wd_);
  if (mom_ == 0.0) {
#pragma omp parallel for simd num_threads(threads_for(n)) schedule(static)
    for (int64_t i = 0; i < n; ++i) w[i] -= lr * (g[i] + wd * w[i]);
    return;
  }
#pragma omp parallel for simd num_threads(threads_for(n)) schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const T gi = g[i] + wd * w[i];
    const T b = first_step ? gi : mom * buf[i] + gi;
    buf[i] = b;
    w[i] -= lr * (nesterov ? gi + mom * b : b);
  }
}

template <typename T>
void adam_update(T* w, const T* g, T* m, T* v, int64_t n, double lr, double beta1, double beta2,
                 double eps, double weight_decay, bool decoupled, int64_t step) {
  const T b1 = T(beta1), b2 = T(beta2), e = T(eps), wd = T(weight_decay);
  const T step_size = T(lr / (1.0 - std::pow(beta1, double(step))));
  const T corr2 = T(1.0 / std::sqrt(1.0 - std::pow(beta2, double(step))));
  const T decay = decoupled ? T(1.0 - lr * weight_decay) : T(1);
  const T l2 = decoupled ? T(0) : wd;
#pragma omp parallel for simd num_threads(threads_for(n)) schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const T gi = g[i] + l2 * w[i];
    const T mi = b1 * m[i] + (T(1) - b1) * gi;
    const T vi = b2 * v[i] + (T(1) - b2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    w[i] = w[i] * decay - step_size * mi / (std::sqrt(vi) * corr2 + e);
  }
}

#define BM_INST(T)                                                                             \
  template void relu_forward<T>(const T*, T*, int64_t);                                        \
  template void relu_backward<T>(const T*, const T*, T*, int64_t);                             \
  template void sgd_update<T>(T*, const T*, T*, int64_t, double, double, double, bool, bool);  \
  template void adam_update<T>(T*, const T*, T*, T*, int64_t, double, double, double, double,  \
                               double, bool, int64_t);
BM_INST(float)
BM_INST(double)
#undef BM_INST

}  // namespace bm
