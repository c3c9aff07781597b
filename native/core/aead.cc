// See aead.h. The per-record path is: set the nonce on the live context (the
// key schedule stays in place), feed the associated data, the payload, finish,
// and read or set the tag: no allocation and no algorithm lookup per record.
#include "aead.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include <climits>
#include <cstring>

#include "kx.h"

struct zs_aead {
  EVP_CIPHER_CTX* ctx;
  int suite;
  int encrypt;
  bool has_secret;
  uint64_t seq;
  uint8_t iv[ZS_AEAD_IV_BYTES];
  uint8_t secret[ZS_AEAD_SECRET_BYTES];
};

namespace {

// Ciphers fetched once per process (see the file comment of kx.cc).
const EVP_CIPHER* Cipher(int suite) {
  static EVP_CIPHER* gcm = EVP_CIPHER_fetch(nullptr, "AES-256-GCM", nullptr);
  static EVP_CIPHER* chacha = EVP_CIPHER_fetch(nullptr, "ChaCha20-Poly1305", nullptr);
  if (suite == ZS_AEAD_AES_256_GCM) return gcm;
  if (suite == ZS_AEAD_CHACHA20_POLY1305) return chacha;
  return nullptr;
}

void Nonce(const zs_aead* a, uint64_t seq, uint8_t nonce[12]) {
  std::memcpy(nonce, a->iv, 12);
  for (int i = 0; i < 8; i++) nonce[11 - i] ^= static_cast<uint8_t>(seq >> (8 * i));
}

int Key(zs_aead* a, const uint8_t key[32], const uint8_t iv[12]) {
  std::memcpy(a->iv, iv, 12);
  a->seq = 0;
  return EVP_CipherInit_ex(a->ctx, nullptr, nullptr, key, nullptr, a->encrypt) == 1
             ? ZS_AEAD_OK
             : ZS_AEAD_ERR_CRYPTO;
}

int KeyFromSecret(zs_aead* a) {
  uint8_t key[32], iv[12];
  int rc = zs_traffic_keys(a->secret, key, iv) == ZS_KX_OK ? ZS_AEAD_OK : ZS_AEAD_ERR_CRYPTO;
  if (rc == ZS_AEAD_OK) rc = Key(a, key, iv);
  OPENSSL_cleanse(key, sizeof key);
  OPENSSL_cleanse(iv, sizeof iv);
  return rc;
}

int SealWith(zs_aead* a, const uint8_t nonce[12], const uint8_t* aad, size_t aad_len,
             const uint8_t* in, size_t len, uint8_t* out) {
  if (len > INT_MAX - 64 || aad_len > INT_MAX) return ZS_AEAD_ERR_LIMIT;
  EVP_CIPHER_CTX* c = a->ctx;
  int n = 0, m = 0;
  if (EVP_CipherInit_ex(c, nullptr, nullptr, nullptr, nonce, 1) != 1 ||
      (aad_len && EVP_CipherUpdate(c, nullptr, &n, aad, static_cast<int>(aad_len)) != 1) ||
      (len && EVP_CipherUpdate(c, out, &n, in, static_cast<int>(len)) != 1) ||
      EVP_CipherFinal_ex(c, out + (len ? n : 0), &m) != 1)
    return ZS_AEAD_ERR_CRYPTO;
  // The tag through the parameter interface directly: EVP_CIPHER_CTX_ctrl
  // would build the same parameter list on every call.
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_octet_string(OSSL_CIPHER_PARAM_AEAD_TAG, out + len, ZS_AEAD_TAG_BYTES),
      OSSL_PARAM_construct_end()};
  return EVP_CIPHER_CTX_get_params(c, params) == 1 ? ZS_AEAD_OK : ZS_AEAD_ERR_CRYPTO;
}

int OpenWith(zs_aead* a, const uint8_t nonce[12], const uint8_t* aad, size_t aad_len,
             const uint8_t* in, size_t len, uint8_t* out) {
  if (len < ZS_AEAD_TAG_BYTES) return ZS_AEAD_ERR_AUTH;
  if (len > INT_MAX - 64 || aad_len > INT_MAX) return ZS_AEAD_ERR_LIMIT;
  const size_t body = len - ZS_AEAD_TAG_BYTES;
  // The tag is copied out first because `out` may overlap `in`.
  uint8_t tag[ZS_AEAD_TAG_BYTES];
  std::memcpy(tag, in + body, sizeof tag);
  EVP_CIPHER_CTX* c = a->ctx;
  int n = 0, m = 0;
  OSSL_PARAM params[] = {OSSL_PARAM_construct_octet_string(OSSL_CIPHER_PARAM_AEAD_TAG, tag, sizeof tag),
                         OSSL_PARAM_construct_end()};
  if (EVP_CipherInit_ex(c, nullptr, nullptr, nullptr, nonce, 0) != 1 ||
      EVP_CIPHER_CTX_set_params(c, params) != 1 ||
      (aad_len && EVP_CipherUpdate(c, nullptr, &n, aad, static_cast<int>(aad_len)) != 1) ||
      (body && EVP_CipherUpdate(c, out, &n, in, static_cast<int>(body)) != 1))
    return ZS_AEAD_ERR_CRYPTO;
  if (EVP_CipherFinal_ex(c, out + (body ? n : 0), &m) == 1) return ZS_AEAD_OK;
  // Nothing of a record that failed may be used: wipe what decryption wrote
  // (when opening in place, that is the record itself, which is rejected anyway).
  if (body) std::memset(out, 0, body);
  return ZS_AEAD_ERR_AUTH;
}

zs_aead* Make(int suite, int encrypt) {
  const EVP_CIPHER* cipher = Cipher(suite);
  if (!cipher) return nullptr;
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  if (!ctx) return nullptr;
  if (EVP_CipherInit_ex(ctx, cipher, nullptr, nullptr, nullptr, encrypt ? 1 : 0) != 1) {
    EVP_CIPHER_CTX_free(ctx);
    return nullptr;
  }
  auto* a = new zs_aead{};
  a->ctx = ctx;
  a->suite = suite;
  a->encrypt = encrypt ? 1 : 0;
  return a;
}

inline uint8_t WireKind(uint8_t kind, uint8_t flags) {
  return static_cast<uint8_t>((kind & 0x3f) | ((flags & 3) << 6));
}

}  // namespace

extern "C" {

zs_aead* zs_aead_new(int suite, int encrypt, const uint8_t key[32], const uint8_t iv[12]) {
  zs_aead* a = Make(suite, encrypt);
  if (a && Key(a, key, iv) != ZS_AEAD_OK) {
    zs_aead_free(a);
    return nullptr;
  }
  return a;
}

zs_aead* zs_aead_new_secret(int suite, int encrypt, const uint8_t secret[32]) {
  zs_aead* a = Make(suite, encrypt);
  if (!a) return nullptr;
  std::memcpy(a->secret, secret, 32);
  a->has_secret = true;
  if (KeyFromSecret(a) != ZS_AEAD_OK) {
    zs_aead_free(a);
    return nullptr;
  }
  return a;
}

void zs_aead_free(zs_aead* a) {
  if (!a) return;
  EVP_CIPHER_CTX_free(a->ctx);
  OPENSSL_cleanse(a, sizeof *a);
  delete a;
}

int zs_aead_rekey(zs_aead* a) {
  if (!a->has_secret) return ZS_AEAD_ERR_CRYPTO;
  uint8_t next[32];
  if (zs_traffic_next(a->secret, next) != ZS_KX_OK) return ZS_AEAD_ERR_CRYPTO;
  std::memcpy(a->secret, next, 32);
  OPENSSL_cleanse(next, sizeof next);
  return KeyFromSecret(a);
}

uint64_t zs_aead_sequence(const zs_aead* a) { return a->seq; }

int zs_aead_seal(zs_aead* a, const uint8_t* aad, size_t aad_len, const uint8_t* in, size_t len,
                 uint8_t* out) {
  if (a->seq == UINT64_MAX) return ZS_AEAD_ERR_LIMIT;
  uint8_t nonce[12];
  Nonce(a, a->seq, nonce);
  const int rc = SealWith(a, nonce, aad, aad_len, in, len, out);
  if (rc == ZS_AEAD_OK) a->seq++;
  return rc;
}

int zs_aead_open(zs_aead* a, const uint8_t* aad, size_t aad_len, const uint8_t* in, size_t len,
                 uint8_t* out) {
  if (a->seq == UINT64_MAX) return ZS_AEAD_ERR_LIMIT;
  uint8_t nonce[12];
  Nonce(a, a->seq, nonce);
  const int rc = OpenWith(a, nonce, aad, aad_len, in, len, out);
  if (rc == ZS_AEAD_OK) a->seq++;
  return rc;
}

int zs_aead_seal_nonce(zs_aead* a, const uint8_t nonce[12], const uint8_t* aad, size_t aad_len,
                       const uint8_t* in, size_t len, uint8_t* out) {
  return SealWith(a, nonce, aad, aad_len, in, len, out);
}

int zs_aead_open_nonce(zs_aead* a, const uint8_t nonce[12], const uint8_t* aad, size_t aad_len,
                       const uint8_t* in, size_t len, uint8_t* out) {
  return OpenWith(a, nonce, aad, aad_len, in, len, out);
}

void zs_aead_record_header(uint32_t record_len, uint8_t kind, uint8_t flags, uint8_t out[5]) {
  out[0] = static_cast<uint8_t>(record_len);
  out[1] = static_cast<uint8_t>(record_len >> 8);
  out[2] = static_cast<uint8_t>(record_len >> 16);
  out[3] = static_cast<uint8_t>(record_len >> 24);
  out[4] = WireKind(kind, flags);
}

int zs_aead_seal_records(zs_aead* a, const uint8_t* base, const uint32_t* offsets,
                         const uint32_t* lengths, const uint8_t* kinds, const uint8_t* flags,
                         size_t n, uint8_t* out) {
  uint8_t header[ZS_AEAD_HEADER_BYTES];
  for (size_t i = 0; i < n; i++) {
    const uint32_t len = lengths[i];
    // A sealed record always travels with the Encrypted flag (bit 1).
    zs_aead_record_header(len + ZS_AEAD_TAG_BYTES, kinds[i], flags[i] | 2, header);
    int rc = zs_aead_seal(a, header, sizeof header, base + offsets[i], len, out);
    if (rc == ZS_AEAD_OK && kinds[i] == ZS_AEAD_REKEY_KIND) rc = zs_aead_rekey(a);
    if (rc != ZS_AEAD_OK) return rc;
    out += len + ZS_AEAD_TAG_BYTES;
  }
  return ZS_AEAD_OK;
}

long zs_aead_open_records(zs_aead* a, const uint8_t* base, const uint32_t* offsets,
                          const uint32_t* lengths, const uint8_t* kinds, const uint8_t* flags,
                          size_t n, uint8_t* out) {
  uint8_t header[ZS_AEAD_HEADER_BYTES];
  for (size_t i = 0; i < n; i++) {
    const uint32_t len = lengths[i];
    // A rekey record carries nothing but its tag.
    if (len < ZS_AEAD_TAG_BYTES || (kinds[i] == ZS_AEAD_REKEY_KIND && len != ZS_AEAD_TAG_BYTES))
      return static_cast<long>(i);
    zs_aead_record_header(len, kinds[i], flags[i], header);
    int rc = zs_aead_open(a, header, sizeof header, base + offsets[i], len, out);
    if (rc == ZS_AEAD_ERR_AUTH) return static_cast<long>(i);
    if (rc == ZS_AEAD_OK && kinds[i] == ZS_AEAD_REKEY_KIND) rc = zs_aead_rekey(a);
    if (rc != ZS_AEAD_OK) return rc;
    out += len - ZS_AEAD_TAG_BYTES;
  }
  return static_cast<long>(n);
}

}  // extern "C"
