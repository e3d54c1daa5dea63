// pybind11 glue for the small dense symmetric eigensolver (sym_eig_top). Argument checks, GIL
// release, no math.
#include <cmath>

#include "bindings/common.h"
#include "cpu/symeig.h"

namespace py = pybind11;
using namespace bm::py_util;

namespace {

// (w, z): the k largest eigenvalues of the symmetric a (descending) and their orthonormal
// eigenvectors as columns of z (n, k). Only the lower triangle of a is used.
py::tuple sym_eig_top(const py::array& a, int64_t k) {
  if (!is_dtype<double>(a))
    throw py::type_error("sym_eig_top: a must be float64, got dtype " +
                         std::string(py::str(a.dtype())));
  check_ndim(a, 2, "sym_eig_top: a");
  const int64_t n = a.shape(0);
  BM_CHECK(a.shape(1) == n && n >= 1,
           "sym_eig_top: a must be a non-empty square matrix, got shape ", shape_str(a));
  BM_CHECK(k >= 1 && k <= n, "sym_eig_top: k must be in [1, n], got k=", k, " for n=", n);
  // A C-contiguous copy only when needed (views, Fortran order); the kernel reads rows.
  const auto ac = py::array_t<double, py::array::c_style | py::array::forcecast>::ensure(a);
  BM_CHECK(ac, "sym_eig_top: could not make a contiguous copy of a");
  const double* pa = ac.data();
  for (int64_t i = 0; i < n * n; ++i)
    BM_CHECK(std::isfinite(pa[i]), "sym_eig_top: a has a non-finite entry at (", i / n, ", ",
             i % n, ")");
  py::array_t<double> w(k), z({n, k});
  double* pw = w.mutable_data();
  double* pz = z.mutable_data();
  {
    py::gil_scoped_release nogil;
    bm::sym_eig_top(n, pa, n, k, pw, pz, k);
  }
  return py::make_tuple(w, z);
}

}  // namespace

void bind_symeig(py::module_& m) {
  m.def("sym_eig_top", &sym_eig_top, py::arg("a"), py::arg("k"),
        "(w, z) = the k largest eigenvalues of the symmetric float64 matrix a (n, n), in "
        "descending order, and the matching orthonormal eigenvectors as the columns of z (n, k). "
        "Only the lower triangle of a is read; a non-contiguous a is copied. Deterministic, "
        "single-threaded; releases the GIL. For n up to a few hundred (block Lanczos).");
}
