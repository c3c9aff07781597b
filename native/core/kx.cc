// See kx.h. Every OpenSSL object made here is freed on every path; secrets on
// the stack are wiped with OPENSSL_cleanse before returning.
#include "kx.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include <cstring>

struct zs_ed25519 {
  EVP_PKEY* pkey;
  uint8_t public_key[32];
};

namespace {

// Algorithms fetched once: OpenSSL 3 looks names up in its provider tables on
// every implicit fetch, which costs more than hashing a short message.
EVP_MD* Sha256() {
  static EVP_MD* md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  return md;
}

EVP_KDF* Hkdf() {
  static EVP_KDF* kdf = EVP_KDF_fetch(nullptr, "HKDF", nullptr);
  return kdf;
}

// The domain-separation prefix of the server's signature (docs/security.md).
const char kSignLabel[] = "zs1 server signature";
constexpr size_t kSignLabelLen = sizeof kSignLabel - 1;

int HkdfRun(int mode, const uint8_t* key, size_t key_len, const uint8_t* salt, size_t salt_len,
            const char* info, uint8_t* out, size_t out_len) {
  // OpenSSL 3.0's HKDF cannot duplicate a context, so each derivation makes
  // one from the cached algorithm and names its digest again.
  EVP_KDF* kdf = Hkdf();
  if (!kdf) return ZS_KX_ERR_CRYPTO;
  EVP_KDF_CTX* ctx = EVP_KDF_CTX_new(kdf);
  if (!ctx) return ZS_KX_ERR_CRYPTO;
  char digest[] = "SHA256";
  OSSL_PARAM params[6];
  size_t p = 0;
  params[p++] = OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode);
  params[p++] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0);
  params[p++] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, const_cast<uint8_t*>(key), key_len);
  if (salt) params[p++] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, const_cast<uint8_t*>(salt), salt_len);
  if (info) params[p++] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, const_cast<char*>(info), std::strlen(info));
  params[p] = OSSL_PARAM_construct_end();
  const int ok = EVP_KDF_derive(ctx, out, out_len, params);
  EVP_KDF_CTX_free(ctx);
  return ok == 1 ? ZS_KX_OK : ZS_KX_ERR_CRYPTO;
}

// Transcript hash: SHA-256(ClientHello || ServerHello[0 .. ZS_KX_SIGNED_BYTES)).
int TranscriptHash(const uint8_t* client_hello, size_t client_len, const uint8_t* server_signed,
                   uint8_t out[32]) {
  EVP_MD_CTX* md = EVP_MD_CTX_new();
  unsigned int n = 0;
  const int ok = md && EVP_DigestInit_ex(md, Sha256(), nullptr) == 1 &&
                 EVP_DigestUpdate(md, client_hello, client_len) == 1 &&
                 EVP_DigestUpdate(md, server_signed, ZS_KX_SIGNED_BYTES) == 1 &&
                 EVP_DigestFinal_ex(md, out, &n) == 1;
  EVP_MD_CTX_free(md);
  return ok ? ZS_KX_OK : ZS_KX_ERR_CRYPTO;
}

// The signed message: label || transcript hash.
void SignedMessage(const uint8_t th[32], uint8_t out[kSignLabelLen + 32]) {
  std::memcpy(out, kSignLabel, kSignLabelLen);
  std::memcpy(out + kSignLabelLen, th, 32);
}

// Both traffic secrets from the shared secret and the transcript hash.
int Secrets(const uint8_t shared[32], const uint8_t th[32], uint8_t secrets[64]) {
  uint8_t prk[32];
  int rc = zs_hkdf_extract(th, 32, shared, 32, prk);
  if (rc == ZS_KX_OK) rc = zs_hkdf_expand(prk, 32, "zs1 secrets", secrets, 64);
  OPENSSL_cleanse(prk, sizeof prk);
  return rc;
}

// A fresh X25519 key from RAND_bytes (X25519 clamps the bytes itself): cheaper
// than EVP_PKEY_keygen, which builds a key-generation context per call. OpenSSL
// computes the public key when the key is made, so the server keeps this one
// EVP_PKEY for the key agreement instead of making it again from raw bytes.
EVP_PKEY* X25519Generate(uint8_t private_key[32], uint8_t public_key[32]) {
  if (RAND_bytes(private_key, 32) != 1) return nullptr;
  EVP_PKEY* key = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, nullptr, private_key, 32);
  size_t n = 32;
  if (key && (EVP_PKEY_get_raw_public_key(key, public_key, &n) != 1 || n != 32)) {
    EVP_PKEY_free(key);
    return nullptr;
  }
  return key;
}

int X25519Derive(EVP_PKEY* mine, const uint8_t peer_public[32], uint8_t shared[32]) {
  EVP_PKEY* peer = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, nullptr, peer_public, 32);
  EVP_PKEY_CTX* ctx = peer ? EVP_PKEY_CTX_new(mine, nullptr) : nullptr;
  size_t n = 32;
  // OpenSSL's X25519 derive fails when the result is all zeros, which is what a
  // low-order peer key produces; we treat that as a failed handshake.
  const int ok = ctx && EVP_PKEY_derive_init(ctx) == 1 && EVP_PKEY_derive_set_peer(ctx, peer) == 1 &&
                 EVP_PKEY_derive(ctx, shared, &n) == 1 && n == 32;
  EVP_PKEY_CTX_free(ctx);
  EVP_PKEY_free(peer);
  return ok ? ZS_KX_OK : ZS_KX_ERR_CRYPTO;
}

// An X25519 key from its private and public halves. Given both, OpenSSL does
// not recompute the public key (a scalar multiplication), which
// EVP_PKEY_new_raw_private_key always does: the client already knows its
// public key from its ClientHello.
EVP_PKEY* X25519FromPair(const uint8_t private_key[32], const uint8_t public_key[32]) {
  EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_from_name(nullptr, "X25519", nullptr);
  EVP_PKEY* key = nullptr;
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PRIV_KEY, const_cast<uint8_t*>(private_key), 32),
      OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, const_cast<uint8_t*>(public_key), 32),
      OSSL_PARAM_construct_end()};
  if (!ctx || EVP_PKEY_fromdata_init(ctx) != 1 || EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_KEYPAIR, params) != 1)
    key = nullptr;
  EVP_PKEY_CTX_free(ctx);
  return key;
}

}  // namespace

extern "C" {

int zs_sha256(const uint8_t* data, size_t len, uint8_t out[32]) {
  return EVP_Digest(data, len, out, nullptr, Sha256(), nullptr) == 1 ? ZS_KX_OK : ZS_KX_ERR_CRYPTO;
}

int zs_hkdf_extract(const uint8_t* salt, size_t salt_len, const uint8_t* ikm, size_t ikm_len,
                    uint8_t prk[32]) {
  return HkdfRun(EVP_KDF_HKDF_MODE_EXTRACT_ONLY, ikm, ikm_len, salt, salt_len, nullptr, prk, 32);
}

int zs_hkdf_expand(const uint8_t* prk, size_t prk_len, const char* info, uint8_t* out,
                   size_t out_len) {
  return HkdfRun(EVP_KDF_HKDF_MODE_EXPAND_ONLY, prk, prk_len, nullptr, 0, info, out, out_len);
}

int zs_traffic_keys(const uint8_t secret[32], uint8_t key[32], uint8_t iv[12]) {
  uint8_t both[44];
  const int rc = zs_hkdf_expand(secret, 32, "zs1 traffic", both, sizeof both);
  if (rc == ZS_KX_OK) {
    std::memcpy(key, both, 32);
    std::memcpy(iv, both + 32, 12);
  }
  OPENSSL_cleanse(both, sizeof both);
  return rc;
}

int zs_traffic_next(const uint8_t secret[32], uint8_t next[32]) {
  return zs_hkdf_expand(secret, 32, "zs1 rekey", next, 32);
}

int zs_x25519_keypair(uint8_t private_key[32], uint8_t public_key[32]) {
  EVP_PKEY* key = X25519Generate(private_key, public_key);
  EVP_PKEY_free(key);
  return key ? ZS_KX_OK : ZS_KX_ERR_CRYPTO;
}

int zs_x25519_shared(const uint8_t private_key[32], const uint8_t peer_public[32],
                     uint8_t shared[32]) {
  EVP_PKEY* mine = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, nullptr, private_key, 32);
  const int rc = mine ? X25519Derive(mine, peer_public, shared) : ZS_KX_ERR_CRYPTO;
  EVP_PKEY_free(mine);
  return rc;
}

zs_ed25519* zs_ed25519_new(const uint8_t seed[32]) {
  EVP_PKEY* pkey = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nullptr, seed, 32);
  if (!pkey) return nullptr;
  auto* key = new zs_ed25519{pkey, {}};
  size_t n = 32;
  if (EVP_PKEY_get_raw_public_key(pkey, key->public_key, &n) != 1 || n != 32) {
    zs_ed25519_free(key);
    return nullptr;
  }
  return key;
}

void zs_ed25519_free(zs_ed25519* key) {
  if (!key) return;
  EVP_PKEY_free(key->pkey);
  delete key;
}

void zs_ed25519_public(const zs_ed25519* key, uint8_t public_key[32]) {
  std::memcpy(public_key, key->public_key, 32);
}

int zs_ed25519_sign(zs_ed25519* key, const uint8_t* msg, size_t len, uint8_t sig[64]) {
  EVP_MD_CTX* md = EVP_MD_CTX_new();
  size_t n = 64;
  const int ok = md && EVP_DigestSignInit(md, nullptr, nullptr, nullptr, key->pkey) == 1 &&
                 EVP_DigestSign(md, sig, &n, msg, len) == 1 && n == 64;
  EVP_MD_CTX_free(md);
  return ok ? ZS_KX_OK : ZS_KX_ERR_CRYPTO;
}

int zs_ed25519_verify(const uint8_t public_key[32], const uint8_t* msg, size_t len,
                      const uint8_t sig[64]) {
  EVP_PKEY* pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr, public_key, 32);
  EVP_MD_CTX* md = pkey ? EVP_MD_CTX_new() : nullptr;
  if (!md) {
    EVP_PKEY_free(pkey);
    return ZS_KX_ERR_CRYPTO;
  }
  int rc = ZS_KX_ERR_CRYPTO;
  if (EVP_DigestVerifyInit(md, nullptr, nullptr, nullptr, pkey) == 1)
    rc = EVP_DigestVerify(md, sig, 64, msg, len) == 1 ? ZS_KX_OK : ZS_KX_ERR_SIGNATURE;
  EVP_MD_CTX_free(md);
  EVP_PKEY_free(pkey);
  return rc;
}

int zs_kx_server(zs_ed25519* identity, uint8_t version, uint8_t suite, const uint8_t* client_hello,
                 size_t client_hello_len, uint8_t server_hello[130], uint8_t secrets[64]) {
  if (client_hello_len < 32) return ZS_KX_ERR_INPUT;
  uint8_t priv[32], shared[32], th[32], msg[kSignLabelLen + 32];
  server_hello[0] = version;
  server_hello[1] = suite;
  EVP_PKEY* eph = X25519Generate(priv, server_hello + 2);
  int rc = eph ? X25519Derive(eph, client_hello + client_hello_len - 32, shared) : ZS_KX_ERR_CRYPTO;
  EVP_PKEY_free(eph);
  if (rc == ZS_KX_OK) {
    std::memcpy(server_hello + 34, identity->public_key, 32);
    rc = TranscriptHash(client_hello, client_hello_len, server_hello, th);
  }
  if (rc == ZS_KX_OK) {
    SignedMessage(th, msg);
    rc = zs_ed25519_sign(identity, msg, sizeof msg, server_hello + ZS_KX_SIGNED_BYTES);
  }
  if (rc == ZS_KX_OK) rc = Secrets(shared, th, secrets);
  OPENSSL_cleanse(priv, sizeof priv);
  OPENSSL_cleanse(shared, sizeof shared);
  return rc;
}

int zs_kx_client(const uint8_t private_key[32], const uint8_t* client_hello,
                 size_t client_hello_len, const uint8_t server_hello[130], uint8_t secrets[64]) {
  if (client_hello_len < 32) return ZS_KX_ERR_INPUT;
  uint8_t th[32], msg[kSignLabelLen + 32], shared[32];
  int rc = TranscriptHash(client_hello, client_hello_len, server_hello, th);
  if (rc == ZS_KX_OK) {
    SignedMessage(th, msg);
    rc = zs_ed25519_verify(server_hello + 34, msg, sizeof msg, server_hello + ZS_KX_SIGNED_BYTES);
  }
  if (rc == ZS_KX_OK) {
    EVP_PKEY* mine = X25519FromPair(private_key, client_hello + client_hello_len - 32);
    rc = mine ? X25519Derive(mine, server_hello + 2, shared) : ZS_KX_ERR_CRYPTO;
    EVP_PKEY_free(mine);
  }
  if (rc == ZS_KX_OK) rc = Secrets(shared, th, secrets);
  OPENSSL_cleanse(shared, sizeof shared);
  return rc;
}

}  // extern "C"
