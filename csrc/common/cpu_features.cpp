// CPUID-based detection (x86-64) and the global ISA / thread settings.
#include "common/cpu_features.h"

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>

#include <omp.h>

#if defined(BM_X86)
#include <cpuid.h>
#endif

namespace bm {
namespace {

CpuFeatures detect() {
  CpuFeatures f;
#if defined(BM_X86)
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  const bool osxsave = c & (1u << 27);
  const bool fma = c & (1u << 12);
  if (!osxsave) return f;
  // XGETBV: the OS must save YMM (bits 1,2) and, for AVX-512, opmask/ZMM state (bits 5,6,7).
  unsigned xlo, xhi;
  __asm__ volatile("xgetbv" : "=a"(xlo), "=d"(xhi) : "c"(0));
  const bool ymm_os = (xlo & 0x6) == 0x6;
  const bool zmm_os = (xlo & 0xe6) == 0xe6;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return f;
  f.avx2 = ymm_os && (b & (1u << 5));
  f.fma = ymm_os && fma;
  f.avx512f = zmm_os && (b & (1u << 16));
  f.avx512dq = zmm_os && (b & (1u << 17));
  f.avx512bw = zmm_os && (b & (1u << 30));
  f.avx512vl = zmm_os && (b & (1u << 31));
  unsigned a1, b1, c1, d1;
  if (__get_cpuid_count(7, 1, &a1, &b1, &c1, &d1)) f.avx512_bf16 = f.avx512f && (a1 & (1u << 5));
#endif
  return f;
}

Isa detect_best() {
  const CpuFeatures& f = cpu_features();
  if (f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq && f.fma) return Isa::avx512;
  if (f.avx2 && f.fma) return Isa::avx2;
  return Isa::portable;
}

Isa initial_isa() {
  Isa best = detect_best();
  const char* env = std::getenv("BIGMODEL_ISA");
  if (!env || !*env) return best;
  Isa want;
  if (!std::strcmp(env, "avx512")) want = Isa::avx512;
  else if (!std::strcmp(env, "avx2")) want = Isa::avx2;
  else if (!std::strcmp(env, "portable")) want = Isa::portable;
  else return best;  // unknown value: ignored (bigmodel.info() shows what was chosen)
  return static_cast<int>(want) <= static_cast<int>(best) ? want : best;
}

std::atomic<int> g_isa{-1};
std::atomic<int> g_threads{0};

}  // namespace

const CpuFeatures& cpu_features() {
  static const CpuFeatures f = detect();
  return f;
}

Isa best_isa() {
  static const Isa b = detect_best();
  return b;
}

Isa active_isa() {
  int v = g_isa.load(std::memory_order_relaxed);
  if (v < 0) {
    v = static_cast<int>(initial_isa());
    g_isa.store(v);
  }
  return static_cast<Isa>(v);
}

void set_isa(Isa isa) {
  if (static_cast<int>(isa) > static_cast<int>(best_isa()))
    throw std::invalid_argument(std::string("set_isa: this CPU does not support ") + isa_name(isa) +
                                " (best available: " + isa_name(best_isa()) + ")");
  g_isa.store(static_cast<int>(isa));
}

bool bf16_available() { return cpu_features().avx512_bf16 && active_isa() == Isa::avx512; }

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::avx512: return "avx512";
    case Isa::avx2: return "avx2";
    default: return "portable";
  }
}

int num_threads() {
  int n = g_threads.load(std::memory_order_relaxed);
  if (n <= 0) {
    n = omp_get_max_threads();
    if (n < 1) n = 1;
    g_threads.store(n);
  }
  return n;
}

int threads_for(int64_t work) {
  if (omp_in_parallel()) return 1;
  const int64_t t = work / 65536;
  return static_cast<int>(t < 1 ? 1 : (t < num_threads() ? t : num_threads()));
}

void set_num_threads(int n) {
  if (n < 1) throw std::invalid_argument("set_num_threads: n must be >= 1, got " + std::to_string(n));
  g_threads.store(n);
}

}  // namespace bm
