// GEMM kernels on CUDA cores and the GEMM entry point: C = alpha * A·B + beta * C.
//
// Layouts: see gemm.h (pointer + element strides per operand, batch stride 0 = broadcast).
// Variants in this file:
//   gemm_forward_simt_kernel  fp32. 128x128 block tile, BK = 16, 256 threads, 8x8 outputs per
//                             thread. 8 warps as 4 (M) x 2 (N), each warp 32x64, its lanes as
//                             4 x 8 owning two 4x4 sub-blocks 16 rows / 32 columns apart, so every
//                             shared-memory read is a conflict-free float4 (the CUTLASS SIMT
//                             layout). Tiles are staged global -> registers -> shared memory with
//                             two shared buffers: the next tile's global loads are in flight
//                             while the current one is multiplied; one __syncthreads per k-step.
//   gemm_forward_f64_kernel   fp64. 64x64 tile, BK = 16, 256 threads with 4x4 outputs each,
//                             single-buffered: simple and correct, fp64 is not the hot path.
// Tensor-core variants (tf32 / bf16 / fp16) are in gemm_wmma.cu.
#include <cuda_runtime.h>

#include <cmath>
#include <limits>

#include "cuda/cuda_check.cuh"
#include "cuda/gemm.h"
#include "cuda/gemm_tiles.cuh"

namespace bm::cuda {

// ---- fp32 SIMT kernel --------------------------------------------------------------------------

constexpr int kSimtBM = 128, kSimtBN = 128, kSimtBK = 16, kSimtThreads = 256;
// +4 floats per shared row: rows stay 16-byte aligned for float4 reads, and the transposing
// stores of k-chunks (4 threads per x, 8 x per warp) hit at most 2 threads per bank.
constexpr int kSimtLd = kSimtBM + 4;

// C (M, N) tile of 128x128 per block, blockIdx.z = batch entry.
__global__ void __launch_bounds__(kSimtThreads, 2) gemm_forward_simt_kernel(GemmParams p) {
  __shared__ __align__(16) float As[2][kSimtBK][kSimtLd];  // A tile transposed: [k][m]
  __shared__ __align__(16) float Bs[2][kSimtBK][kSimtLd];  // B tile: [k][n]
  using Loader = TileLoader<float, kSimtBM, kSimtBK, kSimtThreads>;

  int tm, tn;
  block_tile(tm, tn);
  const int m0 = tm * kSimtBM, n0 = tn * kSimtBN;
  const long long z = blockIdx.z;
  const float* A = static_cast<const float*>(p.A) + z * p.bs_a + m0 * p.rs_a;
  const float* B = static_cast<const float*>(p.B) + z * p.bs_b + n0 * p.cs_b;
  Loader la(A, p.rs_a, p.cs_a, p.M - m0, p.K, p.a_along_k, p.a_vec);
  Loader lb(B, p.cs_b, p.rs_b, p.N - n0, p.K, p.b_along_k, p.b_vec);

  float4 ra[Loader::kChunks], rb[Loader::kChunks];
  la.load(ra);
  lb.load(rb);
  la.store_kx<CvtF32, kSimtLd>(&As[0][0][0], ra);
  lb.store_kx<CvtF32, kSimtLd>(&Bs[0][0][0], rb);
  __syncthreads();

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int row0 = (warp / 2) * 32 + (lane / 8) * 4;  // rows row0..+3 and row0+16..+19
  const int col0 = (warp % 2) * 64 + (lane % 8) * 4;  // cols col0..+3 and col0+32..+35
  float acc[8][8] = {};

  const int ktiles = (p.K + kSimtBK - 1) / kSimtBK;
  for (int t = 0; t < ktiles; ++t) {
    const int cur = t & 1;
    const bool more = t + 1 < ktiles;
    if (more) {  // issue the next tile's global loads before the math to hide their latency
      la.advance();
      lb.advance();
      la.load(ra);
      lb.load(rb);
    }
#pragma unroll
    for (int kk = 0; kk < kSimtBK; ++kk) {
      const float4 a0 = *reinterpret_cast<const float4*>(&As[cur][kk][row0]);
      const float4 a1 = *reinterpret_cast<const float4*>(&As[cur][kk][row0 + 16]);
      const float4 b0 = *reinterpret_cast<const float4*>(&Bs[cur][kk][col0]);
      const float4 b1 = *reinterpret_cast<const float4*>(&Bs[cur][kk][col0 + 32]);
      const float a[8] = {a0.x, a0.y, a0.z, a0.w, a1.x, a1.y, a1.z, a1.w};
      const float b[8] = {b0.x, b0.y, b0.z, b0.w, b1.x, b1.y, b1.z, b1.w};
#pragma unroll
      for (int i = 0; i < 8; ++i)
#pragma unroll
        for (int j = 0; j < 8; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
    }
    if (more) {  // the other buffer was last read before the previous barrier: free to fill
      la.store_kx<CvtF32, kSimtLd>(&As[cur ^ 1][0][0], ra);
      lb.store_kx<CvtF32, kSimtLd>(&Bs[cur ^ 1][0][0], rb);
    }
    __syncthreads();
  }

  // Epilogue: C = alpha*acc + beta*C, float4 where C rows are contiguous and aligned.
  float* C = static_cast<float*>(p.C) + z * p.bs_c;
  const bool read_c = p.beta != 0.f;
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    const int m = m0 + row0 + (i < 4 ? i : 12 + i);
    if (m >= p.M) continue;
    float* crow = C + m * p.rs_c;
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int n = n0 + col0 + h * 32;
      float v[4];
#pragma unroll
      for (int j = 0; j < 4; ++j) v[j] = p.alpha * acc[i][h * 4 + j];
      if (p.c_vec && n + 3 < p.N) {
        float4* dst = reinterpret_cast<float4*>(crow + n);
        if (read_c) {
          const float4 c = *dst;
          v[0] += p.beta * c.x, v[1] += p.beta * c.y, v[2] += p.beta * c.z, v[3] += p.beta * c.w;
        }
        *dst = make_float4(v[0], v[1], v[2], v[3]);
      } else {
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          if (n + j >= p.N) break;
          float* dst = crow + (n + j) * p.cs_c;
          *dst = read_c ? v[j] + p.beta * *dst : v[j];
        }
      }
    }
  }
}

// ---- fp64 kernel -------------------------------------------------------------------------------

constexpr int kF64BM = 64, kF64BN = 64, kF64BK = 16, kF64Threads = 256;
constexpr int kF64Ld = kF64BM + 1;  // odd row length: the transposing stores spread over banks

// C (M, N) tile of 64x64 per block; thread (ty, tx) owns rows ty+16i, columns tx+16j.
__global__ void __launch_bounds__(kF64Threads) gemm_forward_f64_kernel(GemmParams p) {
  __shared__ double As[kF64BK][kF64Ld];  // [k][m]
  __shared__ double Bs[kF64BK][kF64Ld];  // [k][n]
  int tm, tn;
  block_tile(tm, tn);
  const int m0 = tm * kF64BM, n0 = tn * kF64BN;
  const long long z = blockIdx.z;
  const double* A = static_cast<const double*>(p.A) + z * p.bs_a;
  const double* B = static_cast<const double*>(p.B) + z * p.bs_b;
  const int tid = threadIdx.x, ty = tid / 16, tx = tid % 16;
  double acc[4][4] = {};

  for (int k0 = 0; k0 < p.K; k0 += kF64BK) {
#pragma unroll
    for (int i = 0; i < kF64BM * kF64BK / kF64Threads; ++i) {
      const int e = tid + i * kF64Threads;
      // Consecutive threads walk the operand's smaller stride, so loads coalesce.
      const int am = p.a_along_k ? e / kF64BK : e % kF64BM, ak = p.a_along_k ? e % kF64BK : e / kF64BM;
      const int bn = p.b_along_k ? e / kF64BK : e % kF64BN, bk = p.b_along_k ? e % kF64BK : e / kF64BN;
      const int gm = m0 + am, gka = k0 + ak, gn = n0 + bn, gkb = k0 + bk;
      As[ak][am] = (gm < p.M && gka < p.K) ? A[gm * p.rs_a + gka * p.cs_a] : 0.0;
      Bs[bk][bn] = (gn < p.N && gkb < p.K) ? B[gkb * p.rs_b + gn * p.cs_b] : 0.0;
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < kF64BK; ++kk) {
      double a[4], b[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) a[i] = As[kk][ty + 16 * i], b[i] = Bs[kk][tx + 16 * i];
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] = fma(a[i], b[j], acc[i][j]);
    }
    __syncthreads();
  }

  double* C = static_cast<double*>(p.C) + z * p.bs_c;
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int m = m0 + ty + 16 * i;
    if (m >= p.M) continue;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int n = n0 + tx + 16 * j;
      if (n >= p.N) continue;
      double* dst = C + m * p.rs_c + n * p.cs_c;
      const double v = p.alpha_d * acc[i][j];
      *dst = p.beta_d != 0.0 ? v + p.beta_d * *dst : v;
    }
  }
}

// ---- launchers ---------------------------------------------------------------------------------

namespace {

void check_problem(const GemmProblem& p) {
  constexpr int64_t kMaxDim = std::numeric_limits<int>::max();
  BM_CHECK(p.batch >= 0 && p.M >= 0 && p.N >= 0 && p.K >= 0, "gemm: sizes must be >= 0, got batch=",
           p.batch, " M=", p.M, " N=", p.N, " K=", p.K);
  BM_CHECK(p.M <= kMaxDim && p.N <= kMaxDim && p.K <= kMaxDim, "gemm: M, N and K must be < 2^31, got M=",
           p.M, " N=", p.N, " K=", p.K);
  const bool f16 = p.in_dtype == DType::f16, f32 = p.in_dtype == DType::f32, f64 = p.in_dtype == DType::f64;
  if (f64) {
    BM_CHECK(p.out_dtype == DType::f64, "gemm: float64 inputs need a float64 output");
    BM_CHECK(p.precision == Precision::native,
             "gemm: float64 inputs support only precision='native' (no tensor-core fp64 path)");
  } else if (f32) {
    BM_CHECK(p.out_dtype == DType::f32, "gemm: float32 inputs need a float32 output");
  } else {
    BM_CHECK(f16, "gemm: unknown input dtype");
    BM_CHECK(p.out_dtype == DType::f16 || p.out_dtype == DType::f32,
             "gemm: float16 inputs need a float16 or float32 output");
    BM_CHECK(p.precision == Precision::native || p.precision == Precision::fp16,
             "gemm: float16 inputs support precision 'native' or 'fp16' (fp16 products, fp32 "
             "accumulation)");
  }
  if (p.batch == 0 || p.M == 0 || p.N == 0) return;
  BM_CHECK(p.C != nullptr, "gemm: C is a null pointer");
  BM_CHECK(p.K == 0 || (p.A != nullptr && p.B != nullptr), "gemm: A or B is a null pointer");
  // Distinct outputs must not alias, or blocks would race on them.
  BM_CHECK(p.batch == 1 || p.bs_c != 0, "gemm: C's batch stride is 0 with batch=", p.batch);
  BM_CHECK(p.M == 1 || p.rs_c != 0, "gemm: C's row stride is 0 with M=", p.M);
  BM_CHECK(p.N == 1 || p.cs_c != 0, "gemm: C's column stride is 0 with N=", p.N);
  // A host pointer would make the kernel fault and poison the CUDA context for the whole
  // process: reject it here instead (a few microseconds per call).
  // Device memory of another GPU would fault the same way: kernels run on the current device.
  int device = 0;
  BM_CUDA_CHECK(cudaGetDevice(&device));
  const auto check_ptr = [device](const void* ptr, const char* name) {
    cudaPointerAttributes attr{};
    BM_CUDA_CHECK(cudaPointerGetAttributes(&attr, ptr));
    BM_CHECK(attr.type != cudaMemoryTypeUnregistered && attr.devicePointer != nullptr, "gemm: ",
             name, " (", ptr, ") is not memory the GPU can access");
    BM_CHECK(attr.type != cudaMemoryTypeDevice || attr.device == device, "gemm: ", name,
             " is on device ", attr.device, " but the current device is ", device);
  };
  if (p.K > 0) {
    check_ptr(p.A, "A");
    check_ptr(p.B, "B");
  }
  check_ptr(p.C, "C");
}

}  // namespace

void launch_gemm_forward(const GemmProblem& p, std::uintptr_t stream_ptr) {
  check_problem(p);
  if (p.batch == 0 || p.M == 0 || p.N == 0) return;
  const bool tensor_cores = p.in_dtype == DType::f16 ||
                            (p.in_dtype == DType::f32 && p.precision != Precision::native);
  if (tensor_cores) return launch_gemm_forward_wmma(p, stream_ptr);
  cudaStream_t stream = reinterpret_cast<cudaStream_t>(stream_ptr);
  if (p.in_dtype == DType::f32) {
    for_each_launch(p, kSimtBM, kSimtBN, [&](const GemmParams& k, dim3 grid) {
      gemm_forward_simt_kernel<<<grid, kSimtThreads, 0, stream>>>(k);
      BM_CUDA_CHECK_LAUNCH();
    });
  } else {
    for_each_launch(p, kF64BM, kF64BN, [&](const GemmParams& k, dim3 grid) {
      gemm_forward_f64_kernel<<<grid, kF64Threads, 0, stream>>>(k);
      BM_CUDA_CHECK_LAUNCH();
    });
  }
}

// ---- device queries ----------------------------------------------------------------------------

int device_count() {
  int n = 0;
  const cudaError_t err = cudaGetDeviceCount(&n);
  // No GPU or no (new enough) driver is a normal state for a CPU machine, not an error.
  if (err == cudaErrorNoDevice || err == cudaErrorInsufficientDriver) {
    cudaGetLastError();  // clear it so that later calls do not report it
    return 0;
  }
  BM_CUDA_CHECK(err);
  return n;
}

std::string device_name(int device) {
  const int n = device_count();
  BM_CHECK(device >= 0 && device < n, "device_name: device must be in [0, ", n, "), got ", device);
  cudaDeviceProp prop;
  BM_CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
  return prop.name;
}

}  // namespace bm::cuda
