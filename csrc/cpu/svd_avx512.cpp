// CSR SpMM kernels for the avx512 path: spmm_kernels.h with 64-byte vectors (per-ISA flags from
// CMakeLists.txt). See svd.h.
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <type_traits>
#include <vector>

#include "cpu/svd.h"

namespace bm {
namespace avx512 {
#define BM_SPMM_VB 64
#include "cpu/spmm_kernels.h"
#undef BM_SPMM_VB
}  // namespace avx512
}  // namespace bm
