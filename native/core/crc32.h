// CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320) and CRC-32C
// (Castagnoli, reflected polynomial 0x82F63B78).
//
// Both take the previous checksum so that a long input can be fed in pieces:
// start from 0; zs_crc32(zs_crc32(0, a), b) == zs_crc32(0, a || b).
// Check values: zs_crc32(0, "123456789") = 0xCBF43926,
//               zs_crc32c(0, "123456789") = 0xE3069283.
#ifndef ZS_CRC32_H
#define ZS_CRC32_H

#include <cstddef>
#include <cstdint>

extern "C" {

uint32_t zs_crc32(uint32_t crc, const uint8_t* data, size_t len);
// Uses the CPU's crc32 instruction (SSE4.2) on three interleaved streams where
// available, a slicing-by-8 table otherwise.
uint32_t zs_crc32c(uint32_t crc, const uint8_t* data, size_t len);
// The table path of zs_crc32c, exported so tests can compare both paths.
uint32_t zs_crc32c_sw(uint32_t crc, const uint8_t* data, size_t len);

}

#endif
