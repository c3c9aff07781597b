// xxHash64 (the XXH64 algorithm of the xxHash specification, version 0.1.x).
// A fast non-cryptographic 64-bit hash for hash tables and integrity checks.
#ifndef ZS_XXH64_H
#define ZS_XXH64_H

#include <cstddef>
#include <cstdint>

extern "C" {

// Check value: zs_xxh64("", 0, 0) = 0xEF46DB3751D8E999.
uint64_t zs_xxh64(const uint8_t* data, size_t len, uint64_t seed);

}

#endif
