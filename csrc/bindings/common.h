// Helpers shared by the pybind11 bindings: dtype and shape checks that raise ValueError /
// TypeError naming the argument, and NumPy byte strides converted to element strides.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>
#include <vector>

#include "common/check.h"

namespace bm::py_util {
namespace py = pybind11;

inline std::string shape_str(const py::array& a) {
  std::string s = "(";
  for (py::ssize_t i = 0; i < a.ndim(); ++i) s += (i ? ", " : "") + std::to_string(a.shape(i));
  if (a.ndim() == 1) s += ",";
  return s + ")";
}

// Element strides of `a`; throws if a byte stride is not a whole number of elements.
inline std::vector<int64_t> elem_strides(const py::array& a, const char* name) {
  std::vector<int64_t> s(a.ndim());
  for (py::ssize_t i = 0; i < a.ndim(); ++i) {
    BM_CHECK(a.strides(i) % static_cast<py::ssize_t>(a.itemsize()) == 0, name,
             ": strides must be multiples of the item size");
    s[i] = a.strides(i) / static_cast<py::ssize_t>(a.itemsize());
  }
  return s;
}

inline void check_ndim(const py::array& a, int ndim, const char* name) {
  BM_CHECK(a.ndim() == ndim, name, ": expected ", ndim, "-D array, got shape ", shape_str(a));
}

template <typename T>
inline bool is_dtype(const py::array& a) {
  return a.dtype().is(py::dtype::of<T>());
}

inline void check_writeable(const py::array& a, const char* name) {
  BM_CHECK(a.writeable(), name, ": array is read-only");
}

}  // namespace bm::py_util
