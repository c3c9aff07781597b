// See cpu.h. __builtin_cpu_supports reads cpuid once per process (GCC and Clang).
#include "cpu.h"

namespace zs {

#if defined(__x86_64__) || defined(__i386__)
bool cpu_has_sse42() {
  static const bool has = __builtin_cpu_supports("sse4.2");
  return has;
}
bool cpu_has_avx2() {
  static const bool has = __builtin_cpu_supports("avx2");
  return has;
}
#else
bool cpu_has_sse42() { return false; }
bool cpu_has_avx2() { return false; }
#endif

}  // namespace zs
