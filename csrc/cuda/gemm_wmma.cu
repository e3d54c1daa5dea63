// Tensor-core GEMM (WMMA, sm_80+): C = alpha * A·B + beta * C with fp32 accumulation.
//
// Layouts: see gemm.h (pointer + element strides per operand, batch stride 0 = broadcast).
// Variants of gemm_forward_wmma_kernel<Tin, Mma, Tout>:
//   Tin  float  -> inputs rounded to tf32 (cvt.rna), bf16 or fp16 (round to nearest even) as
//                  they are staged into shared memory; Tin __half -> fp16 products as given.
//   Tout float or __half (fp16 inputs keep the dtype the caller asked for).
// Tiling: 128x128 block tile, 8 warps as 2 (M) x 4 (N), each warp 64x32 = 4x2 fragments of
// 16x16; BK = 32 for 16-bit products (16x16x16 mma), 16 for tf32 (16x16x8), i.e. 64 bytes of K
// per shared row either way. Global -> registers (convert) -> shared memory, two shared buffers:
// the next tile's loads are in flight while the current one is multiplied (cp.async cannot
// convert fp32 to bf16 on the way, so the register path serves every variant).
// Column-major operands (trans_a / trans_b views), whose 4-element chunks run across the shared
// rows, use the loader's bank-friendly lane layout (TileLoader::coords).
// Shared rows are padded by 16 bytes: ldmatrix's 8 row addresses then fall in distinct banks, and
// every fragment pointer stays 32-byte aligned as load_matrix_sync requires.
// Epilogue: each warp stores one 16x16 accumulator at a time into shared scratch and writes it
// out with alpha/beta, bounds checks and the real C strides.
#include <cuda_runtime.h>
#include <mma.h>

#include "cuda/cuda_check.cuh"
#include "cuda/gemm.h"
#include "cuda/gemm_tiles.cuh"

namespace bm::cuda {

namespace wmma = nvcuda::wmma;

// Product precisions: shared-memory element (via Cvt), fragment element type, K of one mma.
struct MmaF16 : CvtF16 {
  using Frag = __half;
  static constexpr int BK = 32, FK = 16;
};
struct MmaBF16 : CvtBF16 {
  using Frag = __nv_bfloat16;
  static constexpr int BK = 32, FK = 16;
};
struct MmaTF32 {
  using T = float;
  using Frag = wmma::precision::tf32;
  static constexpr int BK = 16, FK = 8;
  static __device__ __forceinline__ T cvt(float x) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    return wmma::__float_to_tf32(x);
#else
    return x;
#endif
  }
};

constexpr int kWmmaBM = 128, kWmmaBN = 128, kWmmaThreads = 256;

template <class Mma>
struct WmmaSmem {
  using T = typename Mma::T;
  static constexpr int kPad = 16 / sizeof(T);
  static constexpr int kLdA = Mma::BK + kPad;     // As[m][k]
  static constexpr int kLdB = kWmmaBN + kPad;     // Bs[k][n]
  static constexpr int kStageA = kWmmaBM * kLdA;  // elements
  static constexpr int kStageB = Mma::BK * kLdB;
  static constexpr int kBytes = 2 * (kStageA + kStageB) * static_cast<int>(sizeof(T));
  static constexpr int kScratchBytes = kWmmaThreads / 32 * 16 * 16 * 4;
  static constexpr int kTotal = kBytes > kScratchBytes ? kBytes : kScratchBytes;
  static_assert(kStageA * sizeof(T) % 32 == 0 && kStageB * sizeof(T) % 32 == 0,
                "stages must keep fragment pointers 32-byte aligned");
  static_assert(kTotal <= 48 * 1024, "static shared memory limit");
};

// C (M, N) tile of 128x128 per block, blockIdx.z = batch entry.
template <typename Tin, class Mma, typename Tout>
__global__ void __launch_bounds__(kWmmaThreads) gemm_forward_wmma_kernel(GemmParams p) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  using T = typename Mma::T;
  using L = WmmaSmem<Mma>;
  constexpr int BK = Mma::BK, FK = Mma::FK;
  using LoaderA = TileLoader<Tin, kWmmaBM, BK, kWmmaThreads, 1>;  // stored As[m][k]
  using LoaderB = TileLoader<Tin, kWmmaBN, BK, kWmmaThreads, 0>;  // stored Bs[k][n]
  __shared__ __align__(128) unsigned char smem[L::kTotal];
  T* As = reinterpret_cast<T*>(smem);
  T* Bs = As + 2 * L::kStageA;

  int tm, tn;
  block_tile(tm, tn);
  const int m0 = tm * kWmmaBM, n0 = tn * kWmmaBN;
  const long long z = blockIdx.z;
  const Tin* A = static_cast<const Tin*>(p.A) + z * p.bs_a + m0 * p.rs_a;
  const Tin* B = static_cast<const Tin*>(p.B) + z * p.bs_b + n0 * p.cs_b;
  LoaderA la(A, p.rs_a, p.cs_a, p.M - m0, p.K, p.a_along_k, p.a_vec);
  LoaderB lb(B, p.cs_b, p.rs_b, p.N - n0, p.K, p.b_along_k, p.b_vec);

  float4 ra[LoaderA::kChunks], rb[LoaderB::kChunks];
  la.load(ra);
  lb.load(rb);
  la.template store_xk<Mma, L::kLdA>(As, ra);
  lb.template store_kx<Mma, L::kLdB>(Bs, rb);
  __syncthreads();

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int wm = (warp / 4) * 64, wn = (warp % 4) * 32;
  wmma::fragment<wmma::accumulator, 16, 16, FK, float> acc[4][2];
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 2; ++j) wmma::fill_fragment(acc[i][j], 0.f);

  const int ktiles = (p.K + BK - 1) / BK;
  for (int t = 0; t < ktiles; ++t) {
    const int cur = t & 1;
    const bool more = t + 1 < ktiles;
    if (more) {  // next tile's global loads overlap this tile's mma
      la.advance();
      lb.advance();
      la.load(ra);
      lb.load(rb);
    }
    const T* as = As + cur * L::kStageA;
    const T* bs = Bs + cur * L::kStageB;
#pragma unroll
    for (int kk = 0; kk < BK; kk += FK) {
      wmma::fragment<wmma::matrix_b, 16, 16, FK, typename Mma::Frag, wmma::row_major> fb[2];
#pragma unroll
      for (int j = 0; j < 2; ++j) wmma::load_matrix_sync(fb[j], bs + kk * L::kLdB + wn + j * 16, L::kLdB);
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        wmma::fragment<wmma::matrix_a, 16, 16, FK, typename Mma::Frag, wmma::row_major> fa;
        wmma::load_matrix_sync(fa, as + (wm + i * 16) * L::kLdA + kk, L::kLdA);
#pragma unroll
        for (int j = 0; j < 2; ++j) wmma::mma_sync(acc[i][j], fa, fb[j], acc[i][j]);
      }
    }
    if (more) {  // the other buffer was last read before the previous barrier
      la.template store_xk<Mma, L::kLdA>(As + (cur ^ 1) * L::kStageA, ra);
      lb.template store_kx<Mma, L::kLdB>(Bs + (cur ^ 1) * L::kStageB, rb);
    }
    __syncthreads();
  }
  __syncthreads();  // (K == 0 runs no iteration) every warp is done with the tiles: reuse smem

  // Epilogue through a per-warp 16x16 float scratch: lane writes row lane/2, 8 columns.
  float* scratch = reinterpret_cast<float*>(smem) + warp * 256;
  Tout* C = static_cast<Tout*>(p.C) + z * p.bs_c;
  const bool read_c = p.beta != 0.f;
  const int r = lane / 2, c0 = (lane % 2) * 8;
#pragma unroll
  for (int i = 0; i < 4; ++i) {
#pragma unroll
    for (int j = 0; j < 2; ++j) {
      wmma::store_matrix_sync(scratch, acc[i][j], 16, wmma::mem_row_major);
      __syncwarp();
      const int m = m0 + wm + i * 16 + r, n = n0 + wn + j * 16 + c0;
      if (m < p.M) {
        Tout* crow = C + m * p.rs_c;
        const float* s = scratch + r * 16 + c0;
        bool done = false;
        if constexpr (sizeof(Tout) == 4) {
          if (p.c_vec && n + 7 < p.N) {  // two aligned float4 stores
#pragma unroll
            for (int h = 0; h < 2; ++h) {
              float4* dst = reinterpret_cast<float4*>(crow + n + 4 * h);
              float4 v = make_float4(p.alpha * s[4 * h], p.alpha * s[4 * h + 1],
                                     p.alpha * s[4 * h + 2], p.alpha * s[4 * h + 3]);
              if (read_c) {
                const float4 c = *dst;
                v.x += p.beta * c.x, v.y += p.beta * c.y, v.z += p.beta * c.z, v.w += p.beta * c.w;
              }
              *dst = v;
            }
            done = true;
          }
        }
        if (!done) {
#pragma unroll
          for (int c = 0; c < 8; ++c) {
            if (n + c >= p.N) break;
            Tout* dst = crow + (n + c) * p.cs_c;
            float v = p.alpha * s[c];
            if (read_c) v += p.beta * to_float(*dst);
            from_float(v, dst);
          }
        }
      }
      __syncwarp();  // scratch is overwritten by the next fragment
    }
  }
#endif  // __CUDA_ARCH__ >= 800 (the module's archs are sm_80 and newer)
}

// ---- launcher ----------------------------------------------------------------------------------

template <typename Tin, class Mma, typename Tout>
void launch_wmma(const GemmProblem& p, cudaStream_t stream) {
  for_each_launch(p, kWmmaBM, kWmmaBN, [&](const GemmParams& k, dim3 grid) {
    gemm_forward_wmma_kernel<Tin, Mma, Tout><<<grid, kWmmaThreads, 0, stream>>>(k);
    BM_CUDA_CHECK_LAUNCH();
  });
}

// Arguments were checked by launch_gemm_forward.
void launch_gemm_forward_wmma(const GemmProblem& p, std::uintptr_t stream_ptr) {
  cudaStream_t stream = reinterpret_cast<cudaStream_t>(stream_ptr);
  if (p.in_dtype == DType::f32) {
    switch (p.precision) {
      case Precision::tf32: return launch_wmma<float, MmaTF32, float>(p, stream);
      case Precision::bf16: return launch_wmma<float, MmaBF16, float>(p, stream);
      case Precision::fp16: return launch_wmma<float, MmaF16, float>(p, stream);
      default: break;
    }
  } else if (p.in_dtype == DType::f16) {
    if (p.out_dtype == DType::f16) return launch_wmma<__half, MmaF16, __half>(p, stream);
    if (p.out_dtype == DType::f32) return launch_wmma<__half, MmaF16, float>(p, stream);
  }
  BM_CHECK(false, "gemm: no tensor-core kernel for this dtype / precision combination");
}

}  // namespace bm::cuda
