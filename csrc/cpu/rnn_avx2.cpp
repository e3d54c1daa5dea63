// RNN gate kernels (rnn_gates.h) compiled for AVX2 (this file gets the per-ISA flags).
#include <cstdint>
#include <cstring>

#include "cpu/rnn.h"

namespace bm::avx2 {
#include "cpu/rnn_gates.h"
}  // namespace bm::avx2
