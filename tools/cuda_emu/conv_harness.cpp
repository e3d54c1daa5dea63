// Runs the conv2d and pooling launchers (emulated on the host, see emu_core.h) on random shapes
// (1, primes, tile edges; stride, padding with implied extra bottom/right rows, dilation, groups,
// depthwise; fp32 and fp64) and compares with double references written as plain loops. Every
// buffer is a heap allocation of exactly its size plus guard elements on both sides holding NaN
// that must stay untouched, so ASan (out of the allocation) and the guards (inside it) catch any
// stray read or write. Usage: conv_harness [reps]
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "cuda/conv2d.h"
#include "cuda/pool.h"
#include "emu_core.h"

using namespace bm::cuda;

namespace {

constexpr int kGuard = 37;
int failures = 0, checks = 0;

// A device "tensor": n elements between two guards of NaN.
template <class T>
struct Buf {
  std::vector<T> v;
  size_t n;
  explicit Buf(size_t n_) : v(n_ + 2 * kGuard, T(NAN)), n(n_) {}
  T* p() { return v.data() + kGuard; }
  T& operator[](size_t i) { return v[kGuard + i]; }
  bool guards_ok() const {
    for (int i = 0; i < kGuard; ++i)
      if (!std::isnan(double(v[i])) || !std::isnan(double(v[kGuard + n + i]))) return false;
    return true;
  }
};

template <class T>
Buf<T> randn(std::mt19937& g, size_t n) {
  Buf<T> b(n);
  std::normal_distribution<double> nd;
  for (size_t i = 0; i < n; ++i) b[i] = T(nd(g));
  return b;
}

template <class T>
void expect(const char* what, const std::string& shape, Buf<T>& got, const std::vector<double>& ref,
            double tol) {
  ++checks;
  double num = 0, den = 0;
  bool finite = true;
  for (size_t i = 0; i < ref.size(); ++i) {
    const double d = double(got[i]) - ref[i];
    finite = finite && std::isfinite(double(got[i]));
    num += d * d;
    den += ref[i] * ref[i];
  }
  const double err = std::sqrt(num / std::max(den, 1e-300));
  if (!finite || err > tol || !got.guards_ok()) {
    ++failures;
    std::printf("FAIL %s %s: rel err %.3g (tol %.1g)%s%s\n", what, shape.c_str(), err, tol,
                finite ? "" : " non-finite", got.guards_ok() ? "" : " guard overwritten");
  }
}

// ---- conv2d ------------------------------------------------------------------------------------

struct Ref {
  std::vector<double> y, dx, dw, db;
};

template <class T>
Ref conv_ref(const Conv2dShape& s, Buf<T>& x, Buf<T>& w, Buf<T>& b, Buf<T>& dy) {
  const int64_t Cg = s.C / s.G, Kg = s.K / s.G;
  Ref r;
  r.y.assign(s.N * s.K * s.P * s.Q, 0.0);
  r.dx.assign(s.N * s.C * s.H * s.W, 0.0);
  r.dw.assign(s.K * Cg * s.R * s.S, 0.0);
  r.db.assign(s.K, 0.0);
  for (int64_t n = 0; n < s.N; ++n)
    for (int64_t k = 0; k < s.K; ++k)
      for (int64_t p = 0; p < s.P; ++p)
        for (int64_t q = 0; q < s.Q; ++q) {
          const int64_t yi = ((n * s.K + k) * s.P + p) * s.Q + q;
          double acc = double(b[k]);
          const double g = double(dy[yi]);
          r.db[k] += g;
          for (int64_t c = 0; c < Cg; ++c)
            for (int64_t i = 0; i < s.R; ++i)
              for (int64_t j = 0; j < s.S; ++j) {
                const int64_t h = p * s.stride_h - s.pad_h + i * s.dil_h;
                const int64_t ww = q * s.stride_w - s.pad_w + j * s.dil_w;
                if (h < 0 || h >= s.H || ww < 0 || ww >= s.W) continue;
                const int64_t xi = ((n * s.C + (k / Kg) * Cg + c) * s.H + h) * s.W + ww;
                const int64_t wi = ((k * Cg + c) * s.R + i) * s.S + j;
                acc += double(w[wi]) * double(x[xi]);
                r.dx[xi] += double(w[wi]) * g;
                r.dw[wi] += double(x[xi]) * g;
              }
          r.y[yi] = acc;
        }
  return r;
}

template <class T>
void run_conv(std::mt19937& g, const Conv2dShape& s) {
  const DType dt = sizeof(T) == 4 ? DType::f32 : DType::f64;
  const double tol = sizeof(T) == 4 ? 2e-5 : 1e-12;
  const int64_t Cg = s.C / s.G;
  char buf[256];
  std::snprintf(buf, sizeof buf, "%s N%lld C%lld H%lld W%lld K%lld R%lld S%lld G%lld P%lld Q%lld s%lldx%lld p%lldx%lld d%lldx%lld",
                sizeof(T) == 4 ? "f32" : "f64", (long long)s.N, (long long)s.C, (long long)s.H,
                (long long)s.W, (long long)s.K, (long long)s.R, (long long)s.S, (long long)s.G,
                (long long)s.P, (long long)s.Q, (long long)s.stride_h, (long long)s.stride_w,
                (long long)s.pad_h, (long long)s.pad_w, (long long)s.dil_h, (long long)s.dil_w);
  const std::string shape = buf;
  auto x = randn<T>(g, s.N * s.C * s.H * s.W);
  auto w = randn<T>(g, s.K * Cg * s.R * s.S);
  auto b = randn<T>(g, s.K);
  auto dy = randn<T>(g, s.N * s.K * s.P * s.Q);
  const Ref r = conv_ref(s, x, w, b, dy);
  Buf<T> y(r.y.size()), dx(r.dx.size()), dw(r.dw.size()), db(r.db.size());
  launch_conv2d_forward(s, dt, x.p(), w.p(), b.p(), y.p(), 0);
  expect("forward", shape, y, r.y, tol);
  launch_conv2d_backward_data(s, dt, dy.p(), w.p(), dx.p(), 0);
  expect("dx", shape, dx, r.dx, tol);
  const int64_t nws = conv2d_backward_weight_workspace(s);
  Buf<T> ws(size_t(std::max<int64_t>(nws, 0)));
  launch_conv2d_backward_weight(s, dt, dy.p(), x.p(), dw.p(), db.p(), nws ? ws.p() : nullptr, nws, 0);
  expect("dw", shape, dw, r.dw, tol * 2);
  expect("db", shape, db, r.db, tol * 2);
  if (!ws.guards_ok()) ++failures, std::printf("FAIL workspace guard %s\n", shape.c_str());
}

int64_t pick(std::mt19937& g, std::initializer_list<int64_t> v) {
  return *(v.begin() + std::uniform_int_distribution<size_t>(0, v.size() - 1)(g));
}

template <class T>
void random_conv(std::mt19937& g) {
  Conv2dShape s;
  s.G = pick(g, {1, 1, 1, 2, 3});
  const bool depthwise = pick(g, {0, 0, 0, 1});
  const int64_t Cg = depthwise ? 1 : pick(g, {1, 2, 3, 5, 17, 35});
  const int64_t Kg = depthwise ? pick(g, {1, 2}) : pick(g, {1, 4, 7, 33, 70});
  if (depthwise) s.G = pick(g, {1, 4, 6});
  s.C = Cg * s.G, s.K = Kg * s.G;
  s.N = pick(g, {1, 2, 3});
  s.R = pick(g, {1, 2, 3, 5}), s.S = pick(g, {1, 2, 3, 4});
  s.stride_h = pick(g, {1, 1, 2, 3}), s.stride_w = pick(g, {1, 2});
  s.dil_h = pick(g, {1, 1, 2, 3}), s.dil_w = pick(g, {1, 2});
  s.pad_h = pick(g, {0, 1, 2, 3}), s.pad_w = pick(g, {0, 1, 2});
  s.H = pick(g, {1, 4, 7, 9, 13}) + s.dil_h * (s.R - 1);
  s.W = pick(g, {1, 5, 8, 11}) + s.dil_w * (s.S - 1);
  const int64_t extra_h = pick(g, {0, 0, 1}), extra_w = pick(g, {0, 1});  // implied bottom/right pad
  s.P = (s.H + 2 * s.pad_h - s.dil_h * (s.R - 1) - 1) / s.stride_h + 1 + extra_h;
  s.Q = (s.W + 2 * s.pad_w - s.dil_w * (s.S - 1) - 1) / s.stride_w + 1 + extra_w;
  try {
    conv2d_check_shape(s);
  } catch (const std::invalid_argument&) {  // the extra row went past what the CPU accepts
    s.P -= extra_h, s.Q -= extra_w;
  }
  run_conv<T>(g, s);
}

// ---- pooling -----------------------------------------------------------------------------------

template <class T>
void run_pool(std::mt19937& g, const Pool2dShape& s) {
  const DType dt = sizeof(T) == 4 ? DType::f32 : DType::f64;
  const double tol = sizeof(T) == 4 ? 1e-6 : 1e-13;
  const std::string shape = "pool N" + std::to_string(s.N) + " C" + std::to_string(s.C) + " H" +
                            std::to_string(s.H) + " W" + std::to_string(s.W) + " P" + std::to_string(s.P) +
                            " Q" + std::to_string(s.Q) + " k" + std::to_string(s.kh) + "x" + std::to_string(s.kw) +
                            " s" + std::to_string(s.sh) + "x" + std::to_string(s.sw) + " p" +
                            std::to_string(s.ph) + "x" + std::to_string(s.pw);
  const int64_t planes = s.N * s.C, HW = s.H * s.W, PQ = s.P * s.Q;
  auto x = randn<T>(g, planes * HW);
  auto dy = randn<T>(g, planes * PQ);
  std::vector<double> rmax(planes * PQ), ravg[2], rdmax(planes * HW, 0.0), rdavg[2];
  std::vector<int64_t> ridx(planes * PQ);
  for (int c = 0; c < 2; ++c) ravg[c].assign(planes * PQ, 0.0), rdavg[c].assign(planes * HW, 0.0);
  for (int64_t pl = 0; pl < planes; ++pl)
    for (int64_t oh = 0; oh < s.P; ++oh)
      for (int64_t ow = 0; ow < s.Q; ++ow) {
        int64_t h0 = oh * s.sh - s.ph, w0 = ow * s.sw - s.pw;
        int64_t h1 = std::min(h0 + s.kh, s.H + s.ph), w1 = std::min(w0 + s.kw, s.W + s.pw);
        const int64_t pool = (h1 - h0) * (w1 - w0);
        h0 = std::max<int64_t>(h0, 0), w0 = std::max<int64_t>(w0, 0);
        h1 = std::min(h1, s.H), w1 = std::min(w1, s.W);
        const int64_t o = pl * PQ + oh * s.Q + ow;
        double best = -INFINITY, sum = 0;
        int64_t arg = h0 * s.W + w0;
        for (int64_t h = h0; h < h1; ++h)
          for (int64_t w = w0; w < w1; ++w) {
            const double v = double(x[pl * HW + h * s.W + w]);
            sum += v;
            if (v > best) best = v, arg = h * s.W + w;
          }
        rmax[o] = best, ridx[o] = arg;
        rdmax[pl * HW + arg] += double(dy[o]);
        const int64_t div[2] = {(h1 - h0) * (w1 - w0), pool};
        for (int c = 0; c < 2; ++c) {
          ravg[c][o] = sum / double(div[c]);
          for (int64_t h = h0; h < h1; ++h)
            for (int64_t w = w0; w < w1; ++w) rdavg[c][pl * HW + h * s.W + w] += double(dy[o]) / double(div[c]);
        }
      }
  Buf<T> y(planes * PQ), dx(planes * HW);
  Buf<int64_t> idx(planes * PQ);
  for (int i = 0; i < kGuard; ++i) idx.v[i] = idx.v[kGuard + idx.n + i] = -7;
  launch_maxpool2d_forward(s, dt, x.p(), y.p(), idx.p(), 0);
  expect("maxpool", shape, y, rmax, 0.0);
  ++checks;
  bool idx_ok = true;
  for (int64_t i = 0; i < planes * PQ; ++i) idx_ok = idx_ok && idx[i] == ridx[i];
  for (int i = 0; i < kGuard; ++i) idx_ok = idx_ok && idx.v[i] == -7 && idx.v[kGuard + idx.n + i] == -7;
  if (!idx_ok) ++failures, std::printf("FAIL maxpool indices %s\n", shape.c_str());
  for (bool window : {true, false}) {
    Buf<T> d(planes * HW);
    launch_maxpool2d_backward(s, window, dt, dy.p(), idx.p(), d.p(), 0);
    expect(window ? "maxpool dx gather" : "maxpool dx scatter", shape, d, rdmax, tol);
  }
  for (int c = 0; c < 2; ++c) {
    Buf<T> ya(planes * PQ), da(planes * HW);
    launch_avgpool2d_forward(s, c == 1, dt, x.p(), ya.p(), 0);
    expect(c ? "avgpool cip" : "avgpool", shape, ya, ravg[c], tol);
    launch_avgpool2d_backward(s, c == 1, dt, dy.p(), da.p(), 0);
    expect(c ? "avgpool dx cip" : "avgpool dx", shape, da, rdavg[c], tol);
  }
  std::vector<double> rg(planes), rgd(planes * HW);
  for (int64_t pl = 0; pl < planes; ++pl) {
    double sum = 0;
    for (int64_t i = 0; i < HW; ++i) sum += double(x[pl * HW + i]);
    rg[pl] = sum / double(HW);
    for (int64_t i = 0; i < HW; ++i) rgd[pl * HW + i] = double(dy[pl]) / double(HW);
  }
  Buf<T> gy(planes), gdx(planes * HW);
  launch_global_avgpool2d_forward(planes, HW, dt, x.p(), gy.p(), 0);
  expect("global avg", shape, gy, rg, tol * 4);
  launch_global_avgpool2d_backward(planes, HW, dt, dy.p(), gdx.p(), 0);
  expect("global avg dx", shape, gdx, rgd, tol);
}

template <class T>
void random_pool(std::mt19937& g) {
  Pool2dShape s;
  s.N = pick(g, {1, 2}), s.C = pick(g, {1, 3, 5});
  s.kh = pick(g, {1, 2, 3, 5}), s.kw = pick(g, {1, 2, 3});
  s.sh = pick(g, {1, 2, 3}), s.sw = pick(g, {1, 2});
  s.ph = std::uniform_int_distribution<int64_t>(0, s.kh / 2)(g);
  s.pw = std::uniform_int_distribution<int64_t>(0, s.kw / 2)(g);
  s.H = pick(g, {0, 1, 4, 7, 40}) + s.kh, s.W = pick(g, {0, 3, 6, 37}) + s.kw;
  const bool ceil_mode = pick(g, {0, 1});
  auto out = [&](int64_t H, int64_t k, int64_t st, int64_t p) {
    int64_t o = (H + 2 * p - k + (ceil_mode ? st - 1 : 0)) / st + 1;
    if (ceil_mode && (o - 1) * st >= H + p) --o;
    return o;
  };
  s.P = out(s.H, s.kh, s.sh, s.ph), s.Q = out(s.W, s.kw, s.sw, s.pw);
  run_pool<T>(g, s);
}

}  // namespace

int main(int argc, char** argv) {
  const int reps = argc > 1 ? std::atoi(argv[1]) : 2;
  std::mt19937 g(20261124);
  for (int i = 0; i < 6 * reps; ++i) {
    random_conv<float>(g);
    if (i % 3 == 0) random_conv<double>(g);
  }
  for (int i = 0; i < 4 * reps; ++i) {
    random_pool<float>(g);
    if (i % 2 == 0) random_pool<double>(g);
  }
  // Fixed shapes that reach the 128-row fp32 tile (>= 256 blocks) and a long split reduction.
  Conv2dShape s;
  s.N = 2, s.C = 4, s.H = 64, s.W = 64, s.K = 260, s.R = s.S = 1, s.G = 4, s.P = 64, s.Q = 64;
  run_conv<float>(g, s);
  s = Conv2dShape{};
  s.N = 3, s.C = 3, s.H = 30, s.W = 31, s.K = 6, s.R = s.S = 3, s.G = 1, s.P = 28, s.Q = 29;
  run_conv<float>(g, s);
  std::printf("conv_harness: %d checks, %d failures\n", checks, failures);
  return failures ? 1 : 0;
}
