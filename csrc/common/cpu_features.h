// CPU feature detection and the instruction-set choice made once at import.
//
// Isa::avx512 needs AVX512F/BW/VL/DQ (+ OS support for ZMM state); bf16 GEMM additionally needs
// AVX512_BF16. Isa::avx2 needs AVX2+FMA. Isa::portable is plain C++ and runs anywhere.
// BIGMODEL_ISA=avx512|avx2|portable in the environment forces a path (never a higher one than
// the CPU has); set_isa() does the same at run time so tests can exercise every path.
#pragma once
#include <cstdint>

namespace bm {

enum class Isa { portable = 0, avx2 = 1, avx512 = 2 };

struct CpuFeatures {
  bool avx2 = false, fma = false, avx512f = false, avx512bw = false, avx512vl = false,
       avx512dq = false, avx512_bf16 = false;
};

const CpuFeatures& cpu_features();
Isa best_isa();              // the highest path this CPU supports
Isa active_isa();            // the path kernels use now
void set_isa(Isa isa);       // throws std::invalid_argument if the CPU lacks it
bool bf16_available();       // AVX512_BF16 present and the AVX-512 path active
const char* isa_name(Isa isa);

// Threads: every parallel region uses num_threads(bm::num_threads()). Initialised from
// omp_get_max_threads() (which honours OMP_NUM_THREADS); global, not per-thread like
// omp_set_num_threads, so a change made from one Python thread applies to all.
int num_threads();
void set_num_threads(int n);

// Threads worth waking for `work` elements of a memory-bound loop: about 64K elements per
// thread at least, never more than num_threads(), 1 inside a parallel region.
int threads_for(int64_t work);

// True when the AVX-512 kernels are the active path (always false off x86).
inline bool avx512_active() {
#if defined(BM_X86)
  return active_isa() == Isa::avx512;
#else
  return false;
#endif
}

}  // namespace bm
