// CSR SpMM kernels for the avx2 path: spmm_kernels.h with 32-byte vectors (per-ISA flags from
// CMakeLists.txt). See svd.h.
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <type_traits>
#include <vector>

#include "cpu/svd.h"

namespace bm {
namespace avx2 {
#define BM_SPMM_VB 32
#include "cpu/spmm_kernels.h"
#undef BM_SPMM_VB
}  // namespace avx2
}  // namespace bm
