// A minimal test harness for the native core: TEST(name) registers a function,
// CHECK(cond) and CHECK_EQ(a, b) record failures without stopping the test.
// main.cc runs every registered test and prints "N passed, N failed".
#ifndef ZS_TEST_CHECK_H
#define ZS_TEST_CHECK_H

#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

namespace zs_test {

struct Case {
  const char* name;
  std::function<void()> fn;
};

std::vector<Case>& registry();
// Failures recorded in the current test.
extern int current_failures;

struct Registrar {
  Registrar(const char* name, std::function<void()> fn) { registry().push_back({name, std::move(fn)}); }
};

inline void fail(const char* file, int line, const std::string& what) {
  std::fprintf(stderr, "  %s:%d: %s\n", file, line, what.c_str());
  current_failures++;
}

template <typename T>
std::string show(const T& v) {
  if constexpr (std::is_integral_v<T>) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%llu (0x%llx)", static_cast<unsigned long long>(v),
                  static_cast<unsigned long long>(v));
    return buf;
  } else {
    return std::string(v);
  }
}

}  // namespace zs_test

#define ZS_CAT2(a, b) a##b
#define ZS_CAT(a, b) ZS_CAT2(a, b)
#define TEST(name)                                                                   \
  static void ZS_CAT(test_, name)();                                                 \
  static zs_test::Registrar ZS_CAT(registrar_, name)(#name, ZS_CAT(test_, name));    \
  static void ZS_CAT(test_, name)()

#define CHECK(cond) \
  do {              \
    if (!(cond)) zs_test::fail(__FILE__, __LINE__, "CHECK(" #cond ") failed"); \
  } while (0)

#define CHECK_EQ(a, b)                                                                          \
  do {                                                                                          \
    auto zs_a = (a);                                                                            \
    auto zs_b = (b);                                                                            \
    if (!(zs_a == zs_b))                                                                        \
      zs_test::fail(__FILE__, __LINE__,                                                         \
                    std::string(#a " == " #b ": ") + zs_test::show(zs_a) + " vs " + zs_test::show(zs_b)); \
  } while (0)

#endif
