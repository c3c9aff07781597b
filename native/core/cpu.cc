// See cpu.h. __builtin_cpu_supports reads cpuid once per process (GCC and
// Clang). Clang's __builtin_cpu_supports does not know "lzcnt" (clang 14 and 16
// reject it at compile time), so those bits are read with <cpuid.h>, which
// GCC and Clang both ship.
#include "cpu.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

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

namespace {

// LZCNT is CPUID.80000001H:ECX bit 5 (AMD calls it ABM; Intel reports the same
// bit); BMI1 and BMI2 are CPUID.(EAX=07H, ECX=0):EBX bits 3 and 8. None of them
// uses new registers, so no OS (XSAVE) support has to be checked.
bool DetectLzcntBmi2() {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (!__get_cpuid(0x80000001u, &eax, &ebx, &ecx, &edx)) return false;
  const bool lzcnt = (ecx >> 5) & 1;
  if (__get_cpuid_max(0, nullptr) < 7) return false;
  __cpuid_count(7, 0, eax, ebx, ecx, edx);
  const bool bmi1 = (ebx >> 3) & 1;
  const bool bmi2 = (ebx >> 8) & 1;
  return lzcnt && bmi1 && bmi2;
}

}  // namespace

bool cpu_has_lzcnt_bmi2() {
  static const bool has = DetectLzcntBmi2();
  return has;
}
#else
bool cpu_has_sse42() { return false; }
bool cpu_has_avx2() { return false; }
bool cpu_has_lzcnt_bmi2() { return false; }
#endif

}  // namespace zs
