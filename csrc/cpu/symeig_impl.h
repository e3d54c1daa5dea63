// The top-k symmetric eigensolver (symeig.h), written once on GCC/Clang vector extensions and
// compiled per ISA: symeig.cpp (16-byte vectors, baseline), symeig_avx2.cpp (32),
// symeig_avx512.cpp (64). Include inside the ISA's namespace after defining BM_SYMEIG_VB (vector
// bytes); the includer brings <algorithm>, <cmath>, <cstdint>, <cstring>, <limits>, <vector>.
// Why per ISA: stages 1 and 4 below are flop-bound (4/3 n^3 + 2 n^2 k); baseline SSE2 has no
// FMA and 2 lanes, and at n = 160 that alone costs ~2x.
//
// Algorithm (the mathematics of LAPACK's dsyevr(range="I") path: dsytrd + dstebz + dstein +
// dormtr), with every inner loop either contiguous or run over the k wanted eigenvalues at once:
//
//  1. Householder tridiagonalization A = Q T Q^T (Golub & Van Loan, Alg. 8.3.1; dsytd2) of the
//     lower triangle, row-major, scaled by a power of two (exact) to max|a_ij| in [0.5, 1).
//     Step i's rank-2 update and step i+1's product p = A22 v are fused into one pass over the
//     trailing triangle (a_jl -= v_j w_l + w_j v_l; p_j += a_jl v_l; p_l += a_jl v_j), four rows
//     at a time so the shared vectors are loaded once per four rows: the matrix is streamed once
//     per step instead of twice. Only column i+1 is updated ahead, to build its reflector.
//  2. The k largest eigenvalues of T by Sturm-count bisection (Kahan's LDL^T pivot recurrence
//     with dstebz's pivmin guard: zero off-diagonals, zero pivots and repeated eigenvalues need
//     no special case), all k in lock step so the inner loop runs over k shifts and the
//     divisions pipeline. Plain bisection needs ~52 sweeps; two accelerations, both keeping the
//     count bracket lo < lambda <= hi valid at all times: every evaluated (x, count) narrows
//     every lane's bracket, lanes sharing a bracket evaluate equally spaced points in it
//     (multisection), and a lane whose bracket holds exactly its one eigenvalue takes Newton
//     steps on det(T - xI) (f'/f = sum q_j'/q_j, from the same recurrence; safeguarded as in
//     Numerical Recipes' rtsafe, and a step below the tolerance is stretched to it so that the
//     bracket closes from the far side). Converged when hi - lo <= 2 max(ulp ||T||,
//     2 ulp |lambda|), i.e. the absolute accuracy of dstebz. At n = 160 this stage is ~4x
//     faster than plain lock-step bisection (~52 sweeps).
//  3. Eigenvectors of T by inverse iteration (dstein): LU with partial pivoting of T - lambda I
//     (dlagtf) for all k shifts at once, pivots below ulp ||T|| raised to it (we factor a
//     matrix within ulp ||T|| of T - lambda I exactly), deterministic pseudo-random start.
//     After every solve each iterate is re-orthogonalized against ALL earlier columns by
//     classical Gram-Schmidt, repeated when a pass removes more than half the norm ("twice is
//     enough", Giraud et al. 2005): as accurate as MGS, and its dot products are independent
//     and contiguous. Z is then orthonormal also for clusters and exactly repeated eigenvalues,
//     where inverse iteration alone returns one vector several times. Sweeps run until every
//     column's growth ||(T - lambda I)^-1 b|| (after orthogonalization) certifies a residual
//     below 16 n ulp ||T||, then one more (dstein: two more; one already brings the residual
//     of a column inside a cluster to O(ulp) -- the cluster tests check it), at most 8.
//  4. Back-transformation Z = Q Z_T, two reflectors per pass over Z (dormtr, blocked by two).

typedef double SymV __attribute__((vector_size(BM_SYMEIG_VB)));
static constexpr int kSymL = BM_SYMEIG_VB / 8;  // lanes per vector

static inline SymV sym_load(const double* p) {
  SymV r;
  std::memcpy(&r, p, sizeof(SymV));
  return r;
}
static inline void sym_store(double* p, SymV x) { std::memcpy(p, &x, sizeof(SymV)); }
static inline SymV sym_bcast(double s) { return SymV{} + s; }
static inline double sym_hsum(SymV x) {
  double s = 0;
  for (int i = 0; i < kSymL; ++i) s += x[i];
  return s;
}

static constexpr double kSymUlp = std::numeric_limits<double>::epsilon();  // dlamch('P')
static constexpr double kSymSafeMin = std::numeric_limits<double>::min();

// ---- 1. tridiagonalization -------------------------------------------------------------------

// Euclidean norm of x[0..m) without the underflow of a plain sum of squares (a reflector built
// from an underflowed norm would not be orthogonal).
static double sym_norm(const double* x, int64_t m) {
  double ss = 0;
  for (int64_t j = 0; j < m; ++j) ss += x[j] * x[j];
  if (ss >= 0x1p-960) return std::sqrt(ss);
  double mx = 0;
  for (int64_t j = 0; j < m; ++j) mx = std::max(mx, std::fabs(x[j]));
  // Below 2^-800 (max|a| >= 0.5 after scaling) the column counts as zero: error <= n 2^-800.
  if (mx < 0x1p-800) return 0;
  ss = 0;
  for (int64_t j = 0; j < m; ++j) ss += (x[j] * 0x1p500) * (x[j] * 0x1p500);
  return std::sqrt(ss) * 0x1p-500;
}

// Fused update + product for rows j0..j0+R-1 of W (n x n), columns l0..row: finishes the
// pending update a -= vp w^T + wp v^T and accumulates p += A v over the lower triangle.
// l0 is aligned down to whole vectors: the columns below the active block are dead (already
// reduced), v is zero there, so they only absorb garbage that is never read again. The last
// vectors (the R x R corner) are masked per row to the strictly lower part; the diagonal is
// done separately because it enters p once, not twice. Reads (never writes) up to kSymL - 1
// entries past column j0 + R - 1, which the caller's buffer layout keeps inside the allocation.
template <int R>
static inline void sym_fused_rows(double* W, int64_t n, int64_t j0, int64_t l0,
                                  const double* vp, const double* wp, const double* v,
                                  double* p) {
  typedef long long SymM __attribute__((vector_size(BM_SYMEIG_VB)));
  double* row[R];
  double vj[R], wj[R], xj[R];
  SymV bv[R], bw[R], bx[R], s[R];
  for (int r = 0; r < R; ++r) {
    row[r] = W + (j0 + r) * n;
    vj[r] = vp[j0 + r];
    wj[r] = wp[j0 + r];
    xj[r] = v[j0 + r];
    bv[r] = sym_bcast(vj[r]);
    bw[r] = sym_bcast(wj[r]);
    bx[r] = sym_bcast(xj[r]);
    s[r] = SymV{};
  }
  int64_t l = l0;
  for (; l + kSymL <= j0; l += kSymL) {
    const SymV vw = sym_load(wp + l), vv = sym_load(vp + l), vx = sym_load(v + l);
    SymV pp = sym_load(p + l);
    for (int r = 0; r < R; ++r) {
      const SymV a = sym_load(row[r] + l) - bv[r] * vw - bw[r] * vv;
      sym_store(row[r] + l, a);
      s[r] += a * vx;
      pp += a * bx[r];
    }
    sym_store(p + l, pp);
  }
  SymV lane;
  for (int q = 0; q < kSymL; ++q) lane[q] = q;
  for (; l < j0 + R - 1; l += kSymL) {
    const SymV col = lane + static_cast<double>(l);
    const SymV vw = sym_load(wp + l), vv = sym_load(vp + l), vx = sym_load(v + l);
    SymV pp = sym_load(p + l);
    for (int r = 0; r < R; ++r) {
      const SymM keep = col < static_cast<double>(j0 + r);
      const SymV old = sym_load(row[r] + l);
      const SymV a = keep ? old - bv[r] * vw - bw[r] * vv : SymV{};
      sym_store(row[r] + l, keep ? a : old);
      s[r] += a * vx;
      pp += a * bx[r];
    }
    sym_store(p + l, pp);
  }
  for (int r = 0; r < R; ++r) {
    const int64_t j = j0 + r;
    const double a = row[r][j] - 2 * vj[r] * wj[r];
    row[r][j] = a;
    p[j] += sym_hsum(s[r]) + a * xj[r];
  }
}

// W: n x n row-major, lower triangle = the scaled matrix; destroyed. Out: d[0..n), e[0..n-1),
// and for i = 0..n-3 the reflector H_i = I - tau[i] v v^T with v_j = 0 for j <= i, v_{i+1} = 1,
// v_j = W[i*n + j] (row i of the unused upper triangle); Q = H_0 ... H_{n-3}. work: 4n doubles
// followed by at least kSymL more readable ones; W followed by kSymL readable doubles.
static void sym_tridiagonalize(int64_t n, double* W, double* d, double* e, double* tau,
                               double* work) {
  double* vp = work;  // pending rank-2 update of the previous step: v and w
  double* wp = work + n;
  double* p = work + 2 * n;  // A22 v of this step
  double* v = work + 3 * n;  // reflector of this step (absolute indices)
  std::fill(vp, vp + 2 * n, 0.0);
  std::fill(v, v + n, 0.0);
  for (int64_t i = 0; i + 1 < n; ++i) {
    // Column i (rows i..n-1) still lacks step i-1's update; the reflector needs it now.
    for (int64_t j = i; j < n; ++j) v[j] = W[j * n + i] - (vp[j] * wp[i] + wp[j] * vp[i]);
    d[i] = v[i];
    v[i] = 0;  // v stays zero on the dead columns (sym_fused_rows reads them)
    const double alpha = v[i + 1];
    const double xnorm = sym_norm(v + i + 2, n - i - 2);
    double t = 0, beta = alpha;
    if (xnorm > 0) {  // dlarfg: beta = -sign(alpha) ||(alpha, x)||, v = x / (alpha - beta)
      beta = -std::copysign(std::hypot(alpha, xnorm), alpha);
      t = (beta - alpha) / beta;
      const double scal = 1.0 / (alpha - beta);
      for (int64_t j = i + 2; j < n; ++j) v[j] *= scal;
    } else {
      for (int64_t j = i + 2; j < n; ++j) v[j] = 0;
    }
    v[i + 1] = 1;
    e[i] = beta;
    tau[i] = t;
    std::memcpy(W + i * n + i + 1, v + i + 1, sizeof(double) * (n - i - 1));

    std::fill(p + i + 1, p + n, 0.0);
    const int64_t l0 = (i + 1) / kSymL * kSymL;
    int64_t j0 = i + 1;
    for (; j0 + 4 <= n; j0 += 4) sym_fused_rows<4>(W, n, j0, l0, vp, wp, v, p);
    switch (n - j0) {
      case 3: sym_fused_rows<3>(W, n, j0, l0, vp, wp, v, p); break;
      case 2: sym_fused_rows<2>(W, n, j0, l0, vp, wp, v, p); break;
      case 1: sym_fused_rows<1>(W, n, j0, l0, vp, wp, v, p); break;
      default: break;
    }
    // w = tau p - (tau^2 / 2)(p.v) v becomes the pending update (dsytd2).
    double pv = 0;
    for (int64_t j = i + 1; j < n; ++j) pv += p[j] * v[j];
    const double c = -0.5 * t * t * pv;
    for (int64_t j = i + 1; j < n; ++j) {
      wp[j] = t * p[j] + c * v[j];
      vp[j] = v[j];
    }
  }
  d[n - 1] = W[(n - 1) * n + n - 1];
}

// ---- 2. top-k eigenvalues of T ---------------------------------------------------------------

// For each shift x[s], s < m: cnt[s] = number of eigenvalues of T below x[s] (pivots of
// T - x I = L D L^T below zero; a pivot smaller than pivmin becomes -pivmin, as in dlaebz) and
// g[s] = d/dx log|det(T - x I)| = sum_j q_j'/q_j, for Newton. q, dq: m scratch each.
static void sym_sturm(int64_t n, const double* d, const double* e2, double pivmin, int64_t m,
                      const double* x, double* q, double* dq, double* cnt, double* g) {
#pragma omp simd
  for (int64_t s = 0; s < m; ++s) {
    double t = d[0] - x[s];
    t = std::fabs(t) < pivmin ? -pivmin : t;
    cnt[s] = t < 0 ? 1.0 : 0.0;
    q[s] = t;
    dq[s] = -1.0;
    g[s] = 0;
  }
  for (int64_t j = 1; j < n; ++j) {
    const double dj = d[j], ej = e2[j - 1];
#pragma omp simd
    for (int64_t s = 0; s < m; ++s) {
      const double r = 1.0 / q[s];
      const double dqs = dq[s];
      g[s] += dqs * r;
      double t = (dj - x[s]) - ej * r;
      t = std::fabs(t) < pivmin ? -pivmin : t;
      cnt[s] += t < 0 ? 1.0 : 0.0;
      q[s] = t;
      dq[s] = -1.0 + ej * dqs * (r * r);
    }
  }
#pragma omp simd
  for (int64_t s = 0; s < m; ++s) g[s] += dq[s] / q[s];
}

// lam[c] (c < k) = the c-th largest eigenvalue of T (d, e), descending. Returns ||T||_inf.
// work: n + 16k doubles.
static double sym_top_eigenvalues(int64_t n, const double* d, const double* e, int64_t k,
                                  double* lam, double* work) {
  double* e2 = work;
  double* lo = work + n;
  double* hi = lo + k;
  double* clo = hi + k;   // counts at lo and hi
  double* chi = clo + k;
  double* xl = chi + k;   // the lane's last evaluated point, its Newton slope, last two steps
  double* gl = xl + k;
  double* dx = gl + k;
  double* dxold = dx + k;
  double* x = dxold + k;  // this sweep's shifts (active lanes, compacted)
  double* q = x + k;
  double* dq = q + k;
  double* cnt = dq + k;
  double* g = cnt + k;
  double* act = g + k;    // active lane numbers (as doubles, exact)
  double* tolc = act + k;
  double tnorm = 0, glo = d[0], ghi = d[0], e2max = 0;
  for (int64_t j = 0; j < n; ++j) {
    const double r = (j > 0 ? std::fabs(e[j - 1]) : 0.0) + (j + 1 < n ? std::fabs(e[j]) : 0.0);
    glo = std::min(glo, d[j] - r);
    ghi = std::max(ghi, d[j] + r);
    tnorm = std::max(tnorm, std::fabs(d[j]) + r);
    if (j + 1 < n) {
      e2[j] = e[j] * e[j];
      e2max = std::max(e2max, e2[j]);
    }
  }
  const double pivmin = kSymSafeMin * std::max(1.0, e2max);
  // Gershgorin interval widened as in dstebz so that its end counts are surely 0 and n.
  const double fudge = 2.1 * (kSymUlp * tnorm * static_cast<double>(n) + pivmin);
  glo -= fudge;
  ghi += fudge;
  const double atol = std::max(kSymUlp * tnorm, pivmin), rtol = 2 * kSymUlp;
  for (int64_t c = 0; c < k; ++c) {
    lo[c] = glo;
    hi[c] = ghi;
    clo[c] = 0;
    chi[c] = static_cast<double>(n);
    xl[c] = std::numeric_limits<double>::quiet_NaN();  // no Newton slope yet
    gl[c] = 0;
    dx[c] = dxold[c] = ghi - glo;
  }
  const double nan = std::numeric_limits<double>::quiet_NaN();
  for (int sweep = 0; sweep < 200; ++sweep) {
    // Pick this sweep's point for every unconverged lane.
    int64_t m = 0;
    for (int64_t c = 0; c < k; ++c) {
      const double tol = std::max(atol, rtol * std::max(std::fabs(lo[c]), std::fabs(hi[c])));
      if (hi[c] - lo[c] <= 2 * tol) continue;
      const double t = static_cast<double>(n - 1 - c);  // the lane's eigenvalue number (ascending)
      const double mid = 0.5 * (lo[c] + hi[c]);
      double xc = mid;
      if (clo[c] == t && chi[c] == t + 1) {
        // Isolated: Newton from the last point, if it stays inside and steps keep halving.
        const double step = -1.0 / gl[c];
        double xn = xl[c] + step;
        if (std::fabs(step) < tol) xn = xl[c] + std::copysign(tol, step);
        if (xn > lo[c] && xn < hi[c] && std::fabs(step) <= 0.5 * std::fabs(dxold[c])) {
          xc = xn;
          dxold[c] = dx[c];
          dx[c] = step;
        } else {
          dxold[c] = dx[c];
          dx[c] = 0.5 * (hi[c] - lo[c]);
        }
      } else {
        // Multisection: the g lanes sharing this bracket (neighbours, as brackets are ordered)
        // take equally spaced points.
        int64_t first = c, last = c;
        while (first > 0 && lo[first - 1] == lo[c] && hi[first - 1] == hi[c]) --first;
        while (last + 1 < k && lo[last + 1] == lo[c] && hi[last + 1] == hi[c]) ++last;
        const double gsz = static_cast<double>(last - first + 1);
        // Lane c has the (last - c)-th smallest target in the group.
        xc = lo[c] + (hi[c] - lo[c]) * (static_cast<double>(last - c) + 1) / (gsz + 1);
        if (!(xc > lo[c] && xc < hi[c])) xc = mid;
      }
      x[m] = xc;
      act[m] = static_cast<double>(c);
      tolc[m] = tol;
      ++m;
    }
    if (m == 0) break;
    sym_sturm(n, d, e2, pivmin, m, x, q, dq, cnt, g);
    for (int64_t s = 0; s < m; ++s) {
      const int64_t c = static_cast<int64_t>(act[s]);
      xl[c] = x[s];
      gl[c] = std::isfinite(g[s]) && g[s] != 0 ? g[s] : nan;
    }
    // Every evaluated point narrows every active bracket it falls into. A count that
    // contradicts a bracket (non-monotone by rounding) is ignored, so lo < hi always holds.
    for (int64_t a = 0; a < m; ++a) {
      const int64_t c = static_cast<int64_t>(act[a]);
      const double t = static_cast<double>(n - 1 - c);
      for (int64_t s = 0; s < m; ++s) {
        const double xs = x[s];
        if (xs <= lo[c] || xs >= hi[c]) continue;
        if (cnt[s] <= t) {
          lo[c] = xs;
          clo[c] = cnt[s];
        } else {
          hi[c] = xs;
          chi[c] = cnt[s];
        }
      }
    }
  }
  for (int64_t c = 0; c < k; ++c) lam[c] = 0.5 * (lo[c] + hi[c]);
  // Equal eigenvalues may come out of their brackets in either order by one rounding.
  std::sort(lam, lam + k, [](double a, double b) { return a > b; });
  return tnorm;
}

// ---- 3. eigenvectors of T --------------------------------------------------------------------

// LU with partial pivoting of T - lam[c] I for all lanes c < kp at once (dlagtf); factors are
// n x kp row-major: U row j = (1/r1 at j, u2 at j+1, u3 at j+2), ml the multiplier, sw 1.0 where
// rows j and j+1 were exchanged. Pivots below tol are raised to +-tol: we factor a matrix
// within tol of T - lam I exactly, which is what lets inverse iteration run at an (almost)
// exact eigenvalue. ak, bk: kp scratch.
static void sym_factor(int64_t n, const double* d, const double* e, int64_t kp,
                       const double* lam, double tol, double* r1, double* u2, double* u3,
                       double* ml, double* sw, double* ak, double* bk) {
  for (int64_t c = 0; c < kp; ++c) {
    ak[c] = d[0] - lam[c];
    bk[c] = n > 1 ? e[0] : 0.0;
  }
  for (int64_t j = 0; j + 1 < n; ++j) {
    const double cj = e[j], dj1 = d[j + 1], b1 = j + 2 < n ? e[j + 1] : 0.0;
    double* R1 = r1 + j * kp;
    double* U2 = u2 + j * kp;
    double* U3 = u3 + j * kp;
    double* ML = ml + j * kp;
    double* SW = sw + j * kp;
#pragma omp simd
    for (int64_t c = 0; c < kp; ++c) {
      const double a = ak[c], b = bk[c], a1 = dj1 - lam[c];
      const bool swap = std::fabs(cj) > std::fabs(a);
      double piv = swap ? cj : a;
      const double num = swap ? a : cj;
      piv = std::fabs(piv) < tol ? (piv < 0 ? -tol : tol) : piv;
      const double r = 1.0 / piv;
      const double mult = num * r;
      R1[c] = r;
      U2[c] = swap ? a1 : b;
      U3[c] = swap ? b1 : 0.0;
      ML[c] = mult;
      SW[c] = swap ? 1.0 : 0.0;
      ak[c] = swap ? b - mult * a1 : a1 - mult * b;
      bk[c] = swap ? -mult * b1 : b1;
    }
  }
  double* R1 = r1 + (n - 1) * kp;
  for (int64_t c = 0; c < kp; ++c) {
    const double piv = std::fabs(ak[c]) < tol ? (ak[c] < 0 ? -tol : tol) : ak[c];
    R1[c] = 1.0 / piv;
  }
}

// Y (n x kp) := (T - lam I)^-1 Y, all lanes, from sym_factor. Entries are clamped to +-2^600 so
// no input, however degenerate, makes inf or NaN (a clamped column is just not converged yet).
static void sym_solve(int64_t n, int64_t kp, const double* r1, const double* u2,
                      const double* u3, const double* ml, const double* sw, double* Y) {
  for (int64_t j = 0; j + 1 < n; ++j) {
    double* y0 = Y + j * kp;
    double* y1 = y0 + kp;
    const double* M = ml + j * kp;
    const double* S = sw + j * kp;
#pragma omp simd
    for (int64_t c = 0; c < kp; ++c) {
      const double a = y0[c], b = y1[c];
      const double top = S[c] != 0 ? b : a, bot = S[c] != 0 ? a : b;
      y0[c] = top;
      y1[c] = bot - M[c] * top;
    }
  }
  constexpr double kBig = 0x1p600;
  for (int64_t j = n - 1; j >= 0; --j) {
    double* y = Y + j * kp;
    const double* R = r1 + j * kp;
    const double* U2 = u2 + j * kp;
    const double* U3 = u3 + j * kp;
    if (j + 2 < n) {
      const double* y1 = y + kp;
      const double* y2 = y + 2 * kp;
#pragma omp simd
      for (int64_t c = 0; c < kp; ++c) {
        const double t = (y[c] - U2[c] * y1[c] - U3[c] * y2[c]) * R[c];
        y[c] = std::min(std::max(t, -kBig), kBig);
      }
    } else if (j + 1 < n) {
      const double* y1 = y + kp;
#pragma omp simd
      for (int64_t c = 0; c < kp; ++c) {
        const double t = (y[c] - U2[c] * y1[c]) * R[c];
        y[c] = std::min(std::max(t, -kBig), kBig);
      }
    } else {
#pragma omp simd
      for (int64_t c = 0; c < kp; ++c) y[c] = std::min(std::max(y[c] * R[c], -kBig), kBig);
    }
  }
}

static double sym_dot(const double* a, const double* b, int64_t n) {
  SymV s0{}, s1{};
  int64_t j = 0;
  for (; j + 2 * kSymL <= n; j += 2 * kSymL) {
    s0 += sym_load(a + j) * sym_load(b + j);
    s1 += sym_load(a + j + kSymL) * sym_load(b + j + kSymL);
  }
  double s = sym_hsum(s0 + s1);
  for (; j < n; ++j) s += a[j] * b[j];
  return s;
}

// coef[s] = <Q[s], y> for s < c; Q rows of length n, leading dimension ld. Four dot products
// per pass over y, two accumulators each, so the adds do not wait on each other.
static void sym_dots(const double* Q, int64_t ld, int64_t c, int64_t n, const double* y,
                     double* coef) {
  int64_t s = 0;
  for (; s + 4 <= c; s += 4) {
    const double* q0 = Q + s * ld;
    const double* q1 = q0 + ld;
    const double* q2 = q1 + ld;
    const double* q3 = q2 + ld;
    SymV a0{}, a1{}, a2{}, a3{}, b0{}, b1{}, b2{}, b3{};
    int64_t j = 0;
    for (; j + 2 * kSymL <= n; j += 2 * kSymL) {
      const SymV y0 = sym_load(y + j), y1 = sym_load(y + j + kSymL);
      a0 += sym_load(q0 + j) * y0;
      a1 += sym_load(q1 + j) * y0;
      a2 += sym_load(q2 + j) * y0;
      a3 += sym_load(q3 + j) * y0;
      b0 += sym_load(q0 + j + kSymL) * y1;
      b1 += sym_load(q1 + j + kSymL) * y1;
      b2 += sym_load(q2 + j + kSymL) * y1;
      b3 += sym_load(q3 + j + kSymL) * y1;
    }
    double c0 = sym_hsum(a0 + b0), c1 = sym_hsum(a1 + b1), c2 = sym_hsum(a2 + b2),
           c3 = sym_hsum(a3 + b3);
    for (; j < n; ++j) {
      c0 += q0[j] * y[j];
      c1 += q1[j] * y[j];
      c2 += q2[j] * y[j];
      c3 += q3[j] * y[j];
    }
    coef[s] = c0;
    coef[s + 1] = c1;
    coef[s + 2] = c2;
    coef[s + 3] = c3;
  }
  for (; s < c; ++s) coef[s] = sym_dot(Q + s * ld, y, n);
}

// y -= sum_{s < c} coef[s] Q[s]; four vectors of y stay in registers while the Q rows stream.
static void sym_subtract(const double* Q, int64_t ld, int64_t c, int64_t n, const double* coef,
                         double* y) {
  int64_t j = 0;
  for (; j + 4 * kSymL <= n; j += 4 * kSymL) {
    SymV y0 = sym_load(y + j), y1 = sym_load(y + j + kSymL), y2 = sym_load(y + j + 2 * kSymL),
         y3 = sym_load(y + j + 3 * kSymL);
    for (int64_t s = 0; s < c; ++s) {
      const double* qs = Q + s * ld + j;
      const SymV f = sym_bcast(coef[s]);
      y0 -= f * sym_load(qs);
      y1 -= f * sym_load(qs + kSymL);
      y2 -= f * sym_load(qs + 2 * kSymL);
      y3 -= f * sym_load(qs + 3 * kSymL);
    }
    sym_store(y + j, y0);
    sym_store(y + j + kSymL, y1);
    sym_store(y + j + 2 * kSymL, y2);
    sym_store(y + j + 3 * kSymL, y3);
  }
  for (; j + kSymL <= n; j += kSymL) {
    SymV y0 = sym_load(y + j);
    for (int64_t s = 0; s < c; ++s) y0 -= sym_bcast(coef[s]) * sym_load(Q + s * ld + j);
    sym_store(y + j, y0);
  }
  for (; j < n; ++j) {
    double t = y[j];
    for (int64_t s = 0; s < c; ++s) t -= coef[s] * Q[s * ld + j];
    y[j] = t;
  }
}

// Orthonormalizes the k rows of Yt (k x n, row c = eigenvector c) in order, each against all
// earlier ones (CGS, repeated when a pass removes more than half the norm). Each row is first
// scaled to max|entry| = 1 so nothing overflows; grow[c] = its norm after orthogonalization in
// the scale it came in (the inverse-iteration growth). coef: k scratch.
static void sym_orthonormalize(int64_t n, int64_t k, double* Yt, double* grow, double* coef) {
  for (int64_t c = 0; c < k; ++c) {
    double* y = Yt + c * n;
    double mx = 0;
    for (int64_t j = 0; j < n; ++j) mx = std::max(mx, std::fabs(y[j]));
    const double sc = mx > 0 ? 1.0 / mx : 0.0;
    for (int64_t j = 0; j < n; ++j) y[j] *= sc;
    double nrm = std::sqrt(sym_dot(y, y, n));
    for (int pass = 0; pass < 3 && c > 0; ++pass) {
      sym_dots(Yt, n, c, n, y, coef);
      sym_subtract(Yt, n, c, n, coef, y);
      const double nrm2 = std::sqrt(sym_dot(y, y, n));
      const bool again = nrm2 < 0.5 * nrm;
      nrm = nrm2;
      if (!again) break;
    }
    if (!(nrm > 0x1p-900)) {
      // Numerically inside the span of the earlier rows (or zero): restart from the unit vector
      // on which the earlier rows are smallest, orthogonalized twice; not converged.
      int64_t jbest = 0;
      double best = std::numeric_limits<double>::infinity();
      for (int64_t j = 0; j < n; ++j) {
        double sq = 0;
        for (int64_t s = 0; s < c; ++s) sq += Yt[s * n + j] * Yt[s * n + j];
        if (sq < best) best = sq, jbest = j;
      }
      std::fill(y, y + n, 0.0);
      y[jbest] = 1;
      for (int pass = 0; pass < 2; ++pass) {
        sym_dots(Yt, n, c, n, y, coef);
        sym_subtract(Yt, n, c, n, coef, y);
      }
      nrm = std::sqrt(sym_dot(y, y, n));
      grow[c] = 0;
    } else {
      grow[c] = nrm * mx;
    }
    const double inv = 1.0 / nrm;
    for (int64_t j = 0; j < n; ++j) y[j] *= inv;
  }
}

// ---- 4. back-transformation ------------------------------------------------------------------

// Columns [c0, c0 + NV kSymL) of Y (n x kp) := H_{i1} H_{i1+1} Y (two = false: H_{i1} Y), from
// f1 = t1 (v1^T Y - (v1.v2) f2), f2 = t2 v2^T Y. The dot accumulators of a column block stay in
// registers while the rows stream by.
template <int NV>
static void sym_apply_pair(int64_t n, int64_t kp, int64_t c0, int64_t i1, bool two,
                           const double* v1, const double* v2, double t1, double t2,
                           double v12, double* Y) {
  SymV s1[NV], s2[NV];
  for (int q = 0; q < NV; ++q) s1[q] = s2[q] = SymV{};
  {
    const double* y = Y + (i1 + 1) * kp + c0;  // row i1+1: v2 is zero there
    for (int q = 0; q < NV; ++q) s1[q] = sym_load(y + q * kSymL);
  }
  if (two) {
    for (int64_t j = i1 + 2; j < n; ++j) {
      const double* y = Y + j * kp + c0;
      const SymV a = sym_bcast(v1[j]), b = sym_bcast(v2[j]);
      for (int q = 0; q < NV; ++q) {
        const SymV yy = sym_load(y + q * kSymL);
        s1[q] += a * yy;
        s2[q] += b * yy;
      }
    }
  } else {
    for (int64_t j = i1 + 2; j < n; ++j) {
      const double* y = Y + j * kp + c0;
      const SymV a = sym_bcast(v1[j]);
      for (int q = 0; q < NV; ++q) s1[q] += a * sym_load(y + q * kSymL);
    }
  }
  SymV f1[NV], f2[NV];
  for (int q = 0; q < NV; ++q) {
    f2[q] = s2[q] * t2;
    f1[q] = (s1[q] - f2[q] * v12) * t1;
  }
  {
    double* y = Y + (i1 + 1) * kp + c0;
    for (int q = 0; q < NV; ++q) sym_store(y + q * kSymL, sym_load(y + q * kSymL) - f1[q]);
  }
  for (int64_t j = i1 + 2; j < n; ++j) {
    double* y = Y + j * kp + c0;
    const SymV a = sym_bcast(v1[j]), b = sym_bcast(two ? v2[j] : 0.0);
    for (int q = 0; q < NV; ++q)
      sym_store(y + q * kSymL, sym_load(y + q * kSymL) - a * f1[q] - b * f2[q]);
  }
}

// Y (n x kp) := Q Y with Q = H_0 ... H_{n-3} from sym_tridiagonalize.
static void sym_apply_q(int64_t n, int64_t kp, const double* W, const double* tau, double* Y) {
  const int64_t nvec = kp / kSymL;
  for (int64_t i2 = n - 3; i2 >= 0; i2 -= 2) {
    const bool two = i2 >= 1;
    const int64_t i1 = two ? i2 - 1 : i2;
    const double* v1 = W + i1 * n;  // v1[i1+1] = 1, support i1+1..n-1
    const double* v2 = W + i2 * n;  // support i2+1..n-1 (used only when two)
    const double t1 = tau[i1], t2 = two ? tau[i2] : 0.0;
    double v12 = 0;
    if (two)
      for (int64_t j = i1 + 2; j < n; ++j) v12 += v1[j] * v2[j];
    int64_t q = 0;
    for (; q + 4 <= nvec; q += 4)
      sym_apply_pair<4>(n, kp, q * kSymL, i1, two, v1, v2, t1, t2, v12, Y);
    switch (nvec - q) {
      case 3: sym_apply_pair<3>(n, kp, q * kSymL, i1, two, v1, v2, t1, t2, v12, Y); break;
      case 2: sym_apply_pair<2>(n, kp, q * kSymL, i1, two, v1, v2, t1, t2, v12, Y); break;
      case 1: sym_apply_pair<1>(n, kp, q * kSymL, i1, two, v1, v2, t1, t2, v12, Y); break;
      default: break;
    }
  }
}

// ---- driver ----------------------------------------------------------------------------------

// The whole solve after the checks in sym_eig_top (symeig.cpp): n >= 2, 1 <= k <= n, the lower
// triangle finite and not all zero; amax = max|a_ij| over it.
void sym_eig_top_run(int64_t n, const double* a, int64_t lda, int64_t k, double* w,
                     double* z, int64_t ldz, double amax) {
  constexpr int kMaxSweeps = 8;  // inverse-iteration sweeps; typically 2
  // Power-of-two scaling to max|a_ij| in [0.5, 1): exact, keeps every intermediate far from
  // overflow and underflow, undone exactly on the eigenvalues at the end.
  int ex = 0;
  std::frexp(amax, &ex);
  const double scale = std::ldexp(1.0, -ex);
  const int64_t kp = (k + kSymL - 1) / kSymL * kSymL;  // lanes padded to whole vectors

  std::vector<double> buf(n * n + 9 * n + 6 * n * kp + n * k + 36 * kp + 8);
  // W on a 64-byte boundary: with l0 aligned, the fused loop's vectors then never split lines.
  double* W = buf.data() + (64 - reinterpret_cast<uintptr_t>(buf.data()) % 64) % 64 / 8;
  double* d = W + n * n;
  double* e = d + n;
  double* tau = e + n;
  double* work = tau + n;  // 5n: tridiagonalize 4n
  double* Y = work + 5 * n;  // n x kp: eigenvectors in lane layout
  double* r1 = Y + n * kp;
  double* u2 = r1 + n * kp;
  double* u3 = u2 + n * kp;
  double* ml = u3 + n * kp;
  double* sw = ml + n * kp;
  double* Yt = sw + n * kp;  // k x n: eigenvectors one per row, for Gram-Schmidt
  double* lam = Yt + n * k;  // kp
  double* kw = lam + kp;     // 3 kp: factor 2 kp, Gram-Schmidt k
  double* grow = kw + 3 * kp;  // kp
  double* bis = grow + kp;     // n + 16 kp: bisection

  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j <= i; ++j) W[i * n + j] = a[i * lda + j] * scale;
  sym_tridiagonalize(n, W, d, e, tau, work);
  const double tnorm = sym_top_eigenvalues(n, d, e, k, lam, bis);
  for (int64_t c = k; c < kp; ++c) lam[c] = lam[k - 1];  // padding lanes: harmless copies

  sym_factor(n, d, e, kp, lam, kSymUlp * tnorm, r1, u2, u3, ml, sw, kw, kw + kp);
  // Deterministic start in [-1, 1): 64-bit LCG (Knuth's MMIX constants), top 53 bits; the
  // padding lanes start at zero and stay there.
  uint64_t st = 0x853c49e6748fea9bULL;
  for (int64_t j = 0; j < n; ++j)
    for (int64_t c = 0; c < kp; ++c) {
      st = st * 6364136223846793005ULL + 1442695040888963407ULL;
      Y[j * kp + c] = c < k ? static_cast<double>(st >> 11) * 0x1p-52 - 1.0 : 0.0;
    }
  // Unit start columns, so that the growth of the first solve is measured from norm 1.
  std::fill(kw, kw + kp, 0.0);
  for (int64_t j = 0; j < n; ++j)
    for (int64_t c = 0; c < k; ++c) kw[c] += Y[j * kp + c] * Y[j * kp + c];
  for (int64_t c = 0; c < k; ++c) kw[c] = 1.0 / std::sqrt(kw[c]);
  for (int64_t j = 0; j < n; ++j)
    for (int64_t c = 0; c < k; ++c) Y[j * kp + c] *= kw[c];

  const double conv = 1.0 / (16.0 * static_cast<double>(n) * kSymUlp * tnorm);
  int extra = -1;  // sweeps left after convergence; -1 = not converged yet
  for (int sweep = 0; sweep < kMaxSweeps && extra != 0; ++sweep) {
    sym_solve(n, kp, r1, u2, u3, ml, sw, Y);
    for (int64_t j = 0; j < n; ++j)
      for (int64_t c = 0; c < k; ++c) Yt[c * n + j] = Y[j * kp + c];
    sym_orthonormalize(n, k, Yt, grow, kw);
    for (int64_t j = 0; j < n; ++j)
      for (int64_t c = 0; c < k; ++c) Y[j * kp + c] = Yt[c * n + j];
    if (extra > 0) {
      --extra;
    } else {
      bool all = true;
      for (int64_t c = 0; c < k; ++c) all &= grow[c] >= conv;
      if (all) extra = 1;
    }
  }
  sym_apply_q(n, kp, W, tau, Y);

  const double unscale = std::ldexp(1.0, ex);
  for (int64_t c = 0; c < k; ++c) w[c] = lam[c] * unscale;
  for (int64_t j = 0; j < n; ++j) std::memcpy(z + j * ldz, Y + j * kp, sizeof(double) * k);
}
