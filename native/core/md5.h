// MD5 message digest (RFC 1321), one-shot and batched.
//
// MD5 is not collision resistant; zserver uses it where ZServer4D did, as a fast
// content fingerprint (file sync, cache keys), never for authentication.
#ifndef ZS_MD5_H
#define ZS_MD5_H

#include <cstddef>
#include <cstdint>

extern "C" {

// Writes the 16-byte digest of data[0..len) to out.
void zs_md5(const uint8_t* data, size_t len, uint8_t out[16]);

// Digests n slices of one buffer: slice i is base[offsets[i] .. offsets[i] + lengths[i]).
// Writes 16 * n bytes to out, digest i at out + 16 * i. The caller has checked
// every slice against the buffer's size. Short slices are hashed eight at a
// time in AVX2 lanes where the CPU has AVX2.
void zs_md5_batch(const uint8_t* base, const uint32_t* offsets, const uint32_t* lengths,
                  size_t n, uint8_t* out);

}

#endif
