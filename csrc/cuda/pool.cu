// Pooling kernels and launchers: max / average forward and backward, global average. See pool.h.
// Memory-bound elementwise kernels: grid-stride loops of 256 threads, 64-bit element indices.
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <limits>

#include "cuda/conv_common.cuh"
#include "cuda/cuda_check.cuh"
#include "cuda/pool.h"

namespace bm::cuda {

struct PoolParams {
  const void* src;      // x (forward) or dy (backward)
  const int64_t* idx;   // max: indices (forward: may be null)
  void* dst;            // y (forward) or dx (backward)
  long long total;      // threads' elements: outputs (forward), inputs (backward), planes (scatter)
  int H, W, P, Q, kh, kw, sh, sw, ph, pw;
  bool count_include_pad;
};

constexpr int kPoolThreads = 256;

#define BM_POOL_LOOP(e, total)                                                                    \
  for (long long e = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x; e < (total); \
       e += static_cast<long long>(gridDim.x) * blockDim.x)

// Window of output (oh, ow) clipped to the input, as the CPU's window(): [h0, h1) x [w0, w1) and
// the average's divisor.
struct PoolWindow {
  int h0, h1, w0, w1, div;
};

__device__ __forceinline__ PoolWindow pool_window(const PoolParams& p, int oh, int ow) {
  int h0 = oh * p.sh - p.ph, w0 = ow * p.sw - p.pw;
  int h1 = h0 + p.kh < p.H + p.ph ? h0 + p.kh : p.H + p.ph;
  int w1 = w0 + p.kw < p.W + p.pw ? w0 + p.kw : p.W + p.pw;
  const int pool = (h1 - h0) * (w1 - w0);
  h0 = h0 > 0 ? h0 : 0;
  w0 = w0 > 0 ? w0 : 0;
  h1 = h1 < p.H ? h1 : p.H;
  w1 = w1 < p.W ? w1 : p.W;
  return {h0, h1, w0, w1, p.count_include_pad ? pool : (h1 - h0) * (w1 - w0)};
}

// Outputs [lo, hi] along one axis whose windows contain input coordinate x (empty if lo > hi).
__device__ __forceinline__ void windows_of(int x, int k, int s, int pad, int n, int& lo, int& hi) {
  const int a = x + pad - k + 1;  // first window start that still covers x, in padded coordinates
  lo = a <= 0 ? 0 : (a + s - 1) / s;
  hi = (x + pad) / s;
  if (hi > n - 1) hi = n - 1;
}

template <typename T>
__global__ void __launch_bounds__(kPoolThreads) maxpool2d_forward_kernel(PoolParams p) {
  const T* x = static_cast<const T*>(p.src);
  T* y = static_cast<T*>(p.dst);
  int64_t* idx = const_cast<int64_t*>(p.idx);
  BM_POOL_LOOP(e, p.total) {
    const int ow = static_cast<int>(e % p.Q);
    const long long t = e / p.Q;
    const int oh = static_cast<int>(t % p.P);
    const long long plane = t / p.P;
    const T* xp = x + plane * p.H * p.W;
    const PoolWindow win = pool_window(p, oh, ow);
    T best = -INFINITY;
    int arg = win.h0 * p.W + win.w0;
    for (int ih = win.h0; ih < win.h1; ++ih)
      for (int iw = win.w0; iw < win.w1; ++iw) {
        const T v = xp[ih * p.W + iw];
        if (v > best || v != v) {  // torch's rule: a later NaN replaces an earlier one
          best = v;
          arg = ih * p.W + iw;
        }
      }
    y[e] = best;
    if (idx) idx[e] = arg;
  }
}

// Gather: dx[plane, h, w] = sum of dy over the windows containing (h, w) whose argmax it is, in
// output order (the CPU's order of additions).
template <typename T>
__global__ void __launch_bounds__(kPoolThreads) maxpool2d_backward_kernel(PoolParams p) {
  const T* dy = static_cast<const T*>(p.src);
  T* dx = static_cast<T*>(p.dst);
  BM_POOL_LOOP(e, p.total) {
    const int iw = static_cast<int>(e % p.W);
    const long long t = e / p.W;
    const int ih = static_cast<int>(t % p.H);
    const long long plane = t / p.H;
    int p0, p1, q0, q1;
    windows_of(ih, p.kh, p.sh, p.ph, p.P, p0, p1);
    windows_of(iw, p.kw, p.sw, p.pw, p.Q, q0, q1);
    const long long base = plane * p.P * p.Q;
    const int64_t me = static_cast<int64_t>(ih) * p.W + iw;
    T acc = T(0);
    for (int oh = p0; oh <= p1; ++oh)
      for (int ow = q0; ow <= q1; ++ow) {
        const long long o = base + oh * p.Q + ow;
        if (p.idx[o] == me) acc += dy[o];
      }
    dx[e] = acc;
  }
}

// Scatter without the window geometry: thread = plane, dx plane zeroed then dy added at each
// index in output order (deterministic: one thread owns the plane). Bad indices are skipped.
template <typename T>
__global__ void __launch_bounds__(kPoolThreads) maxpool2d_backward_scatter_kernel(PoolParams p) {
  const T* dy = static_cast<const T*>(p.src);
  T* dx = static_cast<T*>(p.dst);
  const long long HW = static_cast<long long>(p.H) * p.W, PQ = static_cast<long long>(p.P) * p.Q;
  BM_POOL_LOOP(plane, p.total) {
    T* dxp = dx + plane * HW;
    const T* dyp = dy + plane * PQ;
    const int64_t* ip = p.idx + plane * PQ;
    for (long long i = 0; i < HW; ++i) dxp[i] = T(0);
    for (long long o = 0; o < PQ; ++o) {
      const int64_t j = ip[o];
      if (j >= 0 && j < HW) dxp[j] += dyp[o];
    }
  }
}

template <typename T>
__global__ void __launch_bounds__(kPoolThreads) avgpool2d_forward_kernel(PoolParams p) {
  const T* x = static_cast<const T*>(p.src);
  T* y = static_cast<T*>(p.dst);
  BM_POOL_LOOP(e, p.total) {
    const int ow = static_cast<int>(e % p.Q);
    const long long t = e / p.Q;
    const int oh = static_cast<int>(t % p.P);
    const long long plane = t / p.P;
    const T* xp = x + plane * p.H * p.W;
    const PoolWindow win = pool_window(p, oh, ow);
    T s = T(0);
    for (int ih = win.h0; ih < win.h1; ++ih)
      for (int iw = win.w0; iw < win.w1; ++iw) s += xp[ih * p.W + iw];
    y[e] = s / T(win.div);
  }
}

// Gather: dx[plane, h, w] = sum over the windows containing (h, w) of dy / divisor.
template <typename T>
__global__ void __launch_bounds__(kPoolThreads) avgpool2d_backward_kernel(PoolParams p) {
  const T* dy = static_cast<const T*>(p.src);
  T* dx = static_cast<T*>(p.dst);
  BM_POOL_LOOP(e, p.total) {
    const int iw = static_cast<int>(e % p.W);
    const long long t = e / p.W;
    const int ih = static_cast<int>(t % p.H);
    const long long plane = t / p.H;
    int p0, p1, q0, q1;
    windows_of(ih, p.kh, p.sh, p.ph, p.P, p0, p1);
    windows_of(iw, p.kw, p.sw, p.pw, p.Q, q0, q1);
    const T* dyp = dy + plane * p.P * p.Q;
    T acc = T(0);
    for (int oh = p0; oh <= p1; ++oh)
      for (int ow = q0; ow <= q1; ++ow)
        acc += dyp[oh * p.Q + ow] / T(pool_window(p, oh, ow).div);
    dx[e] = acc;
  }
}

struct GlobalPoolParams {
  const void* src;
  void* dst;
  long long planes, HW;
};

// One warp per plane: lanes sum strided elements, then a shared-memory tree within the warp.
template <typename T>
__global__ void __launch_bounds__(kPoolThreads) global_avgpool2d_forward_kernel(GlobalPoolParams p) {
  __shared__ T red[kPoolThreads];
  const T* x = static_cast<const T*>(p.src);
  T* y = static_cast<T*>(p.dst);
  const int tid = threadIdx.x, lane = tid % 32;
  const long long warps = static_cast<long long>(gridDim.x) * (kPoolThreads / 32);
  for (long long plane = static_cast<long long>(blockIdx.x) * (kPoolThreads / 32) + tid / 32;
       plane < p.planes; plane += warps) {
    const T* xp = x + plane * p.HW;
    T s = T(0);
    for (long long j = lane; j < p.HW; j += 32) s += xp[j];
    red[tid] = s;
    __syncwarp();
    for (int h = 16; h > 0; h /= 2) {
      if (lane < h) red[tid] += red[tid + h];
      __syncwarp();
    }
    if (lane == 0) y[plane] = red[tid] / T(p.HW);
    __syncwarp();
  }
}

template <typename T>
__global__ void __launch_bounds__(kPoolThreads) global_avgpool2d_backward_kernel(GlobalPoolParams p) {
  const T* dy = static_cast<const T*>(p.src);
  T* dx = static_cast<T*>(p.dst);
  BM_POOL_LOOP(e, p.planes * p.HW) dx[e] = dy[e / p.HW] / T(p.HW);
}

#undef BM_POOL_LOOP

// ---- launchers ---------------------------------------------------------------------------------

namespace {

constexpr int64_t kMaxI32 = std::numeric_limits<int>::max();

void check_dtype(DType dt, const char* op) {
  BM_CHECK(dt == DType::f32 || dt == DType::f64, op, ": dtype must be float32 or float64");
}

PoolParams params(const Pool2dShape& s, const void* src, const int64_t* idx, void* dst,
                  long long total, bool cip) {
  PoolParams p{};
  p.src = src, p.idx = idx, p.dst = dst, p.total = total;
  p.H = int(s.H), p.W = int(s.W), p.P = int(s.P), p.Q = int(s.Q);
  p.kh = int(s.kh), p.kw = int(s.kw), p.sh = int(s.sh), p.sw = int(s.sw);
  p.ph = int(s.ph), p.pw = int(s.pw), p.count_include_pad = cip;
  return p;
}

void launch_pool(void (*kernel)(PoolParams), const PoolParams& p, cudaStream_t stream) {
  const dim3 grid(conv_common::grid_for(p.total, kPoolThreads));
  kernel<<<grid, kPoolThreads, 0, stream>>>(p);
  BM_CUDA_CHECK_LAUNCH();
}

}  // namespace

void pool2d_check_shape(const Pool2dShape& s, bool check_windows, const char* op) {
  BM_CHECK(s.N >= 0 && s.C >= 0 && s.H > 0 && s.W > 0 && s.P > 0 && s.Q > 0, op,
           ": sizes must be positive (N=", s.N, " C=", s.C, " H=", s.H, " W=", s.W, " P=", s.P,
           " Q=", s.Q, ")");
  BM_CHECK(s.H * s.W < kMaxI32 && s.P * s.Q < kMaxI32, op, ": planes of ", s.H, "x", s.W,
           " (output ", s.P, "x", s.Q, ") are too large for the CUDA kernels");
  if (!check_windows) return;
  BM_CHECK(s.kh > 0 && s.kw > 0 && s.sh > 0 && s.sw > 0, op, ": kernel and stride must be positive");
  BM_CHECK(s.kh < kMaxI32 / 4 && s.kw < kMaxI32 / 4 && s.sh < kMaxI32 / 4 && s.sw < kMaxI32 / 4 &&
               s.P * s.sh < kMaxI32 / 2 && s.Q * s.sw < kMaxI32 / 2,
           op, ": kernel or stride too large for the CUDA kernels");
  BM_CHECK(s.ph >= 0 && s.pw >= 0 && 2 * s.ph <= s.kh && 2 * s.pw <= s.kw, op,
           ": padding must be between 0 and half the kernel");
  BM_CHECK((s.P - 1) * s.sh < s.H + s.ph && (s.Q - 1) * s.sw < s.W + s.pw, op, ": output (", s.P,
           ", ", s.Q, ") too large for the input (", s.H, ", ", s.W, ")");
}

void launch_maxpool2d_forward(const Pool2dShape& s, DType dt, const void* x, void* y,
                              int64_t* indices, std::uintptr_t stream_ptr) {
  pool2d_check_shape(s, true, "max_pool2d");
  check_dtype(dt, "max_pool2d");
  const long long total = s.N * s.C * s.P * s.Q;
  if (total == 0) return;
  conv_common::check_device_ptr(x, "max_pool2d", "x");
  conv_common::check_device_ptr(y, "max_pool2d", "out");
  if (indices) conv_common::check_device_ptr(indices, "max_pool2d", "indices");
  const PoolParams p = params(s, x, indices, y, total, true);
  cudaStream_t stream = reinterpret_cast<cudaStream_t>(stream_ptr);
  if (dt == DType::f32) launch_pool(&maxpool2d_forward_kernel<float>, p, stream);
  else launch_pool(&maxpool2d_forward_kernel<double>, p, stream);
}

void launch_maxpool2d_backward(const Pool2dShape& s, bool with_window, DType dt, const void* dy,
                               const int64_t* indices, void* dx, std::uintptr_t stream_ptr) {
  pool2d_check_shape(s, with_window, "max_pool2d_backward");
  check_dtype(dt, "max_pool2d_backward");
  const long long planes = s.N * s.C;
  if (planes == 0) return;
  conv_common::check_device_ptr(dy, "max_pool2d_backward", "dy");
  conv_common::check_device_ptr(indices, "max_pool2d_backward", "indices");
  conv_common::check_device_ptr(dx, "max_pool2d_backward", "dx");
  cudaStream_t stream = reinterpret_cast<cudaStream_t>(stream_ptr);
  const PoolParams p = params(s, dy, indices, dx, with_window ? planes * s.H * s.W : planes, true);
  if (with_window) {
    if (dt == DType::f32) launch_pool(&maxpool2d_backward_kernel<float>, p, stream);
    else launch_pool(&maxpool2d_backward_kernel<double>, p, stream);
  } else {
    if (dt == DType::f32) launch_pool(&maxpool2d_backward_scatter_kernel<float>, p, stream);
    else launch_pool(&maxpool2d_backward_scatter_kernel<double>, p, stream);
  }
}

void launch_avgpool2d_forward(const Pool2dShape& s, bool cip, DType dt, const void* x, void* y,
                              std::uintptr_t stream_ptr) {
  pool2d_check_shape(s, true, "avg_pool2d");
  check_dtype(dt, "avg_pool2d");
  const long long total = s.N * s.C * s.P * s.Q;
  if (total == 0) return;
  conv_common::check_device_ptr(x, "avg_pool2d", "x");
  conv_common::check_device_ptr(y, "avg_pool2d", "out");
  const PoolParams p = params(s, x, nullptr, y, total, cip);
  cudaStream_t stream = reinterpret_cast<cudaStream_t>(stream_ptr);
  if (dt == DType::f32) launch_pool(&avgpool2d_forward_kernel<float>, p, stream);
  else launch_pool(&avgpool2d_forward_kernel<double>, p, stream);
}

void launch_avgpool2d_backward(const Pool2dShape& s, bool cip, DType dt, const void* dy, void* dx,
                               std::uintptr_t stream_ptr) {
  pool2d_check_shape(s, true, "avg_pool2d_backward");
  check_dtype(dt, "avg_pool2d_backward");
  const long long total = s.N * s.C * s.H * s.W;
  if (total == 0) return;
  conv_common::check_device_ptr(dy, "avg_pool2d_backward", "dy");
  conv_common::check_device_ptr(dx, "avg_pool2d_backward", "dx");
  const PoolParams p = params(s, dy, nullptr, dx, total, cip);
  cudaStream_t stream = reinterpret_cast<cudaStream_t>(stream_ptr);
  if (dt == DType::f32) launch_pool(&avgpool2d_backward_kernel<float>, p, stream);
  else launch_pool(&avgpool2d_backward_kernel<double>, p, stream);
}

void launch_global_avgpool2d_forward(int64_t planes, int64_t HW, DType dt, const void* x, void* y,
                                     std::uintptr_t stream_ptr) {
  BM_CHECK(planes >= 0 && HW > 0, "global_avg_pool2d: empty planes (H*W=", HW, ")");
  check_dtype(dt, "global_avg_pool2d");
  if (planes == 0) return;
  conv_common::check_device_ptr(x, "global_avg_pool2d", "x");
  conv_common::check_device_ptr(y, "global_avg_pool2d", "out");
  const GlobalPoolParams p{x, y, planes, HW};
  const dim3 grid(conv_common::grid_for(planes, kPoolThreads / 32));
  cudaStream_t stream = reinterpret_cast<cudaStream_t>(stream_ptr);
  auto kern = dt == DType::f32 ? &global_avgpool2d_forward_kernel<float>
                               : &global_avgpool2d_forward_kernel<double>;
  kern<<<grid, kPoolThreads, 0, stream>>>(p);
  BM_CUDA_CHECK_LAUNCH();
}

void launch_global_avgpool2d_backward(int64_t planes, int64_t HW, DType dt, const void* dy,
                                      void* dx, std::uintptr_t stream_ptr) {
  BM_CHECK(planes >= 0 && HW > 0, "global_avg_pool2d_backward: empty planes (H*W=", HW, ")");
  check_dtype(dt, "global_avg_pool2d_backward");
  if (planes == 0) return;
  conv_common::check_device_ptr(dy, "global_avg_pool2d_backward", "dy");
  conv_common::check_device_ptr(dx, "global_avg_pool2d_backward", "dx");
  const GlobalPoolParams p{dy, dx, planes, HW};
  const dim3 grid(conv_common::grid_for(planes * HW, kPoolThreads));
  cudaStream_t stream = reinterpret_cast<cudaStream_t>(stream_ptr);
  auto kern = dt == DType::f32 ? &global_avgpool2d_backward_kernel<float>
                               : &global_avgpool2d_backward_kernel<double>;
  kern<<<grid, kPoolThreads, 0, stream>>>(p);
  BM_CUDA_CHECK_LAUNCH();
}

}  // namespace bm::cuda
