// Row-wise kernels on the GPU (cuda/nn.h): softmax / log-softmax, cross-entropy and layer norm,
// forward and backward. Rows x (N, C) are contiguous, the reduced axis last.
//
// Each row is owned by a "row group" of threads: one warp (rows up to kBlockRowMin - 1 long; a
// block of 4 warps = 4 rows) or a whole block of 256 threads (longer rows). A group strides
// over its row (coalesced), reduces with xor-shuffles and, for a block, once more through
// shared memory; every lane gets the result. Softmaxes use one online pass for (max, sum of
// exp) (Milakov & Gimelshein 2018) and one pass that writes; layer norm uses two passes for the
// statistics (mean, then sum of squared deviations: no cancellation) and one that writes.
// layer_norm_backward: dx with a group per row (layer_norm_backward_dx_kernel); dweight / dbias
// as column sums over N without atomics: layer_norm_backward_partial_kernel sums chunks of rows
// per column into a workspace (R, 2, D), layer_norm_backward_param_kernel adds the R partials in
// a fixed order. R depends on N only, so results do not depend on the GPU.
#include <cuda_runtime.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <initializer_list>
#include <utility>

#include "cuda/cuda_check.cuh"
#include "cuda/kernel_util.cuh"
#include "cuda/nn.h"

namespace bm::cuda {
namespace nnk {

using kutil::aexp;
using kutil::flog;
using kutil::fsqrt;
using kutil::group_max;
using kutil::group_sum;
using kutil::neg_inf;

constexpr int kWarpThreads = 128;  // warp-per-row kernels: 4 rows per block
constexpr int kBlockThreads = 256;  // block-per-row kernels
constexpr int64_t kBlockRowMin = 1024;  // rows at least this long get a block each

template <class T>
struct RowParams {
  const T* x;    // softmax x / y (backward), logits, layer-norm x
  const T* g;    // dy / per-row loss weights
  const T* w;    // layer-norm weight (nullable)
  const T* b;    // layer-norm bias (nullable)
  const T* s0;   // mean (layer-norm backward)
  const T* s1;   // rstd (layer-norm backward)
  T* y;          // output rows
  T* o0;         // per-row output (loss, mean)
  T* o1;         // per-row output (rstd)
  T* dw;         // layer-norm dweight (nullable)
  T* db;         // layer-norm dbias (nullable)
  const long long* t;  // targets
  long long N, C;
  long long ignore;
  T eps;         // label smoothing or layer-norm eps
  bool log;
};

// The threads that own one row: a warp, or the whole block (NT threads).
template <bool kBlock, int NT>
struct RowGroup {
  static constexpr int kSize = kBlock ? NT : 32;
  int lane;
  long long row;
  __device__ RowGroup() {
    lane = kBlock ? threadIdx.x : threadIdx.x % 32;
    row = kBlock ? static_cast<long long>(blockIdx.x)
                 : static_cast<long long>(blockIdx.x) * (NT / 32) + threadIdx.x / 32;
  }
  // Sum / max over the group; every thread of the group must call it (a block: every thread
  // of the block, so a whole block leaves or stays together).
  template <class T>
  __device__ T sum(T v) const {
    v = group_sum<32>(v);
    if constexpr (kBlock) v = across_warps(v, false);
    return v;
  }
  template <class T>
  __device__ T max(T v) const {
    v = group_max<32>(v);
    if constexpr (kBlock) v = across_warps(v, true);
    return v;
  }
  template <class T>
  __device__ T across_warps(T v, bool is_max) const {
    __shared__ T red[NT / 32];
    if (threadIdx.x % 32 == 0) red[threadIdx.x / 32] = v;
    __syncthreads();
    T r = red[0];
#pragma unroll
    for (int w = 1; w < NT / 32; ++w) r = is_max ? fmax(r, red[w]) : r + red[w];
    __syncthreads();  // red is reused by the next reduction
    return r;
  }
};

// Online (max, sum of exp(x - max)) over this thread's elements of a row, then over the group.
template <class G, class T>
__device__ void row_max_sumexp(const G& g, const T* xr, long long C, T& m, T& s) {
  m = neg_inf<T>();
  s = T(0);
  for (long long c = g.lane; c < C; c += G::kSize) {
    const T x = xr[c];
    if (x > m) {
      s = (m == neg_inf<T>() ? T(0) : s * aexp(m - x)) + T(1);
      m = x;
    } else {
      s += aexp(x - m);  // x = m = -inf gives NaN, like max-subtracted exp on the CPU
    }
  }
  const T mg = g.max(m);
  s = (m == neg_inf<T>()) ? T(0) : s * aexp(m - mg);
  s = g.sum(s);
  m = mg;
}

// ---- softmax -----------------------------------------------------------------------------------

template <class T, bool kBlock, int NT>
__global__ void __launch_bounds__(NT) softmax_forward_kernel(RowParams<T> p) {
  const RowGroup<kBlock, NT> g;
  if (g.row >= p.N) return;  // a whole warp (or block) leaves together
  const T* xr = p.x + g.row * p.C;
  T* yr = p.y + g.row * p.C;
  T m, s;
  row_max_sumexp(g, xr, p.C, m, s);
  if (p.log) {
    const T lse = m + flog(s);
    for (long long c = g.lane; c < p.C; c += g.kSize) yr[c] = xr[c] - lse;
  } else {
    const T inv = T(1) / s;
    for (long long c = g.lane; c < p.C; c += g.kSize) yr[c] = aexp(xr[c] - m) * inv;
  }
}

// softmax: dx = y * (dy - <dy, y>); log-softmax: dx = dy - exp(y) * sum(dy).
template <class T, bool kBlock, int NT>
__global__ void __launch_bounds__(NT) softmax_backward_kernel(RowParams<T> p) {
  const RowGroup<kBlock, NT> g;
  if (g.row >= p.N) return;
  const T* yr = p.x + g.row * p.C;
  const T* dyr = p.g + g.row * p.C;
  T* dxr = p.y + g.row * p.C;
  T s = T(0);
  for (long long c = g.lane; c < p.C; c += g.kSize) s += p.log ? dyr[c] : dyr[c] * yr[c];
  s = g.sum(s);
  if (p.log) {
    for (long long c = g.lane; c < p.C; c += g.kSize) dxr[c] = dyr[c] - aexp(yr[c]) * s;
  } else {
    for (long long c = g.lane; c < p.C; c += g.kSize) dxr[c] = yr[c] * (dyr[c] - s);
  }
}

// ---- cross-entropy -----------------------------------------------------------------------------

// loss = (1 - eps) * (lse - x[t]) + eps * (lse - mean(x))   (torch's label smoothing)
template <class T, bool kBlock, int NT>
__global__ void __launch_bounds__(NT) cross_entropy_forward_kernel(RowParams<T> p) {
  const RowGroup<kBlock, NT> g;
  if (g.row >= p.N) return;
  const long long t = p.t[g.row];
  if (t == p.ignore || t < 0 || t >= p.C) {  // uniform over the group: it leaves together
    if (g.lane == 0) p.o0[g.row] = t == p.ignore ? T(0) : static_cast<T>(NAN);
    return;
  }
  const T* xr = p.x + g.row * p.C;
  T m, s;
  row_max_sumexp(g, xr, p.C, m, s);
  T sx = T(0);
  if (p.eps != T(0)) {
    for (long long c = g.lane; c < p.C; c += g.kSize) sx += xr[c];
    sx = g.sum(sx);
  }
  if (g.lane == 0) {
    const T lse = m + flog(s);
    T loss = (T(1) - p.eps) * (lse - xr[t]);
    if (p.eps != T(0)) loss += p.eps * (lse - sx / static_cast<T>(p.C));
    p.o0[g.row] = loss;
  }
}

// dx = w * (softmax(x) - (1 - eps) onehot(t) - eps / C); zeros for ignored rows.
template <class T, bool kBlock, int NT>
__global__ void __launch_bounds__(NT) cross_entropy_backward_kernel(RowParams<T> p) {
  const RowGroup<kBlock, NT> g;
  if (g.row >= p.N) return;
  const long long t = p.t[g.row];
  T* dxr = p.y + g.row * p.C;
  if (t == p.ignore || t < 0 || t >= p.C) {
    const T fill = t == p.ignore ? T(0) : static_cast<T>(NAN);
    for (long long c = g.lane; c < p.C; c += g.kSize) dxr[c] = fill;
    return;
  }
  const T* xr = p.x + g.row * p.C;
  T m, s;
  row_max_sumexp(g, xr, p.C, m, s);
  const T w = p.g[g.row];
  const T ws = w / s, off = w * p.eps / static_cast<T>(p.C), hit = w * (T(1) - p.eps);
  for (long long c = g.lane; c < p.C; c += g.kSize)
    dxr[c] = aexp(xr[c] - m) * ws - off - (c == t ? hit : T(0));
}

// ---- layer norm --------------------------------------------------------------------------------

template <class T, bool kBlock, int NT>
__global__ void __launch_bounds__(NT) layer_norm_forward_kernel(RowParams<T> p) {
  const RowGroup<kBlock, NT> g;
  if (g.row >= p.N) return;
  const long long D = p.C;
  const T* xr = p.x + g.row * D;
  T* yr = p.y + g.row * D;
  T s = T(0);
  for (long long c = g.lane; c < D; c += g.kSize) s += xr[c];
  const T mu = g.sum(s) / static_cast<T>(D);
  T v = T(0);
  for (long long c = g.lane; c < D; c += g.kSize) v += (xr[c] - mu) * (xr[c] - mu);
  const T rs = T(1) / fsqrt(g.sum(v) / static_cast<T>(D) + p.eps);
  for (long long c = g.lane; c < D; c += g.kSize) {
    T y = (xr[c] - mu) * rs;
    if (p.w) y *= p.w[c];
    if (p.b) y += p.b[c];
    yr[c] = y;
  }
  if (g.lane == 0) {
    p.o0[g.row] = mu;
    p.o1[g.row] = rs;
  }
}

// xhat = (x - mean) rstd, h = dy * w:  dx = rstd * (h - mean(h) - xhat * mean(h * xhat)).
template <class T, bool kBlock, int NT>
__global__ void __launch_bounds__(NT) layer_norm_backward_dx_kernel(RowParams<T> p) {
  const RowGroup<kBlock, NT> g;
  if (g.row >= p.N) return;
  const long long D = p.C;
  const T* xr = p.x + g.row * D;
  const T* dyr = p.g + g.row * D;
  T* dxr = p.y + g.row * D;
  const T mu = p.s0[g.row], rs = p.s1[g.row];
  T s1 = T(0), s2 = T(0);
  for (long long c = g.lane; c < D; c += g.kSize) {
    const T h = p.w ? dyr[c] * p.w[c] : dyr[c];
    s1 += h;
    s2 += h * (xr[c] - mu) * rs;
  }
  s1 = g.sum(s1) / static_cast<T>(D);
  s2 = g.sum(s2) / static_cast<T>(D);
  for (long long c = g.lane; c < D; c += g.kSize) {
    const T h = p.w ? dyr[c] * p.w[c] : dyr[c];
    dxr[c] = rs * (h - s1 - (xr[c] - mu) * rs * s2);
  }
}

constexpr int kPartCols = 32, kPartRows = 8;  // partial kernel: 32 columns x 8 row lanes
constexpr int64_t kPartMaxChunks = 128, kPartMinRows = 32;

// Row chunks R for the dweight / dbias partials: about kPartMinRows rows each, at most 128.
int64_t part_chunks(int64_t N) {
  return std::clamp<int64_t>((N + kPartMinRows - 1) / kPartMinRows, 1, kPartMaxChunks);
}

// blockIdx.x: 32 columns; blockIdx.y: a chunk of rows. work[chunk][0][c] = sum dy * xhat,
// work[chunk][1][c] = sum dy, over the chunk's rows, summed in a fixed order.
template <class T>
__global__ void __launch_bounds__(kPartCols * kPartRows) layer_norm_backward_partial_kernel(
    RowParams<T> p) {
  __shared__ T red[2][kPartRows][kPartCols + 1];
  const int tx = threadIdx.x % kPartCols, ty = threadIdx.x / kPartCols;
  const long long c = static_cast<long long>(blockIdx.x) * kPartCols + tx;
  const long long D = p.C, R = gridDim.y;
  const long long per = (p.N + R - 1) / R;
  const long long r0 = blockIdx.y * per, r1 = r0 + per < p.N ? r0 + per : p.N;
  T sw = T(0), sb = T(0);
  if (c < D) {
    for (long long n = r0 + ty; n < r1; n += kPartRows) {
      const T dy = p.g[n * D + c];
      sw += dy * (p.x[n * D + c] - p.s0[n]) * p.s1[n];
      sb += dy;
    }
  }
  red[0][ty][tx] = sw;
  red[1][ty][tx] = sb;
  __syncthreads();
  if (ty < 2 && c < D) {
    T acc = T(0);
#pragma unroll
    for (int r = 0; r < kPartRows; ++r) acc += red[ty][r][tx];
    p.y[(blockIdx.y * 2 + ty) * D + c] = acc;  // p.y = workspace (R, 2, D)
  }
}

// dw[c] = sum_r work[r][0][c], db[c] = sum_r work[r][1][c] (p.x = work, R = p.N chunks).
template <class T>
__global__ void __launch_bounds__(256) layer_norm_backward_param_kernel(RowParams<T> p) {
  const long long c = static_cast<long long>(blockIdx.x) * 256 + threadIdx.x;
  if (c >= p.C) return;
  T sw = T(0), sb = T(0);
  for (long long r = 0; r < p.N; ++r) {
    sw += p.x[(2 * r) * p.C + c];
    sb += p.x[(2 * r + 1) * p.C + c];
  }
  if (p.dw) p.dw[c] = sw;
  if (p.db) p.db[c] = sb;
}

// ---- launchers ---------------------------------------------------------------------------------

template <class T>
using Kernel = void (*)(RowParams<T>);

// A warp per row for short rows, a block per row for long ones.
template <class T>
void launch_rows(Kernel<T> warp_kernel, Kernel<T> block_kernel, const RowParams<T>& p,
                 cudaStream_t stream, const char* op) {
  if (p.C >= kBlockRowMin) {
    BM_CHECK(p.N <= INT_MAX, op, ": too many rows (N=", p.N, ")");
    const dim3 grid(static_cast<unsigned>(p.N));
    block_kernel<<<grid, kBlockThreads, 0, stream>>>(p);
  } else {
    const int64_t blocks = (p.N + kWarpThreads / 32 - 1) / (kWarpThreads / 32);
    BM_CHECK(blocks <= INT_MAX, op, ": too many rows (N=", p.N, ")");
    const dim3 grid(static_cast<unsigned>(blocks));
    warp_kernel<<<grid, kWarpThreads, 0, stream>>>(p);
  }
  BM_CUDA_CHECK_LAUNCH();
}

#define BM_ROW_KERNELS(name, T) \
  name<T, false, ::bm::cuda::nnk::kWarpThreads>, name<T, true, ::bm::cuda::nnk::kBlockThreads>

void check_common(const char* op, int64_t N, int64_t C, DType dtype, const char* cname) {
  BM_CHECK(dtype == DType::f32 || dtype == DType::f64, op, ": dtype must be float32 or float64");
  BM_CHECK(N >= 0 && C >= 0, op, ": sizes must be >= 0, got N=", N, " ", cname, "=", C);
}

// Pointer checks: names and pointers in pairs, only when the arrays are not empty. Checks for
// null first (no GPU needed), then that each is memory of the current device.
void check_ptrs(const char* op, std::initializer_list<std::pair<const char*, const void*>> ptrs) {
  for (const auto& [name, ptr] : ptrs) BM_CHECK(ptr != nullptr, op, ": ", name, " is a null pointer");
  for (const auto& [name, ptr] : ptrs) kutil::check_device_ptr(op, name, ptr);
}

template <class T>
RowParams<T> row_params(int64_t N, int64_t C) {
  RowParams<T> p{};
  p.N = N, p.C = C;
  return p;
}

}  // namespace nnk

using nnk::check_common;
using nnk::check_ptrs;
using nnk::launch_rows;
using nnk::RowParams;
using nnk::row_params;
// Unqualified kernel names at the launches (tools/cuda_emu/run.sh rewrites `name<...><<<`).
using nnk::layer_norm_backward_param_kernel;
using nnk::layer_norm_backward_partial_kernel;
constexpr int kPartThreads = nnk::kPartCols * nnk::kPartRows;

void launch_softmax_forward(const void* x, void* y, int64_t N, int64_t C, bool log, DType dtype,
                            std::uintptr_t stream_ptr) {
  const char* op = log ? "log_softmax" : "softmax";
  check_common(op, N, C, dtype, "C");
  if (N * C == 0) return;
  check_ptrs(op, {{"x", x}, {"y", y}});
  cudaStream_t stream = reinterpret_cast<cudaStream_t>(stream_ptr);
  auto run = [&](auto tag) {
    using T = decltype(tag);
    RowParams<T> p = row_params<T>(N, C);
    p.x = static_cast<const T*>(x), p.y = static_cast<T*>(y), p.log = log;
    launch_rows<T>(BM_ROW_KERNELS(nnk::softmax_forward_kernel, T), p, stream, op);
  };
  dtype == DType::f32 ? run(float{}) : run(double{});
}

void launch_softmax_backward(const void* dy, const void* y, void* dx, int64_t N, int64_t C,
                             bool log, DType dtype, std::uintptr_t stream_ptr) {
  const char* op = log ? "log_softmax_backward" : "softmax_backward";
  check_common(op, N, C, dtype, "C");
  if (N * C == 0) return;
  check_ptrs(op, {{"dy", dy}, {"y", y}, {"dx", dx}});
  cudaStream_t stream = reinterpret_cast<cudaStream_t>(stream_ptr);
  auto run = [&](auto tag) {
    using T = decltype(tag);
    RowParams<T> p = row_params<T>(N, C);
    p.x = static_cast<const T*>(y), p.g = static_cast<const T*>(dy), p.y = static_cast<T*>(dx);
    p.log = log;
    launch_rows<T>(BM_ROW_KERNELS(nnk::softmax_backward_kernel, T), p, stream, op);
  };
  dtype == DType::f32 ? run(float{}) : run(double{});
}

void launch_cross_entropy_forward(const void* x, const int64_t* t, void* loss, int64_t N,
                                  int64_t C, int64_t ignore, double smoothing, DType dtype,
                                  std::uintptr_t stream_ptr) {
  const char* op = "cross_entropy";
  check_common(op, N, C, dtype, "C");
  BM_CHECK(smoothing >= 0.0 && smoothing <= 1.0, op, ": label_smoothing must be in [0, 1], got ",
           smoothing);
  if (N * C == 0) return;
  check_ptrs(op, {{"logits", x}, {"targets", t}, {"loss", loss}});
  cudaStream_t stream = reinterpret_cast<cudaStream_t>(stream_ptr);
  auto run = [&](auto tag) {
    using T = decltype(tag);
    RowParams<T> p = row_params<T>(N, C);
    p.x = static_cast<const T*>(x), p.t = reinterpret_cast<const long long*>(t);
    p.o0 = static_cast<T*>(loss), p.ignore = ignore, p.eps = static_cast<T>(smoothing);
    launch_rows<T>(BM_ROW_KERNELS(nnk::cross_entropy_forward_kernel, T), p, stream, op);
  };
  dtype == DType::f32 ? run(float{}) : run(double{});
}

void launch_cross_entropy_backward(const void* x, const int64_t* t, const void* w, void* dx,
                                   int64_t N, int64_t C, int64_t ignore, double smoothing,
                                   DType dtype, std::uintptr_t stream_ptr) {
  const char* op = "cross_entropy_backward";
  check_common(op, N, C, dtype, "C");
  BM_CHECK(smoothing >= 0.0 && smoothing <= 1.0, op, ": label_smoothing must be in [0, 1], got ",
           smoothing);
  if (N * C == 0) return;
  check_ptrs(op, {{"logits", x}, {"targets", t}, {"grad", w}, {"dlogits", dx}});
  cudaStream_t stream = reinterpret_cast<cudaStream_t>(stream_ptr);
  auto run = [&](auto tag) {
    using T = decltype(tag);
    RowParams<T> p = row_params<T>(N, C);
    p.x = static_cast<const T*>(x), p.t = reinterpret_cast<const long long*>(t);
    p.g = static_cast<const T*>(w), p.y = static_cast<T*>(dx);
    p.ignore = ignore, p.eps = static_cast<T>(smoothing);
    launch_rows<T>(BM_ROW_KERNELS(nnk::cross_entropy_backward_kernel, T), p, stream, op);
  };
  dtype == DType::f32 ? run(float{}) : run(double{});
}

void launch_layer_norm_forward(const void* x, const void* w, const void* b, void* y, void* mean,
                               void* rstd, int64_t N, int64_t D, double eps, DType dtype,
                               std::uintptr_t stream_ptr) {
  const char* op = "layer_norm";
  check_common(op, N, D, dtype, "D");
  BM_CHECK(eps >= 0.0, op, ": eps must be >= 0, got ", eps);
  if (N * D == 0) return;
  check_ptrs(op, {{"x", x}, {"y", y}, {"mean", mean}, {"rstd", rstd}});
  if (w) check_ptrs(op, {{"weight", w}});
  if (b) check_ptrs(op, {{"bias", b}});
  cudaStream_t stream = reinterpret_cast<cudaStream_t>(stream_ptr);
  auto run = [&](auto tag) {
    using T = decltype(tag);
    RowParams<T> p = row_params<T>(N, D);
    p.x = static_cast<const T*>(x), p.w = static_cast<const T*>(w);
    p.b = static_cast<const T*>(b), p.y = static_cast<T*>(y);
    p.o0 = static_cast<T*>(mean), p.o1 = static_cast<T*>(rstd), p.eps = static_cast<T>(eps);
    launch_rows<T>(BM_ROW_KERNELS(nnk::layer_norm_forward_kernel, T), p, stream, op);
  };
  dtype == DType::f32 ? run(float{}) : run(double{});
}

int64_t layer_norm_backward_workspace(int64_t N, int64_t D) {
  BM_CHECK(N >= 0 && D >= 0, "layer_norm_backward: sizes must be >= 0, got N=", N, " D=", D);
  return nnk::part_chunks(N) * 2 * D;
}

void launch_layer_norm_backward(const void* dy, const void* x, const void* w, const void* mean,
                                const void* rstd, void* dx, void* dw, void* db, void* work,
                                int64_t work_elems, int64_t N, int64_t D, DType dtype,
                                std::uintptr_t stream_ptr) {
  const char* op = "layer_norm_backward";
  check_common(op, N, D, dtype, "D");
  const bool params = dw != nullptr || db != nullptr;
  const int64_t need = params ? layer_norm_backward_workspace(N, D) : 0;
  BM_CHECK(work_elems >= need, op, ": workspace has ", work_elems, " elements, needs ", need,
           " (N=", N, ", D=", D, ")");
  if (N * D == 0) return;
  check_ptrs(op, {{"dy", dy}, {"x", x}, {"mean", mean}, {"rstd", rstd}, {"dx", dx}});
  if (w) check_ptrs(op, {{"weight", w}});
  if (dw) check_ptrs(op, {{"dweight", dw}});
  if (db) check_ptrs(op, {{"dbias", db}});
  if (params) check_ptrs(op, {{"workspace", work}});
  cudaStream_t stream = reinterpret_cast<cudaStream_t>(stream_ptr);
  auto run = [&](auto tag) {
    using T = decltype(tag);
    RowParams<T> p = row_params<T>(N, D);
    p.x = static_cast<const T*>(x), p.g = static_cast<const T*>(dy);
    p.w = static_cast<const T*>(w), p.s0 = static_cast<const T*>(mean);
    p.s1 = static_cast<const T*>(rstd), p.y = static_cast<T*>(dx);
    launch_rows<T>(BM_ROW_KERNELS(nnk::layer_norm_backward_dx_kernel, T), p, stream, op);
    if (!params) return;
    const int64_t R = nnk::part_chunks(N), cblocks = (D + nnk::kPartCols - 1) / nnk::kPartCols;
    BM_CHECK(cblocks <= INT_MAX, op, ": D=", D, " is too large");
    RowParams<T> pp = p;
    pp.y = static_cast<T*>(work);
    const dim3 grid(static_cast<unsigned>(cblocks), static_cast<unsigned>(R));
    layer_norm_backward_partial_kernel<T><<<grid, kPartThreads, 0, stream>>>(pp);
    BM_CUDA_CHECK_LAUNCH();
    RowParams<T> ps = row_params<T>(R, D);
    ps.x = static_cast<const T*>(work), ps.dw = static_cast<T*>(dw), ps.db = static_cast<T*>(db);
    const dim3 grid2(static_cast<unsigned>((D + 255) / 256));
    layer_norm_backward_param_kernel<T><<<grid2, 256, 0, stream>>>(ps);
    BM_CUDA_CHECK_LAUNCH();
  };
  dtype == DType::f32 ? run(float{}) : run(double{});
}

}  // namespace bm::cuda
