// Host emulation of the CUDA subset used by bigmodel's GEMM kernels, for checking kernel index
// logic on a machine without a GPU (tools/cuda_emu/run.sh). Every block runs as blockDim.x
// std::threads with real barriers for __syncthreads/__syncwarp; __shared__ becomes `static`
// (blocks run one after another); vector types carry their CUDA alignment so UBSan catches
// misaligned vector accesses; WMMA fragments hold the whole tile in every lane and check the
// 32-byte pointer / ldm rules of load_matrix_sync. Says nothing about speed or bank conflicts,
// nor about inline PTX (none is used).
#pragma once
#include <barrier>
#include <cassert>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <thread>
#include <vector>
#include <cstdio>
#include <cstdlib>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static
#define __align__(n) __attribute__((aligned(n)))
#define __CUDA_ARCH__ 800

struct dim3 {
  unsigned x = 1, y = 1, z = 1;
  dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
inline thread_local dim3 threadIdx;
inline dim3 blockIdx, gridDim, blockDim;

struct alignas(16) float4 { float x, y, z, w; };
struct alignas(8) float2 { float x, y; };
struct alignas(8) uint2 { unsigned x, y; };
inline int emu_vec_loads = 0;
inline float4 make_float4(float a, float b, float c, float d) { return {a, b, c, d}; }
inline float2 make_float2(float a, float b) { return {a, b}; }

namespace emu {
inline std::barrier<>* block_bar = nullptr;
inline std::vector<std::unique_ptr<std::barrier<>>> warp_bars;
}
inline void __syncthreads() { emu::block_bar->arrive_and_wait(); }
inline void __syncwarp(unsigned = 0xffffffffu) { emu::warp_bars[threadIdx.x / 32]->arrive_and_wait(); }

// ---- errors / runtime --------------------------------------------------------------------------
typedef int cudaError_t;
constexpr cudaError_t cudaSuccess = 0, cudaErrorNoDevice = 100, cudaErrorInsufficientDriver = 35;
typedef void* cudaStream_t;
inline const char* cudaGetErrorString(cudaError_t) { return "emu error"; }
inline const char* cudaGetErrorName(cudaError_t) { return "emuError"; }
inline cudaError_t cudaGetLastError() { return cudaSuccess; }
inline cudaError_t cudaGetDeviceCount(int* n) {
#ifdef EMU_ONE_DEVICE
  *n = 1; return cudaSuccess;
#else
  *n = 0; return cudaErrorNoDevice;
#endif
}
struct cudaDeviceProp { char name[256]; };
inline cudaError_t cudaGetDeviceProperties(cudaDeviceProp* p, int) { strcpy(p->name, "emu"); return 0; }
enum cudaMemoryType { cudaMemoryTypeUnregistered = 0, cudaMemoryTypeHost, cudaMemoryTypeDevice, cudaMemoryTypeManaged };
struct cudaPointerAttributes { cudaMemoryType type; int device; void* devicePointer; void* hostPointer; };
inline cudaError_t cudaGetDevice(int* d) { *d = 0; return cudaSuccess; }
inline cudaError_t cudaPointerGetAttributes(cudaPointerAttributes* a, const void* p) {
  a->type = cudaMemoryTypeDevice; a->device = 0; a->devicePointer = const_cast<void*>(p); return 0;
}

namespace emu {
template <class Kernel, class Params>
void launch(Kernel kernel, dim3 grid, unsigned threads, const Params& p) {
  gridDim = grid;
  blockDim = dim3(threads);
  assert(grid.y <= 65535 && grid.z <= 65535);
  for (unsigned z = 0; z < grid.z; ++z)
    for (unsigned y = 0; y < grid.y; ++y)
      for (unsigned x = 0; x < grid.x; ++x) {
        blockIdx = dim3(x, y, z);
        std::barrier<> bar(threads);
        block_bar = &bar;
        warp_bars.clear();
        for (unsigned w = 0; w < threads / 32; ++w) warp_bars.emplace_back(new std::barrier<>(32));
        std::vector<std::thread> ts;
        for (unsigned t = 0; t < threads; ++t)
          ts.emplace_back([&, t] { threadIdx = dim3(t); kernel(p); });
        for (auto& t : ts) t.join();
      }
}
}  // namespace emu

// ---- fp16 / bf16 -------------------------------------------------------------------------------
struct __half { _Float16 v; };
struct __half2 { __half x, y; };
inline float __half2float(__half h) { return static_cast<float>(h.v); }
inline __half __float2half_rn(float f) { return {static_cast<_Float16>(f)}; }
inline float2 __half22float2(__half2 h) { return {__half2float(h.x), __half2float(h.y)}; }
struct __nv_bfloat16 { uint16_t b; };
inline __nv_bfloat16 __float2bfloat16_rn(float f) {
  uint32_t u; memcpy(&u, &f, 4);
  u += 0x7fffu + ((u >> 16) & 1u);
  return {static_cast<uint16_t>(u >> 16)};
}
inline float emu_to_float(float x) { return x; }
inline float emu_to_float(__half x) { return __half2float(x); }
inline float emu_to_float(__nv_bfloat16 x) { uint32_t u = uint32_t(x.b) << 16; float f; memcpy(&f, &u, 4); return f; }

// ---- wmma --------------------------------------------------------------------------------------
namespace nvcuda { namespace wmma {
struct matrix_a {}; struct matrix_b {}; struct accumulator {}; struct row_major {}; struct col_major {};
namespace precision { struct tf32 {}; }
enum layout_t { mem_row_major, mem_col_major };
template <class Use, int M, int N, int K, class T, class Layout = void>
struct fragment { float v[256]; };
inline float __float_to_tf32(float x) {
  uint32_t u; memcpy(&u, &x, 4); u = (u + 0x1000u) & 0xffffe000u; memcpy(&x, &u, 4); return x;
}
template <class Frag> constexpr int frag_elem_bytes() { return 2; }
template <int M, int N, int K, class T, class P>
void load_matrix_sync(fragment<matrix_a, M, N, K, T, row_major>& f, const P* p, unsigned ldm) {
  if (reinterpret_cast<uintptr_t>(p) % 32) { fprintf(stderr, "wmma A ptr misaligned\n"); abort(); }
  if (ldm % (16 / sizeof(P))) { fprintf(stderr, "wmma A ldm bad\n"); abort(); }
  for (int i = 0; i < M; ++i) for (int k = 0; k < K; ++k) f.v[i * K + k] = emu_to_float(p[i * ldm + k]);
}
template <int M, int N, int K, class T, class P>
void load_matrix_sync(fragment<matrix_b, M, N, K, T, row_major>& f, const P* p, unsigned ldm) {
  if (reinterpret_cast<uintptr_t>(p) % 32) { fprintf(stderr, "wmma B ptr misaligned\n"); abort(); }
  if (ldm % (16 / sizeof(P))) { fprintf(stderr, "wmma B ldm bad\n"); abort(); }
  for (int k = 0; k < K; ++k) for (int j = 0; j < N; ++j) f.v[k * N + j] = emu_to_float(p[k * ldm + j]);
}
template <int M, int N, int K, class T>
void fill_fragment(fragment<accumulator, M, N, K, T>& f, float x) { for (auto& e : f.v) e = x; }
template <int M, int N, int K, class T, class TA, class TB>
void mma_sync(fragment<accumulator, M, N, K, T>& d, const fragment<matrix_a, M, N, K, TA, row_major>& a,
              const fragment<matrix_b, M, N, K, TB, row_major>& b, const fragment<accumulator, M, N, K, T>& c) {
  float r[256];
  for (int i = 0; i < M; ++i) for (int j = 0; j < N; ++j) {
    float s = c.v[i * N + j];
    for (int k = 0; k < K; ++k) s = std::fma(a.v[i * K + k], b.v[k * N + j], s);
    r[i * N + j] = s;
  }
  memcpy(d.v, r, sizeof(r));
}
template <int M, int N, int K, class T>
void store_matrix_sync(float* p, const fragment<accumulator, M, N, K, T>& f, unsigned ldm, layout_t) {
  if (reinterpret_cast<uintptr_t>(p) % 32) { fprintf(stderr, "wmma C ptr misaligned\n"); abort(); }
  // Only lane 0 writes (all lanes hold the same tile in this emulation; avoids a data race).
  if (threadIdx.x % 32) return;
  for (int i = 0; i < M; ++i) for (int j = 0; j < N; ++j) p[i * ldm + j] = f.v[i * N + j];
}
}}  // namespace nvcuda::wmma
