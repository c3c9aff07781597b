// AEAD records of the secure channel: AES-256-GCM and ChaCha20-Poly1305 through
// OpenSSL's EVP interface (the libcrypto that Node exports; no crypto of our own).
//
// A zs_aead is one direction of one connection: one EVP_CIPHER_CTX kept alive,
// keyed once, with only the nonce changing per record. The nonce of record n is
// the 12-byte IV XOR n (n as a 64-bit big-endian number in the last 8 bytes), as
// in TLS 1.3, so a replayed, dropped or reordered record fails authentication.
//
// The record layer on top (zs_aead_*_records) seals and opens many frames of
// one peer in one call, with the frame header as associated data, and moves to
// the next traffic key in-line when it meets a rekey record (docs/security.md).
#ifndef ZS_AEAD_H
#define ZS_AEAD_H

#include <cstddef>
#include <cstdint>

extern "C" {

enum {
  ZS_AEAD_AES_256_GCM = 1,
  ZS_AEAD_CHACHA20_POLY1305 = 2,
};

enum {
  ZS_AEAD_KEY_BYTES = 32,
  ZS_AEAD_IV_BYTES = 12,
  ZS_AEAD_TAG_BYTES = 16,
  ZS_AEAD_SECRET_BYTES = 32,
  // Associated data of a record: the frame's length (u32 LE) and kind/flags byte.
  ZS_AEAD_HEADER_BYTES = 5,
  // Frame kind of the in-band rekey record (docs/security.md).
  ZS_AEAD_REKEY_KIND = 5,
};

// Result codes.
enum {
  ZS_AEAD_OK = 0,
  ZS_AEAD_ERR_AUTH = -1,     // the tag did not verify, or a record is shorter than a tag
  ZS_AEAD_ERR_CRYPTO = -2,   // OpenSSL failed (allocation, unavailable cipher)
  ZS_AEAD_ERR_SUITE = -3,    // unknown suite id
  ZS_AEAD_ERR_LIMIT = -4,    // the sequence number would wrap
};

typedef struct zs_aead zs_aead;

// A context for one direction: encrypt != 0 seals, else opens. The key and IV
// are taken as given (sequence number 0). Returns NULL on failure.
zs_aead* zs_aead_new(int suite, int encrypt, const uint8_t key[32], const uint8_t iv[12]);

// A context whose key and IV derive from a 32-byte traffic secret (see
// zs_traffic_keys in kx.h); the secret is kept so that zs_aead_rekey can move on.
zs_aead* zs_aead_new_secret(int suite, int encrypt, const uint8_t secret[32]);

void zs_aead_free(zs_aead* ctx);

// Moves to the next traffic secret (HKDF-Expand of the current one with a fixed
// label), re-keys the cipher and resets the sequence number to 0.
int zs_aead_rekey(zs_aead* ctx);

// The number of records sealed or opened under the current key.
uint64_t zs_aead_sequence(const zs_aead* ctx);

// Seals `len` bytes of `in` into `out` (len + 16 bytes: ciphertext then tag)
// with the next sequence number. `in` and `out` may be the same pointer.
int zs_aead_seal(zs_aead* ctx, const uint8_t* aad, size_t aad_len, const uint8_t* in, size_t len,
                 uint8_t* out);

// Opens a record of `len` bytes (ciphertext then 16-byte tag) into `out`
// (len - 16 bytes). The sequence number advances only on success; on failure
// `out` is zeroed, so no unauthenticated plaintext is left behind.
int zs_aead_open(zs_aead* ctx, const uint8_t* aad, size_t aad_len, const uint8_t* in, size_t len,
                 uint8_t* out);

// Like seal/open but with an explicit 12-byte nonce and no sequence number:
// for published test vectors only.
int zs_aead_seal_nonce(zs_aead* ctx, const uint8_t nonce[12], const uint8_t* aad, size_t aad_len,
                       const uint8_t* in, size_t len, uint8_t* out);
int zs_aead_open_nonce(zs_aead* ctx, const uint8_t nonce[12], const uint8_t* aad, size_t aad_len,
                       const uint8_t* in, size_t len, uint8_t* out);

// Writes the 5-byte record header (associated data) of a frame whose payload
// is `record_len` bytes, of kind `kind` with wire flag bits `flags` (bit 0
// compressed, bit 1 encrypted): u32 LE length, then kind | flags << 6.
void zs_aead_record_header(uint32_t record_len, uint8_t kind, uint8_t flags, uint8_t out[5]);

// Seals n frames of one peer: frame i is kinds[i], flags[i] (the Encrypted
// bit is added to the header whether set or not), plaintext
// base[offsets[i] .. + lengths[i]). Record i (lengths[i] + 16 bytes) is written
// to out at the sum of the previous record sizes. After sealing a frame of
// kind ZS_AEAD_REKEY_KIND the context moves to the next key. The caller has
// checked every slice and sized out. Returns ZS_AEAD_OK or an error code.
int zs_aead_seal_records(zs_aead* ctx, const uint8_t* base, const uint32_t* offsets,
                         const uint32_t* lengths, const uint8_t* kinds, const uint8_t* flags,
                         size_t n, uint8_t* out);

// Opens n records of one peer (laid out as the transport delivered them).
// Plaintext i goes to out at the sum of the previous plaintext sizes. A record
// of kind ZS_AEAD_REKEY_KIND switches to the next key after it verifies.
// Returns n when every record verified, else the index of the first record
// that did not (records before it are opened; nothing of it is kept), or a
// negative error code.
long zs_aead_open_records(zs_aead* ctx, const uint8_t* base, const uint32_t* offsets,
                          const uint32_t* lengths, const uint8_t* kinds, const uint8_t* flags,
                          size_t n, uint8_t* out);

}

#endif
