// libFuzzer target: opening AEAD records (native/core/aead.h), as the I/O loop
// does for a secure connection's incoming frames.
//
// Input: byte 0 picks the suite (bit 0) and the tampering (bits 1-7); then
// records, each a kind byte, a flags byte and a u16 length, whose bytes
// follow (cut short where the input ends).
//
// Invariants:
//  - records made of the input's bytes never open: zs_aead_open_records
//    stops at record 0 (nobody forges a 16-byte tag by fuzzing), and what it
//    wrote for that record is zeros, so no unauthenticated plaintext is left;
//  - the same plaintexts sealed with zs_aead_seal_records open back exactly,
//    rekey records included;
//  - after one byte of the sealed stream, or one record's kind or flags, is
//    changed, opening stops exactly at that record, with every record before
//    it opened intact.
#include <cstring>
#include <vector>

#include "aead.h"
#include "fuzz_input.h"

namespace {

struct Records {
  std::vector<uint8_t> base;
  std::vector<uint32_t> offsets, lengths;
  std::vector<uint8_t> kinds, flags;
};

// A traffic secret, as the handshake hands the record layer (rekey derives the next one).
const uint8_t kSecret[32] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
                             17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};

// Opens recs with a fresh context; returns the open result and the plaintexts.
long Open(int suite, const Records& recs, std::vector<uint8_t>* plain) {
  size_t room = 0;
  for (uint32_t l : recs.lengths) room += l;
  plain->assign(room + 1, 0xEE);
  zs_aead* ctx = zs_aead_new_secret(suite, 0, kSecret);
  FUZZ_CHECK(ctx != nullptr);
  const long r = zs_aead_open_records(ctx, recs.base.data(), recs.offsets.data(), recs.lengths.data(),
                                      recs.kinds.data(), recs.flags.data(), recs.lengths.size(), plain->data());
  zs_aead_free(ctx);
  return r;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzInput in(data, size);
  const uint8_t mode = in.u8();
  const int suite = (mode & 1) ? ZS_AEAD_CHACHA20_POLY1305 : ZS_AEAD_AES_256_GCM;

  // The input's records, as a peer would send them, and the same bodies as plaintexts to seal.
  Records wire, plain;
  while (in.remaining() > 0 && wire.lengths.size() < 16) {
    const uint8_t kind = in.u8() & 0x3F;
    const uint8_t flags = in.u8() & 3;
    size_t got = 0;
    const uint8_t* body = in.take(in.u16() % 4096, &got);
    wire.offsets.push_back(static_cast<uint32_t>(wire.base.size()));
    wire.lengths.push_back(static_cast<uint32_t>(got));
    wire.kinds.push_back(kind);
    wire.flags.push_back(flags | 2);
    wire.base.insert(wire.base.end(), body, body + got);
    // A rekey record carries nothing but its tag.
    const size_t keep = kind == ZS_AEAD_REKEY_KIND ? 0 : got;
    plain.offsets.push_back(static_cast<uint32_t>(plain.base.size()));
    plain.lengths.push_back(static_cast<uint32_t>(keep));
    plain.kinds.push_back(kind);
    plain.flags.push_back(flags);
    plain.base.insert(plain.base.end(), body, body + keep);
  }
  const size_t n = wire.lengths.size();
  if (n == 0) return 0;
  wire.base.push_back(0);  // data() of an empty vector may be null
  plain.base.push_back(0);

  std::vector<uint8_t> out;
  FUZZ_CHECK(Open(suite, wire, &out) == 0);
  // The record was opened (and wiped) only when its length could be a record of its kind.
  if (wire.lengths[0] >= ZS_AEAD_TAG_BYTES && (wire.kinds[0] != ZS_AEAD_REKEY_KIND || wire.lengths[0] == ZS_AEAD_TAG_BYTES)) {
    for (size_t i = 0; i + ZS_AEAD_TAG_BYTES < wire.lengths[0]; i++) FUZZ_CHECK(out[i] == 0);
  }

  // Seal the plaintexts, then open them.
  Records sealed;
  size_t total = 0;
  for (size_t i = 0; i < n; i++) {
    sealed.offsets.push_back(static_cast<uint32_t>(total));
    sealed.lengths.push_back(plain.lengths[i] + ZS_AEAD_TAG_BYTES);
    total += plain.lengths[i] + ZS_AEAD_TAG_BYTES;
  }
  sealed.base.assign(total, 0);
  sealed.kinds = plain.kinds;
  for (uint8_t f : plain.flags) sealed.flags.push_back(f | 2);
  zs_aead* seal = zs_aead_new_secret(suite, 1, kSecret);
  FUZZ_CHECK(seal != nullptr);
  FUZZ_CHECK(zs_aead_seal_records(seal, plain.base.data(), plain.offsets.data(), plain.lengths.data(),
                                  plain.kinds.data(), plain.flags.data(), n, sealed.base.data()) == ZS_AEAD_OK);
  zs_aead_free(seal);
  FUZZ_CHECK(Open(suite, sealed, &out) == static_cast<long>(n));
  FUZZ_CHECK(std::memcmp(out.data(), plain.base.data(), plain.base.size() - 1) == 0);

  // Change one thing and open again.
  const uint32_t pick = static_cast<uint32_t>(mode >> 1) * 2654435761u;
  size_t victim = 0;
  if (mode & 2) {
    const size_t at = pick % total;
    sealed.base[at] ^= static_cast<uint8_t>(1u << (pick >> 29));
    while (victim + 1 < n && sealed.offsets[victim + 1] <= at) victim++;
  } else {
    victim = pick % n;
    if (mode & 4) sealed.kinds[victim] ^= static_cast<uint8_t>(1u << (pick >> 29) % 6);
    else sealed.flags[victim] ^= 1;
  }
  FUZZ_CHECK(Open(suite, sealed, &out) == static_cast<long>(victim));
  size_t before = 0;
  for (size_t i = 0; i < victim; i++) before += plain.lengths[i];
  FUZZ_CHECK(std::memcmp(out.data(), plain.base.data(), before) == 0);
  return 0;
}
