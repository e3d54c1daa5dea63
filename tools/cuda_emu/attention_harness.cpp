// Runs the attention launchers (cuda/attention.h) and the row-wise launchers (cuda/nn.h),
// emulated on the host (emu_core.h), on random problems and compares with double references.
// Every tensor lives in its own heap block of exactly its extent, so ASan (run.sh builds the
// harnesses with it) reports any kernel access outside a tensor, including through strided,
// misaligned (scalar-load path) and broadcast (stride 0) views.
// Attention: float32 / float64, D and Dv from 4 to 200 (exact 32 / 64 / 128 chunks, padded
// ones, the chunked generic path), Sq != Sk, 1 and odd lengths, causal, boolean / key-padding /
// additive (with -inf) masks, (B, H, S, D) and (B, S, H, D) layouts; forward and backward.
// Row-wise: softmax / log-softmax, cross-entropy (ignore_index, smoothing), layer norm with and
// without affine parameters, warp- and block-per-row lengths.
// Usage: attention_harness [reps]
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "cuda/attention.h"
#include "cuda/nn.h"
#include "emu_core.h"

using namespace bm::cuda;

namespace {

std::mt19937 rng(20261123);
int failures = 0, cases = 0;

double rnd() { return std::normal_distribution<double>()(rng); }
int pick(std::initializer_list<int> xs) {
  return xs.begin()[std::uniform_int_distribution<int>(0, int(xs.size()) - 1)(rng)];
}

// A heap block of exactly n elements (at least 1), so that ASan sees the tensor's bounds.
template <class T>
struct Buf {
  T* p = nullptr;
  int64_t n = 0;
  explicit Buf(int64_t n_ = 0) : n(n_) { p = static_cast<T*>(std::malloc(sizeof(T) * std::max<int64_t>(n, 1))); }
  ~Buf() { std::free(p); }
  Buf(const Buf&) = delete;
  Buf& operator=(const Buf&) = delete;
};

double rel(const std::vector<double>& x, const std::vector<double>& ref) {
  double num = 0, den = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    if (!std::isfinite(x[i]) && x[i] != ref[i]) return INFINITY;
    if (std::isfinite(ref[i])) num += (x[i] - ref[i]) * (x[i] - ref[i]), den += ref[i] * ref[i];
  }
  // Floor: gradients that are 0 in theory (C = 1, one visible key) are roundoff-sized.
  // (elements are O(1), so the floor is ~1% of a typical norm and hides no real error).
  return std::sqrt(num) / std::max(std::sqrt(den), 1e-2 * std::sqrt(double(x.size())));
}

void report(bool ok, const char* what, double err) {
  ++cases;
  if (!ok) {
    ++failures;
    std::printf("FAIL %s err=%g\n", what, err);
  }
}

// ---- attention ---------------------------------------------------------------------------------

template <class T>
void attention_case() {
  const int B = pick({1, 2}), H = pick({1, 3});
  const int Sq = pick({1, 2, 17, 33, 64, 65, 100}), Sk = pick({1, 2, 17, 33, 64, 65, 100});
  const int D = pick({4, 16, 32, 33, 64, 96, 128, 136, 200});
  const int Dv = (rng() % 3 == 0) ? pick({4, 16, 40, 64, 130}) : D;
  const bool causal = rng() % 2, bshd = rng() % 3 == 0, misalign = rng() % 4 == 0;
  const int mask_kind = pick({0, 0, 1, 1, 2});
  const bool key_pad = rng() % 2;  // boolean: key padding (stride 0) / additive: 2-D broadcast
  const double scale = (rng() % 4 == 0) ? 0.37 : 1.0 / std::sqrt(std::max(D, 1));

  // q, k, v: (B, H, S, d) or (B, S, H, d) memory, optionally one element off alignment.
  auto strides = [&](int S, int d, int64_t* s) {
    if (bshd) s[0] = int64_t(S) * H * d, s[1] = d, s[2] = int64_t(H) * d;
    else s[0] = int64_t(H) * S * d, s[1] = int64_t(S) * d, s[2] = d;
  };
  AttnProblem p;
  p.B = B, p.H = H, p.Sq = Sq, p.Sk = Sk, p.D = D, p.Dv = Dv;
  strides(Sq, D, p.qs), strides(Sk, D, p.ks), strides(Sk, Dv, p.vs);
  const int off = misalign ? 1 : 0;
  Buf<T> q(off + int64_t(B) * H * Sq * D), k(off + int64_t(B) * H * Sk * D), v(off + int64_t(B) * H * Sk * Dv);
  for (auto* b : {&q, &k, &v})
    for (int64_t i = 0; i < b->n; ++i) b->p[i] = T(rnd());
  auto at = [&](const Buf<T>& b, const int64_t* s, int bb, int h, int i, int d) {
    return double(b.p[off + bb * s[0] + h * s[1] + i * s[2] + d]);
  };

  // Mask
  Buf<unsigned char> mb(mask_kind == 1 ? (key_pad ? int64_t(B) * Sk : int64_t(B) * H * Sq * Sk) : 0);
  Buf<T> ma(mask_kind == 2 ? (key_pad ? int64_t(Sq) * Sk : int64_t(B) * H * Sq * Sk) : 0);
  p.mask_kind = mask_kind;
  if (mask_kind == 1) {
    if (key_pad) p.ms[0] = Sk, p.ms[1] = 0, p.ms[2] = 0, p.ms[3] = 1;
    else p.ms[0] = int64_t(H) * Sq * Sk, p.ms[1] = int64_t(Sq) * Sk, p.ms[2] = Sk, p.ms[3] = 1;
    for (int64_t i = 0; i < mb.n; ++i) mb.p[i] = rng() % 10 < 7;
    if (key_pad && B > 1)
      for (int j = Sk / 2; j < Sk; ++j) mb.p[Sk + j] = 0;  // batch 1: second half padded
    p.mask = mb.p;
  } else if (mask_kind == 2) {
    if (key_pad) p.ms[0] = 0, p.ms[1] = 0, p.ms[2] = Sk, p.ms[3] = 1;
    else p.ms[0] = int64_t(H) * Sq * Sk, p.ms[1] = int64_t(Sq) * Sk, p.ms[2] = Sk, p.ms[3] = 1;
    for (int64_t i = 0; i < ma.n; ++i) ma.p[i] = rng() % 8 == 0 ? T(-INFINITY) : T(rnd());
    p.mask = ma.p;
  }
  auto score = [&](int bb, int h, int i, int j) {
    if (causal && j > i) return -INFINITY * 1.0;
    const int64_t mo = bb * p.ms[0] + h * p.ms[1] + i * p.ms[2] + j * p.ms[3];
    if (mask_kind == 1 && !mb.p[mo]) return -INFINITY * 1.0;
    double s = 0;
    for (int d = 0; d < D; ++d) s += at(q, p.qs, bb, h, i, d) * at(k, p.ks, bb, h, j, d);
    s *= scale;
    if (mask_kind == 2) s += double(ma.p[mo]);
    return s;
  };

  // Reference forward and backward in double.
  const int64_t nrow = int64_t(B) * H * Sq;
  std::vector<double> r_out(nrow * Dv, 0.0), r_lse(nrow), do_(nrow * Dv);
  for (auto& x : do_) x = rnd();
  std::vector<double> r_dq(nrow * D, 0.0), r_dk(int64_t(B) * H * Sk * D, 0.0),
      r_dv(int64_t(B) * H * Sk * Dv, 0.0);
  std::vector<double> s(Sk), pr(Sk);
  for (int bb = 0; bb < B; ++bb)
    for (int h = 0; h < H; ++h)
      for (int i = 0; i < Sq; ++i) {
        const int64_t row = (int64_t(bb) * H + h) * Sq + i;
        double m = -INFINITY;
        for (int j = 0; j < Sk; ++j) s[j] = score(bb, h, i, j), m = std::max(m, s[j]);
        double l = 0;
        for (int j = 0; j < Sk; ++j) pr[j] = m == -INFINITY ? 0.0 : std::exp(s[j] - m), l += pr[j];
        r_lse[row] = l > 0 ? m + std::log(l) : -INFINITY;
        for (int j = 0; j < Sk; ++j) {
          const double pj = l > 0 ? pr[j] / l : 0.0;
          pr[j] = pj;
          for (int c = 0; c < Dv; ++c) r_out[row * Dv + c] += pj * at(v, p.vs, bb, h, j, c);
        }
        double dd = 0;
        for (int c = 0; c < Dv; ++c) dd += do_[row * Dv + c] * r_out[row * Dv + c];
        for (int j = 0; j < Sk; ++j) {
          if (pr[j] == 0) continue;
          double dp = 0;
          for (int c = 0; c < Dv; ++c) dp += do_[row * Dv + c] * at(v, p.vs, bb, h, j, c);
          const double ds = pr[j] * (dp - dd);
          const int64_t krow = (int64_t(bb) * H + h) * Sk + j;
          for (int c = 0; c < Dv; ++c) r_dv[krow * Dv + c] += pr[j] * do_[row * Dv + c];
          for (int c = 0; c < D; ++c) {
            r_dq[row * D + c] += scale * ds * at(k, p.ks, bb, h, j, c);
            r_dk[krow * D + c] += scale * ds * at(q, p.qs, bb, h, i, c);
          }
        }
      }

  // Kernels: forward, then backward from the kernel's own out and lse (as ops/ does).
  Buf<T> out(nrow * Dv), lse(nrow), dout(nrow * Dv), dd(nrow), dq(nrow * D),
      dk(int64_t(B) * H * Sk * D), dv(int64_t(B) * H * Sk * Dv);
  for (int64_t i = 0; i < dout.n; ++i) dout.p[i] = T(do_[i]);
  for (auto* b : {&out, &lse, &dd, &dq, &dk, &dv})  // NaN: an unwritten element shows up
    for (int64_t i = 0; i < b->n; ++i) b->p[i] = std::numeric_limits<T>::quiet_NaN();
  p.q = q.p + off, p.k = k.p + off, p.v = v.p + off;
  p.causal = causal, p.scale = scale;
  p.dtype = sizeof(T) == 4 ? DType::f32 : DType::f64;
  p.out = out.p, p.lse = lse.p;
  launch_attention_forward(p, 0);
  p.dout = dout.p, p.dd = dd.p, p.dq = dq.p, p.dk = dk.p, p.dv = dv.p;
  launch_attention_backward(p, 0);

  auto vec = [](const Buf<T>& b) { return std::vector<double>(b.p, b.p + b.n); };
  const double tol = sizeof(T) == 4 ? 1e-4 : 1e-10;
  char what[256];
  std::snprintf(what, sizeof what, "attention %s B=%d H=%d Sq=%d Sk=%d D=%d Dv=%d causal=%d "
                "mask=%d pad=%d bshd=%d mis=%d", sizeof(T) == 4 ? "f32" : "f64", B, H, Sq, Sk, D,
                Dv, causal, mask_kind, key_pad, bshd, misalign);
  std::vector<double> l = vec(lse);
  bool lse_ok = true;
  for (int64_t i = 0; i < nrow; ++i)
    lse_ok &= std::isfinite(l[i]) == std::isfinite(r_lse[i]) &&
              (!std::isfinite(l[i]) || std::fabs(l[i] - r_lse[i]) <= tol * (1 + std::fabs(r_lse[i])));
  const double e_out = rel(vec(out), r_out);
  const double e_dq = rel(vec(dq), r_dq), e_dk = rel(vec(dk), r_dk), e_dv = rel(vec(dv), r_dv);
  // Gradient floor: rows with one visible key give dq = 0 + roundoff.
  const double gtol = sizeof(T) == 4 ? 5e-4 : 1e-9;
  const bool ok = lse_ok && e_out <= tol && e_dq <= gtol && e_dk <= gtol && e_dv <= gtol;
  if (!ok)
    std::printf("  out %g dq %g dk %g dv %g lse_ok %d\n", e_out, e_dq, e_dk, e_dv, int(lse_ok));
  report(ok, what, std::max({e_out, e_dq, e_dk, e_dv}));
}

// ---- row-wise ----------------------------------------------------------------------------------

template <class T>
void rows_case(int64_t N, int64_t C) {
  const DType dt = sizeof(T) == 4 ? DType::f32 : DType::f64;
  const double tol = sizeof(T) == 4 ? 2e-5 : 1e-11;
  char what[128];
  Buf<T> x(N * C), y(N * C), dy(N * C), dx(N * C);
  for (int64_t i = 0; i < x.n; ++i) x.p[i] = T(3 * rnd()), dy.p[i] = T(rnd());
  for (int log = 0; log < 2; ++log) {
    launch_softmax_forward(x.p, y.p, N, C, log, dt, 0);
    launch_softmax_backward(dy.p, y.p, dx.p, N, C, log, dt, 0);
    std::vector<double> ry(N * C), rdx(N * C), gy(y.p, y.p + y.n), gdx(dx.p, dx.p + dx.n);
    for (int64_t n = 0; n < N; ++n) {
      double m = -INFINITY, s = 0, g = 0;
      for (int64_t c = 0; c < C; ++c) m = std::max(m, double(x.p[n * C + c]));
      for (int64_t c = 0; c < C; ++c) s += std::exp(x.p[n * C + c] - m);
      for (int64_t c = 0; c < C; ++c)
        ry[n * C + c] = log ? x.p[n * C + c] - m - std::log(s) : std::exp(x.p[n * C + c] - m) / s;
      // backward from the kernel's y
      for (int64_t c = 0; c < C; ++c) g += log ? double(dy.p[n * C + c]) : double(dy.p[n * C + c]) * y.p[n * C + c];
      for (int64_t c = 0; c < C; ++c)
        rdx[n * C + c] = log ? dy.p[n * C + c] - std::exp(double(y.p[n * C + c])) * g
                             : double(y.p[n * C + c]) * (dy.p[n * C + c] - g);
    }
    std::snprintf(what, sizeof what, "%s N=%ld C=%ld %s", log ? "log_softmax" : "softmax", long(N),
                  long(C), sizeof(T) == 4 ? "f32" : "f64");
    const double e = std::max(rel(gy, ry), rel(gdx, rdx) / 10);
    report(e <= tol, what, e);
  }
  // cross-entropy: targets with ignore_index on some rows, smoothing 0.1
  const int64_t ignore = -100;
  const double eps = 0.1;
  Buf<int64_t> t(N);
  Buf<T> loss(N), w(N);
  for (int64_t n = 0; n < N; ++n) t.p[n] = n % 5 == 1 ? ignore : int64_t(rng() % C), w.p[n] = T(rnd());
  launch_cross_entropy_forward(x.p, t.p, loss.p, N, C, ignore, eps, dt, 0);
  launch_cross_entropy_backward(x.p, t.p, w.p, dx.p, N, C, ignore, eps, dt, 0);
  std::vector<double> rl(N), rdx(N * C), gl(loss.p, loss.p + N), gdx(dx.p, dx.p + dx.n);
  for (int64_t n = 0; n < N; ++n) {
    if (t.p[n] == ignore) {
      rl[n] = 0;
      for (int64_t c = 0; c < C; ++c) rdx[n * C + c] = 0;
      continue;
    }
    double m = -INFINITY, s = 0, sx = 0;
    for (int64_t c = 0; c < C; ++c) m = std::max(m, double(x.p[n * C + c])), sx += x.p[n * C + c];
    for (int64_t c = 0; c < C; ++c) s += std::exp(x.p[n * C + c] - m);
    const double lse = m + std::log(s);
    rl[n] = (1 - eps) * (lse - x.p[n * C + t.p[n]]) + eps * (lse - sx / C);
    for (int64_t c = 0; c < C; ++c)
      rdx[n * C + c] = w.p[n] * (std::exp(x.p[n * C + c] - lse) - (c == t.p[n]) * (1 - eps) - eps / C);
  }
  std::snprintf(what, sizeof what, "cross_entropy N=%ld C=%ld %s", long(N), long(C), sizeof(T) == 4 ? "f32" : "f64");
  double e = std::max(rel(gl, rl), rel(gdx, rdx));
  report(e <= tol, what, e);
  // layer norm, with and without affine parameters
  for (int affine = 0; affine < 2; ++affine) {
    Buf<T> lw(C), lb(C), mean(N), rstd(N), dw(C), db(C);
    for (int64_t c = 0; c < C; ++c) lw.p[c] = T(rnd()), lb.p[c] = T(rnd());
    const T* pw = affine ? lw.p : nullptr;
    launch_layer_norm_forward(x.p, pw, affine ? lb.p : nullptr, y.p, mean.p, rstd.p, N, C, 1e-5, dt, 0);
    const int64_t nw = affine ? layer_norm_backward_workspace(N, C) : 0;
    Buf<T> work(nw);
    launch_layer_norm_backward(dy.p, x.p, pw, mean.p, rstd.p, dx.p, affine ? dw.p : nullptr,
                               affine ? db.p : nullptr, affine ? work.p : nullptr, nw, N, C, dt, 0);
    std::vector<double> ry(N * C), rdx2(N * C), rdw(C, 0.0), rdb(C, 0.0);
    for (int64_t n = 0; n < N; ++n) {
      double mu = 0, var = 0;
      for (int64_t c = 0; c < C; ++c) mu += x.p[n * C + c];
      mu /= C;
      for (int64_t c = 0; c < C; ++c) var += (x.p[n * C + c] - mu) * (x.p[n * C + c] - mu);
      const double rs = 1 / std::sqrt(var / C + 1e-5);
      double s1 = 0, s2 = 0;
      for (int64_t c = 0; c < C; ++c) {
        const double xh = (x.p[n * C + c] - mu) * rs, wc = affine ? double(lw.p[c]) : 1.0;
        ry[n * C + c] = xh * wc + (affine ? double(lb.p[c]) : 0.0);
        const double hh = dy.p[n * C + c] * wc;
        s1 += hh, s2 += hh * xh;
        rdw[c] += dy.p[n * C + c] * xh, rdb[c] += dy.p[n * C + c];
      }
      for (int64_t c = 0; c < C; ++c) {
        const double xh = (x.p[n * C + c] - mu) * rs, wc = affine ? double(lw.p[c]) : 1.0;
        rdx2[n * C + c] = rs * (dy.p[n * C + c] * wc - s1 / C - xh * s2 / C);
      }
    }
    std::vector<double> gy(y.p, y.p + y.n), gdx2(dx.p, dx.p + dx.n);
    e = std::max(rel(gy, ry), rel(gdx2, rdx2) / 10);
    if (affine)
      e = std::max({e, rel(std::vector<double>(dw.p, dw.p + C), rdw) / 10,
                    rel(std::vector<double>(db.p, db.p + C), rdb) / 10});
    std::snprintf(what, sizeof what, "layer_norm affine=%d N=%ld D=%ld %s", affine, long(N), long(C),
                  sizeof(T) == 4 ? "f32" : "f64");
    report(e <= tol, what, e);
  }
}

}  // namespace

int main(int argc, char** argv) {
  const int reps = argc > 1 ? std::atoi(argv[1]) : 2;
  for (int r = 0; r < reps; ++r) {
    for (int i = 0; i < 8; ++i) attention_case<float>();
    for (int i = 0; i < 2; ++i) attention_case<double>();
  }
  // Row lengths: 1, odd, a warp's worth +-1, long warp rows, block rows (>= 1024), many rows
  // (several row chunks in the layer-norm partial sums).
  const int64_t shapes[][2] = {{1, 1}, {3, 3}, {5, 31}, {4, 33}, {2, 1000}, {3, 1024}, {2, 2049},
                               {70, 7}, {200, 40}};
  for (auto& s : shapes) {
    rows_case<float>(s[0], s[1]);
    if (s[1] < 1000) rows_case<double>(s[0], s[1]);
  }
  std::printf("attention/nn harness: %d cases, %d failures\n", cases, failures);
  return failures != 0;
}
