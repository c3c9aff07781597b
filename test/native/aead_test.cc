// Native AEAD and key exchange against published vectors (NIST GCM test cases
// 13, 14 and 16 of the GCM specification; RFC 8439 section 2.8.2 for
// ChaCha20-Poly1305; RFC 5869 test case 1 for HKDF-SHA256), plus the record
// layer's rules: sequence-number nonces, in-line rekeying, and the server and
// client halves of the handshake agreeing on their secrets.
#include <cstring>
#include <string>
#include <vector>

#include "aead.h"
#include "check.h"
#include "kx.h"

namespace {

std::vector<uint8_t> unhex(const std::string& s) {
  std::vector<uint8_t> out;
  int hi = -1;
  for (char c : s) {
    int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    if (v < 0) continue;
    if (hi < 0) {
      hi = v;
    } else {
      out.push_back(static_cast<uint8_t>(hi * 16 + v));
      hi = -1;
    }
  }
  return out;
}

std::string hex(const uint8_t* p, size_t n) {
  static const char* d = "0123456789abcdef";
  std::string s;
  for (size_t i = 0; i < n; i++) {
    s += d[p[i] >> 4];
    s += d[p[i] & 15];
  }
  return s;
}

// Seals with an explicit nonce and checks ciphertext||tag, then opens it back.
void CheckVector(int suite, const std::string& key, const std::string& nonce, const std::string& aad,
                 const std::vector<uint8_t>& plain, const std::string& expect) {
  auto k = unhex(key), n = unhex(nonce), a = unhex(aad);
  zs_aead* seal = zs_aead_new(suite, 1, k.data(), n.data());
  zs_aead* open = zs_aead_new(suite, 0, k.data(), n.data());
  CHECK(seal != nullptr);
  CHECK(open != nullptr);
  if (!seal || !open) return;
  std::vector<uint8_t> out(plain.size() + 16), back(plain.size() + 1);
  CHECK_EQ(zs_aead_seal_nonce(seal, n.data(), a.data(), a.size(), plain.data(), plain.size(), out.data()), 0);
  CHECK_EQ(hex(out.data(), out.size()), hex(unhex(expect).data(), unhex(expect).size()));
  CHECK_EQ(zs_aead_open_nonce(open, n.data(), a.data(), a.size(), out.data(), out.size(), back.data()), 0);
  CHECK(plain.empty() || std::memcmp(back.data(), plain.data(), plain.size()) == 0);
  // Every single flipped bit of ciphertext or tag fails.
  for (size_t bit = 0; bit < out.size() * 8; bit += 7) {
    out[bit / 8] ^= static_cast<uint8_t>(1 << (bit % 8));
    CHECK_EQ(zs_aead_open_nonce(open, n.data(), a.data(), a.size(), out.data(), out.size(), back.data()),
             static_cast<int>(ZS_AEAD_ERR_AUTH));
    out[bit / 8] ^= static_cast<uint8_t>(1 << (bit % 8));
  }
  zs_aead_free(seal);
  zs_aead_free(open);
}

}  // namespace

TEST(aead_gcm_nist_vectors) {
  const std::string zero_key(64, '0'), zero_iv(24, '0');
  CheckVector(ZS_AEAD_AES_256_GCM, zero_key, zero_iv, "", {}, "530f8afbc74536b9a963b4f1c4cb738b");
  CheckVector(ZS_AEAD_AES_256_GCM, zero_key, zero_iv, "", std::vector<uint8_t>(16, 0),
              "cea7403d4d606b6e074ec5d3baf39d18d0d1c8a799996bf0265b98b5d48ab919");
  CheckVector(ZS_AEAD_AES_256_GCM, "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
              "cafebabefacedbaddecaf888", "feedfacedeadbeeffeedfacedeadbeefabaddad2",
              unhex("d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e24"
                    "49a6b525b16aedf5aa0de657ba637b39"),
              "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b10"
              "56828838c5f61e6393ba7a0abcc9f66276fc6ece0f4e1768cddf8853bb2d551b");
}

TEST(aead_chacha20_poly1305_rfc8439_2_8_2) {
  const std::string text =
      "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, "
      "sunscreen would be it.";
  CheckVector(ZS_AEAD_CHACHA20_POLY1305, "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f",
              "070000004041424344454647", "50515253c0c1c2c3c4c5c6c7",
              std::vector<uint8_t>(text.begin(), text.end()),
              "d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d63dbea45e8ca9671282fafb69da92728b"
              "1a71de0a9e060b2905d6a5b67ecd3b3692ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc"
              "3ff4def08e4b7a9de576d26586cec64b6116"
              "1ae10b594f09e26a7e902ecbd0600691");
}

TEST(hkdf_sha256_rfc5869_case_1) {
  auto ikm = unhex("0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b"), salt = unhex("000102030405060708090a0b0c");
  uint8_t prk[32];
  CHECK_EQ(zs_hkdf_extract(salt.data(), salt.size(), ikm.data(), ikm.size(), prk), 0);
  CHECK_EQ(hex(prk, 32), std::string("077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5"));
}

TEST(aead_sequence_nonces_reject_replay_and_reorder) {
  uint8_t secret[32];
  for (int i = 0; i < 32; i++) secret[i] = static_cast<uint8_t>(i * 7);
  for (int suite : {ZS_AEAD_AES_256_GCM, ZS_AEAD_CHACHA20_POLY1305}) {
    zs_aead* s = zs_aead_new_secret(suite, 1, secret);
    zs_aead* o = zs_aead_new_secret(suite, 0, secret);
    CHECK(s && o);
    if (!s || !o) return;
    const uint8_t aad[5] = {1, 2, 3, 4, 5}, msg[3] = {'a', 'b', 'c'};
    uint8_t r0[19], r1[19], out[3];
    CHECK_EQ(zs_aead_seal(s, aad, 5, msg, 3, r0), 0);
    CHECK_EQ(zs_aead_seal(s, aad, 5, msg, 3, r1), 0);
    CHECK(std::memcmp(r0, r1, 19) != 0);
    CHECK_EQ(zs_aead_open(o, aad, 5, r1, 19, out), static_cast<int>(ZS_AEAD_ERR_AUTH));  // reordered
    CHECK_EQ(zs_aead_open(o, aad, 5, r0, 19, out), 0);
    CHECK_EQ(zs_aead_open(o, aad, 5, r0, 19, out), static_cast<int>(ZS_AEAD_ERR_AUTH));  // replayed
    CHECK_EQ(zs_aead_open(o, aad, 5, r1, 18, out), static_cast<int>(ZS_AEAD_ERR_AUTH));  // truncated
    CHECK_EQ(zs_aead_open(o, aad, 5, r1, 19, out), 0);
    CHECK_EQ(zs_aead_sequence(o), 2u);
    zs_aead_free(s);
    zs_aead_free(o);
  }
}

TEST(aead_record_batches_rekey_in_line) {
  uint8_t secret[32] = {9};
  zs_aead* s = zs_aead_new_secret(ZS_AEAD_AES_256_GCM, 1, secret);
  zs_aead* o = zs_aead_new_secret(ZS_AEAD_AES_256_GCM, 0, secret);
  std::vector<uint8_t> plain(300);
  for (size_t i = 0; i < plain.size(); i++) plain[i] = static_cast<uint8_t>(i);
  const uint32_t offsets[4] = {0, 10, 0, 100}, lengths[4] = {10, 90, 0, 200};
  const uint8_t kinds[4] = {8, 9, ZS_AEAD_REKEY_KIND, 63}, flags[4] = {2, 3, 2, 2};
  std::vector<uint8_t> sealed(300 + 64), opened(300);
  CHECK_EQ(zs_aead_seal_records(s, plain.data(), offsets, lengths, kinds, flags, 4, sealed.data()), 0);
  CHECK_EQ(zs_aead_sequence(s), 1u);  // one record under the key after the rekey
  const uint32_t in_off[4] = {0, 26, 132, 148}, in_len[4] = {26, 106, 16, 216};
  CHECK_EQ(zs_aead_open_records(o, sealed.data(), in_off, in_len, kinds, flags, 4, opened.data()), 4L);
  CHECK(std::memcmp(opened.data(), plain.data(), 100) == 0);
  CHECK(std::memcmp(opened.data() + 100, plain.data() + 100, 200) == 0);
  // Without the rekey record, the last record does not open under the old key.
  zs_aead* o2 = zs_aead_new_secret(ZS_AEAD_AES_256_GCM, 0, secret);
  const uint32_t skip_off[3] = {0, 26, 148}, skip_len[3] = {26, 106, 216};
  const uint8_t skip_kinds[3] = {8, 9, 63}, skip_flags[3] = {2, 3, 2};
  CHECK_EQ(zs_aead_open_records(o2, sealed.data(), skip_off, skip_len, skip_kinds, skip_flags, 3, opened.data()), 2L);
  // A wrong kind in the header (associated data) fails.
  zs_aead* o3 = zs_aead_new_secret(ZS_AEAD_AES_256_GCM, 0, secret);
  const uint8_t wrong[1] = {10};
  CHECK_EQ(zs_aead_open_records(o3, sealed.data(), in_off, in_len, wrong, flags, 1, opened.data()), 0L);
  zs_aead_free(s);
  zs_aead_free(o);
  zs_aead_free(o2);
  zs_aead_free(o3);
}

TEST(kx_server_and_client_agree_and_detect_tampering) {
  uint8_t seed[32] = {1, 2, 3};
  zs_ed25519* id = zs_ed25519_new(seed);
  CHECK(id != nullptr);
  if (!id) return;
  uint8_t priv[32], pub[32], hello[35] = {1, 1, 1}, server_hello[130], s_secrets[64], c_secrets[64];
  CHECK_EQ(zs_x25519_keypair(priv, pub), 0);
  std::memcpy(hello + 3, pub, 32);
  CHECK_EQ(zs_kx_server(id, 1, 1, hello, sizeof hello, server_hello, s_secrets), 0);
  CHECK_EQ(zs_kx_client(priv, hello, sizeof hello, server_hello, c_secrets), 0);
  CHECK(std::memcmp(s_secrets, c_secrets, 64) == 0);
  CHECK(std::memcmp(s_secrets, s_secrets + 32, 32) != 0);
  uint8_t idpub[32];
  zs_ed25519_public(id, idpub);
  CHECK(std::memcmp(server_hello + 34, idpub, 32) == 0);
  server_hello[5] ^= 1;  // the server's ephemeral key, inside the signed transcript
  CHECK_EQ(zs_kx_client(priv, hello, sizeof hello, server_hello, c_secrets), static_cast<int>(ZS_KX_ERR_SIGNATURE));
  server_hello[5] ^= 1;
  hello[1] = 2;  // a ClientHello changed in transit changes the transcript
  CHECK_EQ(zs_kx_client(priv, hello, sizeof hello, server_hello, c_secrets), static_cast<int>(ZS_KX_ERR_SIGNATURE));
  // A low-order client key (all zeros) is refused.
  uint8_t zero_hello[35] = {1, 1, 1};
  CHECK_EQ(zs_kx_server(id, 1, 1, zero_hello, sizeof zero_hello, server_hello, s_secrets), static_cast<int>(ZS_KX_ERR_CRYPTO));
  zs_ed25519_free(id);
}
