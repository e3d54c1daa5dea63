// Runs launch_gemm_forward (emulated on the host, see emu_core.h) on random problems (shapes with
// 1, primes, tile edges; transposes; strided, misaligned, negative-stride and batched/broadcast
// views; alpha/beta; every dtype/precision) and compares with a double reference computed on
// identically rounded inputs. Also checks that beta == 0 does not read C (C holds NaN) and that
// nothing outside C's view is written. Usage: gemm_harness [reps per shape and mode]
#include <cstdio>
#include <random>
#include <string>
#include <vector>
#include <algorithm>
#include "cuda/gemm.h"
#include "emu_core.h"

using namespace bm::cuda;

template <class T> T from_d(double x);
template <> float from_d<float>(double x) { return (float)x; }
template <> double from_d<double>(double x) { return x; }
template <> __half from_d<__half>(double x) { return __float2half_rn((float)x); }
inline double to_d(float x) { return x; }
inline double to_d(double x) { return x; }
inline double to_d(__half x) { return __half2float(x); }

float rnd_prec(float x, Precision p) {
  if (p == Precision::tf32) return nvcuda::wmma::__float_to_tf32(x);
  if (p == Precision::bf16) return emu_to_float(__float2bfloat16_rn(x));
  if (p == Precision::fp16) return __half2float(__float2half_rn(x));
  return x;
}

struct View {
  void* mem = nullptr; int64_t off = 0, bs = 0, rs = 0, cs = 0, nelem = 0;
};

// A strided (nb, R, C) view in a buffer whose other elements hold `gap`.
template <class T>
View make_view(std::mt19937& g, int64_t nb, int64_t R, int64_t C, bool trans, int step, int extra, bool neg, int misalign, double gap) {
  View v;
  auto r4 = [](int64_t x) { return (x + 3) / 4 * 4; };
  if (!trans) { v.cs = step; v.rs = C * step + extra; } else { v.rs = step; v.cs = R * step + extra; }
  if (misalign == 0 && step == 1) {  // aligned: leading dimension a multiple of 4 -> vector path
    if (!trans) v.rs = r4(v.rs); else v.cs = r4(v.cs);
  }
  int64_t mat = std::max<int64_t>(1, std::llabs(v.rs) * std::max<int64_t>(R, 1) + std::llabs(v.cs) * std::max<int64_t>(C, 1));
  v.bs = nb == 1 ? 0 : (misalign == 0 && step == 1 ? r4(mat + extra) : mat + extra);
  if (neg) v.rs = -v.rs;
  int64_t lo = 0, hi = 0;
  for (int64_t b : {int64_t(0), nb - 1}) for (int64_t i : {int64_t(0), R - 1}) for (int64_t j : {int64_t(0), C - 1}) {
    int64_t o = b * v.bs + i * v.rs + j * v.cs; lo = std::min(lo, o); hi = std::max(hi, o);
  }
  v.nelem = hi - lo + 1 + misalign;
  v.off = -lo + misalign;
  size_t bytes = ((v.nelem * sizeof(T) + 63) / 64) * 64;
  v.mem = aligned_alloc(64, bytes);
  T* p = static_cast<T*>(v.mem);
  for (int64_t e = 0; e < v.nelem; ++e) p[e] = from_d<T>(gap);
  std::normal_distribution<double> nd;
  for (int64_t b = 0; b < nb; ++b) for (int64_t i = 0; i < R; ++i) for (int64_t j = 0; j < C; ++j)
    p[v.off + b * v.bs + i * v.rs + j * v.cs] = from_d<T>(nd(g));
  return v;
}

int failures = 0, cases = 0;

template <class Tin, class Tout>
void run(std::mt19937& g, DType din, DType dout, Precision prec, int64_t batch, int bcast, int64_t M, int64_t N, int64_t K,
         bool ta, bool tb, int step, bool misalign, bool neg, double alpha, double beta, double tol) {
  const int64_t nba = bcast == 1 ? 1 : batch, nbb = bcast == 2 ? 1 : batch;
  const double nan = std::nan("");
  View A = make_view<Tin>(g, nba, M, K, ta, step, 3, neg, misalign, nan);
  View B = make_view<Tin>(g, nbb, K, N, tb, step, 1, false, misalign, nan);
  View C = make_view<Tout>(g, batch, M, N, false, step == 1 ? 1 : 2, 5, neg, misalign, 12345.0);
  Tout* pc = static_cast<Tout*>(C.mem);
  std::vector<Tout> c0(pc, pc + C.nelem);
  if (beta == 0)  // C must not be read
    for (int64_t b = 0; b < batch; ++b) for (int64_t i = 0; i < M; ++i) for (int64_t j = 0; j < N; ++j)
      pc[C.off + b * C.bs + i * C.rs + j * C.cs] = from_d<Tout>(nan);
  GemmProblem p;
  p.batch = batch, p.M = M, p.N = N, p.K = K;
  p.A = static_cast<Tin*>(A.mem) + A.off, p.bs_a = A.bs, p.rs_a = A.rs, p.cs_a = A.cs;
  p.B = static_cast<Tin*>(B.mem) + B.off, p.bs_b = B.bs, p.rs_b = B.rs, p.cs_b = B.cs;
  p.C = pc + C.off, p.bs_c = C.bs, p.rs_c = C.rs, p.cs_c = C.cs;
  p.in_dtype = din, p.out_dtype = dout, p.alpha = alpha, p.beta = beta, p.precision = prec;
  launch_gemm_forward(p, 0);
  const Tin* pa = static_cast<const Tin*>(p.A); const Tin* pb = static_cast<const Tin*>(p.B);
  double num = 0, den = 0; bool gap_ok = true, finite = true;
  std::vector<char> is_view(C.nelem, 0);
  for (int64_t b = 0; b < batch; ++b) for (int64_t i = 0; i < M; ++i) for (int64_t j = 0; j < N; ++j) {
    double s = 0;
    for (int64_t k = 0; k < K; ++k) {
      double a = to_d(pa[(nba == 1 ? 0 : b) * A.bs + i * A.rs + k * A.cs]);
      double bb = to_d(pb[(nbb == 1 ? 0 : b) * B.bs + k * B.rs + j * B.cs]);
      if (din == DType::f32) { a = rnd_prec((float)a, prec); bb = rnd_prec((float)bb, prec); }
      s += a * bb;
    }
    const int64_t o = C.off + b * C.bs + i * C.rs + j * C.cs;
    is_view[o] = 1;
    double ref = alpha * s + (beta != 0 ? beta * to_d(c0[o]) : 0.0);
    double got = to_d(pc[o]);
    if (!std::isfinite(got)) finite = false;
    num += (got - ref) * (got - ref); den += ref * ref;
  }
  for (int64_t e = 0; e < C.nelem; ++e) if (!is_view[e] && to_d(pc[e]) != to_d(c0[e]) && !(std::isnan(to_d(pc[e])) && std::isnan(to_d(c0[e])))) gap_ok = false;
  double err = std::sqrt(num) / (den > 0 ? std::sqrt(den) : 1.0);
  ++cases;
  if (!(err <= tol) || !gap_ok || !finite) {
    ++failures;
    printf("FAIL in=%d out=%d prec=%d batch=%ld bcast=%d M=%ld N=%ld K=%ld ta=%d tb=%d step=%d mis=%d neg=%d a=%g b=%g err=%g gap_ok=%d finite=%d\n",
           (int)din, (int)dout, (int)prec, (long)batch, bcast, (long)M, (long)N, (long)K, ta, tb, step, misalign, neg, alpha, beta, err, gap_ok, finite);
  }
  free(A.mem); free(B.mem); free(C.mem);
}

int main(int argc, char** argv) {
  std::mt19937 g(42);
  const int reps = argc > 1 ? atoi(argv[1]) : 2;
  std::vector<std::array<int64_t, 3>> shapes = {{1, 1, 1}, {37, 53, 29}, {128, 128, 16}, {129, 127, 17},
                                                {255, 257, 33}, {5, 7, 0}, {64, 96, 80}, {17, 19, 300}, {130, 260, 64}};
  std::uniform_int_distribution<int> coin(0, 1), three(0, 2);
  for (auto s : shapes) for (int mode = 0; mode < 7; ++mode) for (int r = 0; r < reps; ++r) {
    const int64_t M = s[0], N = s[1], K = s[2];
    bool ta = coin(g), tb = coin(g), mis = (r == 1) && coin(g), neg = coin(g) && coin(g);
    int step = (r == 1 && coin(g)) ? 2 : 1;
    if (r == 0) mis = false, neg = false, step = 1;   // first rep: the aligned fast path
    int64_t batch = coin(g) ? 1 : 3; int bcast = batch > 1 ? three(g) : 0;
    double alpha = coin(g) ? 1.0 : -0.75, beta = coin(g) ? 0.0 : 0.5;
    switch (mode) {
      case 0: run<float, float>(g, DType::f32, DType::f32, Precision::native, batch, bcast, M, N, K, ta, tb, step, mis, neg, alpha, beta, 1e-6); break;
      case 1: run<double, double>(g, DType::f64, DType::f64, Precision::native, batch, bcast, M, N, K, ta, tb, step, mis, neg, alpha, beta, 1e-14); break;
      case 2: run<float, float>(g, DType::f32, DType::f32, Precision::tf32, batch, bcast, M, N, K, ta, tb, step, mis, neg, alpha, beta, 1e-6); break;
      case 3: run<float, float>(g, DType::f32, DType::f32, Precision::bf16, batch, bcast, M, N, K, ta, tb, step, mis, neg, alpha, beta, 1e-6); break;
      case 4: run<float, float>(g, DType::f32, DType::f32, Precision::fp16, batch, bcast, M, N, K, ta, tb, step, mis, neg, alpha, beta, 1e-6); break;
      case 5: run<__half, __half>(g, DType::f16, DType::f16, Precision::native, batch, bcast, M, N, K, ta, tb, step, mis, neg, alpha, beta, 1e-3); break;
      case 6: run<__half, float>(g, DType::f16, DType::f32, Precision::fp16, batch, bcast, M, N, K, ta, tb, step, mis, neg, alpha, beta, 1e-6); break;
    }
  }
  printf("%d cases, %d failures, %d vector loads\n", cases, failures, emu_vec_loads);
  return failures != 0;
}
