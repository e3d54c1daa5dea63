// Pieces shared by the GEMM kernels (gemm.cu, gemm_wmma.cu): kernel parameters, the global ->
// register -> shared-memory tile loader, the block raster and the host-side grid splitting.
//
// Operands are seen by the loader as an X x K tile (X = M rows of A, or N columns of B) with
// element (x, k) at base[x*sx + k*sk]. Each thread moves chunks of 4 elements that lie along one
// direction: along k when k has the smaller stride (row-major A, column-major B = transposed),
// along x otherwise. A chunk is one 16-byte (fp32) / 8-byte (fp16) vector load when the operand is
// contiguous in that direction and aligned (`vec`), else 4 bounds-checked scalar loads with the
// real strides (any M, N, K, any strides, negative ones included).
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "cuda/cuda_check.cuh"
#include "cuda/gemm.h"

namespace bm::cuda {

// ---- kernel parameters -------------------------------------------------------------------------

// One launch's view of the problem (a chunk of the batch and of M, see for_each_launch).
struct GemmParams {
  const void* A;
  const void* B;
  void* C;
  int M, N, K;
  long long bs_a, rs_a, cs_a, bs_b, rs_b, cs_b, bs_c, rs_c, cs_c;
  float alpha, beta;
  double alpha_d, beta_d;
  bool a_along_k, b_along_k;  // direction of each thread's 4-element chunks
  bool a_vec, b_vec, c_vec;   // chunks may use vector loads / stores
};

// ---- element conversions -----------------------------------------------------------------------

__device__ __forceinline__ float to_float(float x) { return x; }
__device__ __forceinline__ float to_float(__half x) { return __half2float(x); }
__device__ __forceinline__ void from_float(float x, float* dst) { *dst = x; }
__device__ __forceinline__ void from_float(float x, __half* dst) { *dst = __float2half_rn(x); }

// 4 consecutive elements as floats; p is aligned to 4 elements.
__device__ __forceinline__ float4 load4(const float* p) { return *reinterpret_cast<const float4*>(p); }
__device__ __forceinline__ float4 load4(const __half* p) {
  const uint2 u = *reinterpret_cast<const uint2*>(p);
  __half2 h0, h1;
  memcpy(&h0, &u.x, 4);
  memcpy(&h1, &u.y, 4);
  const float2 f0 = __half22float2(h0), f1 = __half22float2(h1);
  return make_float4(f0.x, f0.y, f1.x, f1.y);
}

// How a float becomes a shared-memory element: Cvt::T is the stored type, Cvt::cvt rounds.
struct CvtF32 {
  using T = float;
  static __device__ __forceinline__ T cvt(float x) { return x; }
};
struct CvtF16 {
  using T = __half;
  static __device__ __forceinline__ T cvt(float x) { return __float2half_rn(x); }
};
struct CvtBF16 {
  using T = __nv_bfloat16;
  static __device__ __forceinline__ T cvt(float x) { return __float2bfloat16_rn(x); }
};

// Stores 4 converted values at dst (aligned to 4 elements).
template <class Cvt>
__device__ __forceinline__ void store4(typename Cvt::T* dst, float4 v) {
  using T = typename Cvt::T;
  if constexpr (sizeof(T) == 4) {
    *reinterpret_cast<float4*>(dst) = make_float4(Cvt::cvt(v.x), Cvt::cvt(v.y), Cvt::cvt(v.z), Cvt::cvt(v.w));
  } else {
    const T h[4] = {Cvt::cvt(v.x), Cvt::cvt(v.y), Cvt::cvt(v.z), Cvt::cvt(v.w)};
    uint2 u;
    memcpy(&u, h, 8);
    *reinterpret_cast<uint2*>(dst) = u;
  }
}

__device__ __forceinline__ float get(const float4& v, int j) {
  return j == 0 ? v.x : j == 1 ? v.y : j == 2 ? v.z : v.w;
}

// ---- tile loader -------------------------------------------------------------------------------

// Moves a BX x BK tile from global memory to registers (load), then to shared memory (store_kx:
// S[k][x] with x contiguous; store_xk: S[x][k] with k contiguous), converting on the way.
// kThreads threads each own kChunks chunks. Out-of-range elements are stored as 0, so the K tail
// and the M/N edges need no special case in the math.
//
// kTransposedStore says which store the caller uses, to pick a lane layout for the case where the
// store transposes (chunk direction != contiguous shared direction): -1 = keep the coalescing
// layout always (SIMT: its transposing stores are at most 2-way conflicted), 0 = store_kx,
// 1 = store_xk. See coords().
template <typename Tin, int BX, int BK, int kThreads, int kTransposedStore = -1>
struct TileLoader {
  static constexpr int kChunks = BX * BK / (4 * kThreads);
  static_assert(BX * BK % (4 * kThreads) == 0, "tile must split into 4-element chunks evenly");
  static_assert(BX % 4 == 0 && BK % 4 == 0, "tile sides must be multiples of 4");
  static_assert(kTransposedStore < 0 || (BK % 8 == 0 && BX % 8 == 0), "transposed layout: sides % 8");

  // Per-chunk pointers are recomputed from one base each tile (two integer multiply-adds) rather
  // than kept: registers are the SIMT kernel's limit (64 accumulators + staging).
  const Tin* base;          // element (x0, k0) of the current tile
  long long sx, sk;         // element strides along x and k
  int x_left, k_left;       // elements of x from the tile origin, of k from the current k0
  bool along_k, vec;

  // base points at element (x0, 0) of this block's tile; X_left = X - x0 > 0.
  __device__ __forceinline__ TileLoader(const Tin* base_, long long sx_, long long sk_, int X_left,
                                        int K, bool along_k_, bool vec_)
      : base(base_), sx(sx_), sk(sk_), x_left(X_left), k_left(K), along_k(along_k_), vec(vec_) {}

  // Chunk i of this thread covers x = xi (+0..3 if along x), k = ki (+0..3 if along k). Along k,
  // BK/4 neighbouring threads read one BK-element segment; along x, BX/4 threads read BX
  // consecutive elements: both coalesced when that direction has unit stride.
  //
  // When the store transposes, a warp whose 32 chunks lie side by side in the chunk direction
  // would write 4 x 32 shared elements one padded row apart (16-way bank conflicts for fp16 A
  // tiles). Instead 8 lanes step along the other direction and 4 along the chunk direction: global
  // reads become 8 segments of 4 chunks (whole 32-byte sectors), shared stores at most 2-way.
  __device__ __forceinline__ void coords(int i, int& xi, int& ki) const {
    const int c = static_cast<int>(threadIdx.x) + i * kThreads;
    if (kTransposedStore >= 0 && along_k == (kTransposedStore == 0)) {
      const int nd = (along_k ? BK : BX) / 4;            // chunks along the chunk direction
      const int o = (c / (8 * nd)) * 8 + c % 8;          // position in the other direction
      const int d = ((c / 8) % nd) * 4;                  // position in the chunk direction
      xi = along_k ? o : d;
      ki = along_k ? d : o;
    } else if (along_k) {
      xi = c / (BK / 4);
      ki = (c % (BK / 4)) * 4;
    } else {
      xi = (c % (BX / 4)) * 4;
      ki = c / (BX / 4);
    }
  }

  __device__ __forceinline__ void load(float4 (&r)[kChunks]) const {
#pragma unroll
    for (int i = 0; i < kChunks; ++i) {
      int xi, ki;
      coords(i, xi, ki);
      const int dx = along_k ? 0 : 1, dk = along_k ? 1 : 0;
      const Tin* ptr = base + xi * sx + ki * sk;
      const long long sj = along_k ? sk : sx;
      // The last element in range means all 4 are (they only grow in x or in k).
      if (vec && xi + 3 * dx < x_left && ki + 3 * dk < k_left) {
        r[i] = load4(ptr);
      } else {
        float v[4];
#pragma unroll
        for (int j = 0; j < 4; ++j)
          v[j] = (xi + j * dx < x_left && ki + j * dk < k_left) ? to_float(ptr[j * sj]) : 0.f;
        r[i] = make_float4(v[0], v[1], v[2], v[3]);
      }
    }
  }

  __device__ __forceinline__ void advance() {
    base += BK * sk;
    k_left -= BK;
  }

  // S[k][x], row length LD (elements); chunks along x become one vector store.
  template <class Cvt, int LD>
  __device__ __forceinline__ void store_kx(typename Cvt::T* s, const float4 (&r)[kChunks]) const {
#pragma unroll
    for (int i = 0; i < kChunks; ++i) {
      int xi, ki;
      coords(i, xi, ki);
      if (along_k) {
#pragma unroll
        for (int j = 0; j < 4; ++j) s[(ki + j) * LD + xi] = Cvt::cvt(get(r[i], j));
      } else {
        store4<Cvt>(s + ki * LD + xi, r[i]);
      }
    }
  }

  // S[x][k], row length LD (elements); chunks along k become one vector store.
  template <class Cvt, int LD>
  __device__ __forceinline__ void store_xk(typename Cvt::T* s, const float4 (&r)[kChunks]) const {
#pragma unroll
    for (int i = 0; i < kChunks; ++i) {
      int xi, ki;
      coords(i, xi, ki);
      if (along_k) {
        store4<Cvt>(s + xi * LD + ki, r[i]);
      } else {
#pragma unroll
        for (int j = 0; j < 4; ++j) s[(xi + j) * LD + ki] = Cvt::cvt(get(r[i], j));
      }
    }
  }
};

// ---- block raster ------------------------------------------------------------------------------

// Tile (tm, tn) of this block. Blocks are walked in groups of 8 tile rows, column by column
// (Triton's "grouped ordering"), so blocks resident at the same time share A and B tiles in L2.
__device__ __forceinline__ void block_tile(int& tm, int& tn) {
  constexpr long long kGroup = 8;
  const long long grid_m = gridDim.y, grid_n = gridDim.x;
  const long long pid = static_cast<long long>(blockIdx.y) * grid_n + blockIdx.x;
  const long long per_group = kGroup * grid_n;
  const long long first_m = (pid / per_group) * kGroup;
  const long long group_m = grid_m - first_m < kGroup ? grid_m - first_m : kGroup;
  tm = static_cast<int>(first_m + (pid % per_group) % group_m);
  tn = static_cast<int>((pid % per_group) / group_m);
}

// ---- host side ---------------------------------------------------------------------------------

inline size_t dtype_size(DType t) { return t == DType::f16 ? 2 : t == DType::f32 ? 4 : 8; }

// Chunks go along the smaller stride (unit stride = coalesced and vectorizable); ties along k.
inline bool chunk_along_k(int64_t sx, int64_t sk) {
  if (sk == 1) return true;
  if (sx == 1) return false;
  return std::llabs(sk) <= std::llabs(sx);
}

// Vector access of 4 elements is safe when the chunk direction has unit stride and every chunk
// start (tile origins and chunk offsets are multiples of 4) is 4-element aligned.
inline bool vec_ok(const void* base, size_t elem, int64_t s_chunk, int64_t s_other, int64_t bs) {
  return s_chunk == 1 && s_other % 4 == 0 && bs % 4 == 0 &&
         reinterpret_cast<std::uintptr_t>(base) % (4 * elem) == 0;
}

inline const void* offset(const void* p, int64_t elems, size_t elem) {
  return static_cast<const char*>(p) + elems * static_cast<int64_t>(elem);
}

// Splits the problem into launches whose grid fits (y <= 65535 tiles of M, z <= 65535 batch
// entries) and calls launch(params, grid) for each; pointers are offset on the host.
template <class Launch>
void for_each_launch(const GemmProblem& p, int BM, int BN, Launch&& launch) {
  constexpr int64_t kMaxGrid = 65535;
  const size_t ei = dtype_size(p.in_dtype), eo = dtype_size(p.out_dtype);
  const int64_t m_chunk = kMaxGrid * BM;
  for (int64_t z0 = 0; z0 < p.batch; z0 += kMaxGrid) {
    const int64_t nz = std::min(kMaxGrid, p.batch - z0);
    for (int64_t m0 = 0; m0 < p.M; m0 += m_chunk) {
      const int64_t mc = std::min(m_chunk, p.M - m0);
      GemmParams k{};
      k.A = offset(p.A, z0 * p.bs_a + m0 * p.rs_a, ei);
      k.B = offset(p.B, z0 * p.bs_b, ei);
      k.C = const_cast<void*>(offset(p.C, z0 * p.bs_c + m0 * p.rs_c, eo));
      k.M = static_cast<int>(mc);
      k.N = static_cast<int>(p.N);
      k.K = static_cast<int>(p.K);
      k.bs_a = p.bs_a, k.rs_a = p.rs_a, k.cs_a = p.cs_a;
      k.bs_b = p.bs_b, k.rs_b = p.rs_b, k.cs_b = p.cs_b;
      k.bs_c = p.bs_c, k.rs_c = p.rs_c, k.cs_c = p.cs_c;
      k.alpha = static_cast<float>(p.alpha), k.beta = static_cast<float>(p.beta);
      k.alpha_d = p.alpha, k.beta_d = p.beta;
      // A is X=M by K (sx = rs_a, sk = cs_a); B is X=N by K (sx = cs_b, sk = rs_b).
      k.a_along_k = chunk_along_k(p.rs_a, p.cs_a);
      k.b_along_k = chunk_along_k(p.cs_b, p.rs_b);
      k.a_vec = k.a_along_k ? vec_ok(k.A, ei, p.cs_a, p.rs_a, p.bs_a) : vec_ok(k.A, ei, p.rs_a, p.cs_a, p.bs_a);
      k.b_vec = k.b_along_k ? vec_ok(k.B, ei, p.rs_b, p.cs_b, p.bs_b) : vec_ok(k.B, ei, p.cs_b, p.rs_b, p.bs_b);
      k.c_vec = vec_ok(k.C, eo, p.cs_c, p.rs_c, p.bs_c);
      const dim3 grid(static_cast<unsigned>((p.N + BN - 1) / BN),
                      static_cast<unsigned>((mc + BM - 1) / BM), static_cast<unsigned>(nz));
      launch(k, grid);
    }
  }
}

}  // namespace bm::cuda
