// Top-k symmetric eigensolver for the avx512 path: symeig_impl.h with 64-byte vectors (per-ISA
// flags from CMakeLists.txt). See symeig.h.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "cpu/symeig.h"

namespace bm {
namespace avx512 {
#define BM_SYMEIG_VB 64
#include "cpu/symeig_impl.h"
#undef BM_SYMEIG_VB
}  // namespace avx512
}  // namespace bm
