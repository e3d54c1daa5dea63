// Element-wise kernels (see elementwise.h). Memory-bound: one grid-stride loop each, every
// element independent, so results do not depend on the launch shape. The per-call constants
// (bias corrections, decay) are computed on the host in double, exactly as the CPU kernels do,
// so the GPU and CPU updates agree to rounding of the same float expression.
#include <cuda_runtime.h>

#include <cmath>
#include <initializer_list>
#include <utility>

#include "common/check.h"
#include "cuda/cuda_check.cuh"
#include "cuda/elementwise.h"
#include "cuda/kernel_util.cuh"

namespace bm::cuda {
namespace ewk {

constexpr int kThreads = 256;

template <class T>
struct ReluParams {
  const T* x;
  const T* dy;  // backward only
  T* y;         // y (forward) or dx (backward)
  int64_t n;
};

template <class T>
struct SgdParams {
  T* w;
  const T* g;
  T* buf;
  int64_t n;
  T lr, mom, wd;
  bool nesterov, first_step;
};

template <class T>
struct AdamParams {
  T* w;
  const T* g;
  T* m;
  T* v;
  int64_t n;
  T b1, b2, eps, l2, decay, step_size, corr2;
};

__device__ __forceinline__ int64_t first_index() {
  return int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ __forceinline__ int64_t grid_stride() { return int64_t(gridDim.x) * blockDim.x; }

template <class T>
__global__ void relu_forward_kernel(ReluParams<T> p) {
  for (int64_t i = first_index(); i < p.n; i += grid_stride())
    p.y[i] = p.x[i] < T(0) ? T(0) : p.x[i];  // NaN < 0 is false: NaN passes through
}

template <class T>
__global__ void relu_backward_kernel(ReluParams<T> p) {
  for (int64_t i = first_index(); i < p.n; i += grid_stride())
    p.y[i] = p.x[i] > T(0) ? p.dy[i] : T(0);
}

template <class T>
__global__ void sgd_kernel(SgdParams<T> p) {
  for (int64_t i = first_index(); i < p.n; i += grid_stride()) {
    const T gi = p.g[i] + p.wd * p.w[i];
    if (p.mom == T(0)) {
      p.w[i] -= p.lr * gi;
      continue;
    }
    const T b = p.first_step ? gi : p.mom * p.buf[i] + gi;
    p.buf[i] = b;
    p.w[i] -= p.lr * (p.nesterov ? gi + p.mom * b : b);
  }
}

template <class T>
__global__ void adam_kernel(AdamParams<T> p) {
  for (int64_t i = first_index(); i < p.n; i += grid_stride()) {
    const T gi = p.g[i] + p.l2 * p.w[i];
    const T mi = p.b1 * p.m[i] + (T(1) - p.b1) * gi;
    const T vi = p.b2 * p.v[i] + (T(1) - p.b2) * gi * gi;
    p.m[i] = mi;
    p.v[i] = vi;
    p.w[i] = p.w[i] * p.decay - p.step_size * mi / (kutil::fsqrt(vi) * p.corr2 + p.eps);
  }
}

// Enough blocks to fill any current GPU several times over; the loops stride past the rest.
inline dim3 grid_for(int64_t n) {
  const int64_t blocks = (n + kThreads - 1) / kThreads;
  return dim3(static_cast<unsigned>(blocks < 8192 ? blocks : 8192));
}

void check(const char* op, int64_t n, DType dtype,
           std::initializer_list<std::pair<const char*, const void*>> ptrs) {
  BM_CHECK(n >= 0, op, ": n must be >= 0, got ", n);
  BM_CHECK(dtype == DType::f32 || dtype == DType::f64, op, ": dtype must be float32 or float64");
  if (n == 0) return;
  for (const auto& [name, ptr] : ptrs) kutil::check_device_ptr(op, name, ptr);
}

}  // namespace ewk

// Unqualified kernel names at the launches (tools/cuda_emu/run.sh rewrites `name<T><<<`).
using ewk::adam_kernel;
using ewk::grid_for;
using ewk::kThreads;
using ewk::relu_backward_kernel;
using ewk::relu_forward_kernel;
using ewk::sgd_kernel;

void launch_relu_forward(const void* x, void* y, int64_t n, DType dtype,
                         std::uintptr_t stream_ptr) {
  ewk::check("relu", n, dtype, {{"x", x}, {"y", y}});
  if (n == 0) return;
  cudaStream_t stream = reinterpret_cast<cudaStream_t>(stream_ptr);
  auto run = [&](auto tag) {
    using T = decltype(tag);
    ewk::ReluParams<T> p{static_cast<const T*>(x), nullptr, static_cast<T*>(y), n};
    relu_forward_kernel<T><<<grid_for(n), kThreads, 0, stream>>>(p);
    BM_CUDA_CHECK_LAUNCH();
  };
  dtype == DType::f32 ? run(float{}) : run(double{});
}

void launch_relu_backward(const void* dy, const void* x, void* dx, int64_t n, DType dtype,
                          std::uintptr_t stream_ptr) {
  ewk::check("relu_backward", n, dtype, {{"dy", dy}, {"x", x}, {"dx", dx}});
  if (n == 0) return;
  cudaStream_t stream = reinterpret_cast<cudaStream_t>(stream_ptr);
  auto run = [&](auto tag) {
    using T = decltype(tag);
    ewk::ReluParams<T> p{static_cast<const T*>(x), static_cast<const T*>(dy), static_cast<T*>(dx),
                         n};
    relu_backward_kernel<T><<<grid_for(n), kThreads, 0, stream>>>(p);
    BM_CUDA_CHECK_LAUNCH();
  };
  dtype == DType::f32 ? run(float{}) : run(double{});
}

void launch_sgd_update(void* w, const void* g, void* buf, int64_t n, double lr, double momentum,
                       double weight_decay, bool nesterov, bool first_step, DType dtype,
                       std::uintptr_t stream_ptr) {
  ewk::check("sgd_update", n, dtype, {{"w", w}, {"g", g}, {"buf", buf}});
  if (n == 0) return;
  cudaStream_t stream = reinterpret_cast<cudaStream_t>(stream_ptr);
  auto run = [&](auto tag) {
    using T = decltype(tag);
    ewk::SgdParams<T> p{static_cast<T*>(w), static_cast<const T*>(g), static_cast<T*>(buf), n,
                        T(lr), T(momentum), T(weight_decay), nesterov, first_step};
    sgd_kernel<T><<<grid_for(n), kThreads, 0, stream>>>(p);
    BM_CUDA_CHECK_LAUNCH();
  };
  dtype == DType::f32 ? run(float{}) : run(double{});
}

void launch_adam_update(void* w, const void* g, void* m, void* v, int64_t n, double lr,
                        double beta1, double beta2, double eps, double weight_decay,
                        bool decoupled, int64_t step, DType dtype, std::uintptr_t stream_ptr) {
  ewk::check("adam_update", n, dtype, {{"w", w}, {"g", g}, {"m", m}, {"v", v}});
  BM_CHECK(step >= 1, "adam_update: step must be >= 1, got ", step);
  if (n == 0) return;
  cudaStream_t stream = reinterpret_cast<cudaStream_t>(stream_ptr);
  auto run = [&](auto tag) {
    using T = decltype(tag);
    ewk::AdamParams<T> p{};
    p.w = static_cast<T*>(w), p.g = static_cast<const T*>(g);
    p.m = static_cast<T*>(m), p.v = static_cast<T*>(v), p.n = n;
    p.b1 = T(beta1), p.b2 = T(beta2), p.eps = T(eps);
    p.l2 = decoupled ? T(0) : T(weight_decay);
    p.decay = decoupled ? T(1.0 - lr * weight_decay) : T(1);
    p.step_size = T(lr / (1.0 - std::pow(beta1, double(step))));
    p.corr2 = T(1.0 / std::sqrt(1.0 - std::pow(beta2, double(step))));
    adam_kernel<T><<<grid_for(n), kThreads, 0, stream>>>(p);
    BM_CUDA_CHECK_LAUNCH();
  };
  dtype == DType::f32 ? run(float{}) : run(double{});
}

}  // namespace bm::cuda
