// Key exchange and key derivation of the secure channel, through OpenSSL's EVP
// interface: X25519 ephemeral keys, Ed25519 server identity signatures,
// SHA-256 and HKDF-SHA256 (RFC 5869), and the key schedule built from them.
//
// Algorithms are fetched once per process; per-call work is the cryptography
// plus the small EVP objects OpenSSL needs for it. The message layouts are in
// docs/security.md; TypeScript (lib/channel/handshake.ts) checks messages and
// drives the exchange, this file only computes.
#ifndef ZS_KX_H
#define ZS_KX_H

#include <cstddef>
#include <cstdint>

extern "C" {

enum {
  ZS_KX_OK = 0,
  ZS_KX_ERR_CRYPTO = -1,     // OpenSSL failed or a key was rejected (low-order X25519 point)
  ZS_KX_ERR_SIGNATURE = -2,  // the server's signature did not verify
  ZS_KX_ERR_INPUT = -3,      // a length is wrong
};

enum {
  ZS_KX_PUBLIC_BYTES = 32,
  ZS_KX_SIGNATURE_BYTES = 64,
  // ServerHello: version, suite, ephemeral key, identity key, signature.
  ZS_KX_SERVER_HELLO_BYTES = 2 + 32 + 32 + 64,
  ZS_KX_SIGNED_BYTES = 2 + 32 + 32,  // the part of ServerHello inside the transcript
};

// SHA-256 of data.
int zs_sha256(const uint8_t* data, size_t len, uint8_t out[32]);

// HKDF-Extract(salt, ikm) -> 32-byte PRK, and HKDF-Expand(prk, info) -> out_len bytes.
int zs_hkdf_extract(const uint8_t* salt, size_t salt_len, const uint8_t* ikm, size_t ikm_len,
                    uint8_t prk[32]);
int zs_hkdf_expand(const uint8_t* prk, size_t prk_len, const char* info, uint8_t* out,
                   size_t out_len);

// The record key (32) and IV (12) of a traffic secret: HKDF-Expand(secret, "zs1 traffic", 44).
int zs_traffic_keys(const uint8_t secret[32], uint8_t key[32], uint8_t iv[12]);
// The traffic secret after a rekey: HKDF-Expand(secret, "zs1 rekey", 32).
int zs_traffic_next(const uint8_t secret[32], uint8_t next[32]);

// A fresh X25519 key pair from RAND_bytes.
int zs_x25519_keypair(uint8_t private_key[32], uint8_t public_key[32]);
// X25519(private, peer_public); fails on an all-zero result (low-order point).
int zs_x25519_shared(const uint8_t private_key[32], const uint8_t peer_public[32],
                     uint8_t shared[32]);

// An Ed25519 key held for repeated signing (the server identity).
typedef struct zs_ed25519 zs_ed25519;
zs_ed25519* zs_ed25519_new(const uint8_t seed[32]);
void zs_ed25519_free(zs_ed25519* key);
void zs_ed25519_public(const zs_ed25519* key, uint8_t public_key[32]);
int zs_ed25519_sign(zs_ed25519* key, const uint8_t* msg, size_t len, uint8_t sig[64]);
int zs_ed25519_verify(const uint8_t public_key[32], const uint8_t* msg, size_t len,
                      const uint8_t sig[64]);

// The server's whole share of a handshake in one call: a fresh ephemeral key,
// key agreement with the client's key (the last 32 bytes of client_hello), the
// transcript hash, the identity signature, and the two traffic secrets.
// Writes ServerHello (ZS_KX_SERVER_HELLO_BYTES) and secrets (client-to-server
// then server-to-client, 32 bytes each). The caller has checked client_hello.
int zs_kx_server(zs_ed25519* identity, uint8_t version, uint8_t suite, const uint8_t* client_hello,
                 size_t client_hello_len, uint8_t server_hello[130], uint8_t secrets[64]);

// The client's share after ServerHello: checks the signature with the identity
// key inside server_hello and derives the same two secrets. The client's
// public key is the last 32 bytes of client_hello.
int zs_kx_client(const uint8_t private_key[32], const uint8_t* client_hello,
                 size_t client_hello_len, const uint8_t server_hello[130], uint8_t secrets[64]);

}

#endif
