// CPU feature detection for the runtime dispatch of hot paths.
//
// Each query is answered once and cached; the answers come from the compiler's
// cpuid wrappers (__builtin_cpu_supports, <cpuid.h>), so no inline assembly
// lives here. Non-x86 builds answer false and every caller falls back to its
// portable code.
#ifndef ZS_CPU_H
#define ZS_CPU_H

namespace zs {

// True when the CPU executes SSE4.2 (the crc32 instruction used for CRC32C).
bool cpu_has_sse42();
// True when the CPU executes AVX2 (8 x 32-bit lanes, used by multi-buffer MD5).
bool cpu_has_avx2();
// True when the CPU executes LZCNT, BMI1 and BMI2 (used by the BRRC coder).
bool cpu_has_lzcnt_bmi2();

}  // namespace zs

#endif
