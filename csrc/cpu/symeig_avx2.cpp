// Top-k symmetric eigensolver for the avx2 path: symeig_impl.h with 32-byte vectors (per-ISA
// flags from CMakeLists.txt). See symeig.h.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "cpu/symeig.h"

namespace bm {
namespace avx2 {
#define BM_SYMEIG_VB 32
#include "cpu/symeig_impl.h"
#undef BM_SYMEIG_VB
}  // namespace avx2
}  // namespace bm
