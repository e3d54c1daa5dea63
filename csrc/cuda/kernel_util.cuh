// Small pieces shared by the attention and row-wise (nn) kernels: warp reductions, the exp and
// log used in softmaxes, 4-element shared-memory accesses, and the host-side pointer check.
// Everything is in bm::cuda::kutil (gemm_tiles.cuh has its own load4 in bm::cuda).
#pragma once
#include <cuda_runtime.h>

#include <cmath>
#include <type_traits>

#include "common/check.h"
#include "cuda/cuda_check.cuh"

namespace bm::cuda::kutil {

constexpr unsigned kFullMask = 0xffffffffu;

__device__ __forceinline__ int imin(int a, int b) { return a < b ? a : b; }

template <class T>
__device__ __forceinline__ T neg_inf() {
  return static_cast<T>(-INFINITY);
}

// Fast exp for float (ex2.approx: a few ulp, far inside the 1e-4 tolerance of the fp32
// attention tests), the accurate one for double.
__device__ __forceinline__ float fexp(float x) { return __expf(x); }
__device__ __forceinline__ double fexp(double x) { return exp(x); }
// Accurate exp (a few more instructions): for the memory-bound row kernels, where it is free.
__device__ __forceinline__ float aexp(float x) { return expf(x); }
__device__ __forceinline__ double aexp(double x) { return exp(x); }
__device__ __forceinline__ float flog(float x) { return logf(x); }
__device__ __forceinline__ double flog(double x) { return log(x); }
__device__ __forceinline__ float fsqrt(float x) { return sqrtf(x); }
__device__ __forceinline__ double fsqrt(double x) { return sqrt(x); }

// Sum / max over the `width` lanes of an aligned lane group (width a power of two <= 32); every
// lane of the warp must call it (full mask) and every lane of the group gets the result.
template <int width = 32, class T>
__device__ __forceinline__ T group_sum(T v) {
#pragma unroll
  for (int o = width / 2; o > 0; o /= 2) v += __shfl_xor_sync(kFullMask, v, o);
  return v;
}
template <int width = 32, class T>
__device__ __forceinline__ T group_max(T v) {
#pragma unroll
  for (int o = width / 2; o > 0; o /= 2) v = fmax(v, __shfl_xor_sync(kFullMask, v, o));
  return v;
}

// 4 consecutive elements at p (16-byte aligned for float): one LDS.128 / STS.128 for float.
template <class T>
__device__ __forceinline__ void ld4(const T* p, T (&r)[4]) {
  if constexpr (std::is_same_v<T, float>) {
    const float4 v = *reinterpret_cast<const float4*>(p);
    r[0] = v.x, r[1] = v.y, r[2] = v.z, r[3] = v.w;
  } else {
#pragma unroll
    for (int e = 0; e < 4; ++e) r[e] = p[e];
  }
}
template <class T>
__device__ __forceinline__ void st4(T* p, const T (&r)[4]) {
  if constexpr (std::is_same_v<T, float>) {
    *reinterpret_cast<float4*>(p) = make_float4(r[0], r[1], r[2], r[3]);
  } else {
#pragma unroll
    for (int e = 0; e < 4; ++e) p[e] = r[e];
  }
}

// ---- host side ---------------------------------------------------------------------------------

// ptr must be memory of the current device (or managed / mapped host memory): a host pointer
// would fault inside the kernel and poison the CUDA context for the whole process.
inline void check_device_ptr(const char* op, const char* name, const void* ptr) {
  BM_CHECK(ptr != nullptr, op, ": ", name, " is a null pointer");
  int device = 0;
  BM_CUDA_CHECK(cudaGetDevice(&device));
  cudaPointerAttributes attr{};
  BM_CUDA_CHECK(cudaPointerGetAttributes(&attr, ptr));
  BM_CHECK(attr.type != cudaMemoryTypeUnregistered && attr.devicePointer != nullptr, op, ": ",
           name, " (", ptr, ") is not memory the GPU can access");
  BM_CHECK(attr.type != cudaMemoryTypeDevice || attr.device == device, op, ": ", name,
           " is on device ", attr.device, " but the current device is ", device);
}

}  // namespace bm::cuda::kutil
