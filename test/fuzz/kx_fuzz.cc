// libFuzzer target: the native handshake computations (native/core/kx.h) on
// messages a peer controls. The message layouts are checked in TypeScript
// (lib/channel/handshake.ts); what reaches C++ is the ClientHello's last 32
// bytes (the client's X25519 key) on the server, and the whole 130-byte
// ServerHello on the client, signature included.
//
// Input: bytes 0-31 are the client's key as an attacker picks it; byte 32
// picks what to change in a genuine ServerHello (bits 0-6: the byte, bit 7
// and byte 33: the bit); the rest is a ClientHello prefix (version, suite,
// anything) that goes into the transcript.
//
// Invariants:
//  - zs_kx_server on any client key returns OK or ZS_KX_ERR_CRYPTO (a
//    low-order point), never anything else, and on failure nothing is signed;
//  - a genuine exchange gives both sides the same two different secrets;
//  - a ServerHello with any one bit changed never yields secrets: the
//    signature check fails (or X25519 refuses the changed key);
//  - 130 bytes from the input as a ServerHello, with the genuine server's
//    identity key in it (what a pinned client accepts), never verify. (With
//    an identity key of its own choosing an attacker needs no forgery, and
//    small-order Ed25519 keys such as all zeros make "signatures" of zeros
//    verify, so only the pinned identity is a meaningful check.)
#include <cstring>
#include <vector>

#include "fuzz_input.h"
#include "kx.h"

namespace {

zs_ed25519* Identity() {
  static const uint8_t seed[32] = {42, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
                                   16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31};
  static zs_ed25519* key = zs_ed25519_new(seed);
  return key;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzInput in(data, size);
  uint8_t attacker_key[32] = {0};
  size_t got = 0;
  const uint8_t* k = in.take(32, &got);
  std::memcpy(attacker_key, k, got);
  const uint8_t flip = in.u8();
  const uint8_t bit = in.u8();
  size_t prefix_len = 0;
  const uint8_t* prefix = in.take(64, &prefix_len);
  zs_ed25519* id = Identity();
  FUZZ_CHECK(id != nullptr);

  // The server answering an attacker's key.
  std::vector<uint8_t> hello(prefix, prefix + prefix_len);
  hello.insert(hello.end(), attacker_key, attacker_key + 32);
  uint8_t server_hello[ZS_KX_SERVER_HELLO_BYTES], secrets[64];
  std::memset(server_hello, 0, sizeof server_hello);
  int rc = zs_kx_server(id, 1, 1, hello.data(), hello.size(), server_hello, secrets);
  FUZZ_CHECK(rc == ZS_KX_OK || rc == ZS_KX_ERR_CRYPTO);

  // A genuine client, with the input's prefix in its ClientHello.
  uint8_t priv[32], pub[32];
  FUZZ_CHECK(zs_x25519_keypair(priv, pub) == ZS_KX_OK);
  std::memcpy(hello.data() + prefix_len, pub, 32);
  FUZZ_CHECK(zs_kx_server(id, 1, 1, hello.data(), hello.size(), server_hello, secrets) == ZS_KX_OK);
  uint8_t client_secrets[64];
  FUZZ_CHECK(zs_kx_client(priv, hello.data(), hello.size(), server_hello, client_secrets) == ZS_KX_OK);
  FUZZ_CHECK(std::memcmp(secrets, client_secrets, 64) == 0);
  FUZZ_CHECK(std::memcmp(secrets, secrets + 32, 32) != 0);

  // One bit of the ServerHello changed in transit.
  const size_t at = (static_cast<size_t>(flip & 0x7F) | static_cast<size_t>(bit & 1) << 7) % ZS_KX_SERVER_HELLO_BYTES;
  server_hello[at] ^= static_cast<uint8_t>(1u << (bit >> 5));
  rc = zs_kx_client(priv, hello.data(), hello.size(), server_hello, client_secrets);
  FUZZ_CHECK(rc == ZS_KX_ERR_SIGNATURE || rc == ZS_KX_ERR_CRYPTO);

  // The input itself as a ServerHello.
  uint8_t forged[ZS_KX_SERVER_HELLO_BYTES] = {0};
  std::memcpy(forged, data, size < sizeof forged ? size : sizeof forged);
  zs_ed25519_public(id, forged + 2 + ZS_KX_PUBLIC_BYTES);
  rc = zs_kx_client(priv, hello.data(), hello.size(), forged, client_secrets);
  FUZZ_CHECK(rc == ZS_KX_ERR_SIGNATURE || rc == ZS_KX_ERR_CRYPTO);
  return 0;
}
