// Argument checks shared by every native kernel.
//
// BM_CHECK(cond, msg...) throws std::invalid_argument with file:line and the message when cond is
// false; pybind11 turns it into a Python ValueError. Native code never calls exit() or abort():
// every size is checked here before memory is touched, even though ops/ checked it first.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace bm {

template <typename... Args>
std::string str_cat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}

}  // namespace bm

#define BM_CHECK(cond, ...)                                                              \
  do {                                                                                   \
    if (!(cond))                                                                         \
      throw std::invalid_argument(::bm::str_cat(__VA_ARGS__, " [", __FILE__, ":", __LINE__, "]")); \
  } while (0)

#define BM_RUNTIME_CHECK(cond, ...)                                                      \
  do {                                                                                   \
    if (!(cond))                                                                         \
      throw std::runtime_error(::bm::str_cat(__VA_ARGS__, " [", __FILE__, ":", __LINE__, "]")); \
  } while (0)
