// AEAD records in the I/O loop (ZS_OP_OFFLOAD in io_loop.h): once JavaScript's
// secure channel has finished a handshake, it hands the connection's traffic
// secrets to the loop, which from then on seals and opens the connection's
// records itself, so JavaScript sends and receives plaintext.
//
//   send:    [compress] -> seal (rekey record first when a limit is reached) -> write queue
//   receive: parse -> open (rekey record: next key) -> [decompress] -> batch
//
// The bytes are exactly those of lib/channel/secure.ts (docs/security.md,
// "Records"): record = ciphertext || tag, nonce = IV xor sequence, associated
// data = the frame's length and kind/flags byte. A record that fails closes
// the connection with ZS_CLOSE_AUTH, as the JavaScript channel does.
#include <cstring>
#include <new>

#include "aead.h"
#include "io_loop_internal.h"

namespace zs::io {

struct SecureState {
  zs_aead* seal = nullptr;
  zs_aead* open = nullptr;
  uint64_t rekey_bytes = 0;
  uint64_t sent_bytes = 0;
  uint32_t max_record = 0;
  uint32_t rekey_ms = 0;
  uint32_t max_records = 0;
  uint32_t sent_records = 0;
  uint32_t key_born = 0;
};

}  // namespace zs::io

namespace {

constexpr uint8_t kClientFinishedKind = 4;

// Kinds that travel only as records once a connection is secure: ClientFinished,
// rekey, and every application kind.
bool sealed_kind(uint8_t kind) { return kind >= 8 || kind == kClientFinishedKind || kind == ZS_AEAD_REKEY_KIND; }

// kSecure is only ever set together with an entry; a miss is treated as a failed record.
io::SecureState* state_of(const std::unordered_map<uint32_t, io::SecureState*>& m, uint32_t id) {
  auto it = m.find(id);
  return it == m.end() ? nullptr : it->second;
}

uint32_t le32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 | static_cast<uint32_t>(p[2]) << 16 |
         static_cast<uint32_t>(p[3]) << 24;
}

}  // namespace

void zs_io_loop::offload(uint32_t id, Conn& c, const uint8_t* params, uint32_t len) {
  if (len != ZS_IO_OFFLOAD_BYTES) return;  // the binding's caller checked it; never trust a short record
  if (c.flags & io::kSecure) drop_secure(id);
  auto* s = new (std::nothrow) io::SecureState;
  const int suite = static_cast<int>(le32(params));
  if (s) {
    s->seal = zs_aead_new_secret(suite, 1, params + 32);
    s->open = zs_aead_new_secret(suite, 0, params + 64);
  }
  // The secrets were copied into the contexts: wipe them from the command buffer.
  std::memset(const_cast<uint8_t*>(params) + 32, 0, 64);
  if (!s || !s->seal || !s->open) {
    if (s) {
      zs_aead_free(s->seal);
      zs_aead_free(s->open);
      delete s;
    }
    close_conn(id, c, ZS_CLOSE_AUTH, 0);
    return;
  }
  s->max_record = le32(params + 4);
  s->rekey_ms = le32(params + 8);
  s->max_records = le32(params + 12);
  s->rekey_bytes = static_cast<uint64_t>(le32(params + 16)) | static_cast<uint64_t>(le32(params + 20)) << 32;
  s->key_born = now;
  secure[id] = s;
  c.flags |= io::kSecure;
}

void zs_io_loop::drop_secure(uint32_t id) {
  auto it = secure.find(id);
  if (it == secure.end()) return;
  zs_aead_free(it->second->seal);
  zs_aead_free(it->second->open);
  delete it->second;
  secure.erase(it);
  table.at(id).flags &= ~io::kSecure;
}

void zs_io_loop::seal_frame(uint32_t id, Conn& c, uint8_t kind_byte, const uint8_t* payload, uint32_t len) {
  const uint8_t kind = kind_byte & 0x3F;
  if (!sealed_kind(kind)) {
    queue_frame(id, c, kind_byte, payload, len);
    return;
  }
  io::SecureState* s = state_of(secure, id);
  if (!s) {
    close_conn(id, c, ZS_CLOSE_AUTH, 0);
    return;
  }
  uint8_t aad[ZS_AEAD_HEADER_BYTES];
  // The same policy as SecureChannel.send(): past a limit, a rekey record goes
  // first under the old key, then the sealing key moves on.
  if (kind >= 8 && (s->sent_bytes >= s->rekey_bytes || s->sent_records >= s->max_records ||
                    now - s->key_born >= s->rekey_ms)) {
    uint8_t tag[ZS_AEAD_TAG_BYTES];
    zs_aead_record_header(ZS_AEAD_TAG_BYTES, ZS_AEAD_REKEY_KIND, ZS_FLAG_ENCRYPTED, aad);
    if (zs_aead_seal(s->seal, aad, sizeof aad, nullptr, 0, tag) != ZS_AEAD_OK || zs_aead_rekey(s->seal) != ZS_AEAD_OK) {
      close_conn(id, c, ZS_CLOSE_AUTH, 0);
      return;
    }
    if (!queue_frame(id, c, zs_frame_kind_byte(ZS_AEAD_REKEY_KIND, ZS_FLAG_ENCRYPTED), tag, sizeof tag)) return;
    s->sent_bytes = 0;
    s->sent_records = 0;
    s->key_born = now;
    record_counts[4].fetch_add(1, std::memory_order_relaxed);
    record_counts[6].fetch_add(1, std::memory_order_relaxed);
  }
  const uint8_t* plain;
  uint32_t n;
  const uint8_t flags = static_cast<uint8_t>((maybe_compress(kind_byte, payload, len, &plain, &n) >> 6) | ZS_FLAG_ENCRYPTED);
  if (record_buf.size() < size_t{n} + ZS_AEAD_TAG_BYTES) record_buf.resize(size_t{n} + ZS_AEAD_TAG_BYTES);
  zs_aead_record_header(n + ZS_AEAD_TAG_BYTES, kind, flags, aad);
  if (zs_aead_seal(s->seal, aad, sizeof aad, plain, n, record_buf.data()) != ZS_AEAD_OK) {
    close_conn(id, c, ZS_CLOSE_AUTH, 0);
    return;
  }
  queue_frame(id, c, zs_frame_kind_byte(kind, flags), record_buf.data(), n + ZS_AEAD_TAG_BYTES);
  s->sent_bytes += len;
  s->sent_records++;
  record_counts[4].fetch_add(1, std::memory_order_relaxed);
}

void zs_io_loop::deliver_secure(uint32_t id, Conn& c, const uint8_t* payload, const zs_frame& f) {
  const uint32_t len = f.payload_length;
  if (!sealed_kind(f.kind)) {
    // Handshake kinds and alerts travel in clear; a record of such a kind is a violation.
    if (f.flags & ZS_FLAG_ENCRYPTED) close_conn(id, c, ZS_CLOSE_AUTH, 0);
    else deliver_plain(id, c, payload, f);
    return;
  }
  io::SecureState* s = state_of(secure, id);
  if (!s) {
    close_conn(id, c, ZS_CLOSE_AUTH, 0);
    return;
  }
  // Refused before decryption, as in the JavaScript channel: a frame of a
  // sealed kind sent in clear, a record shorter than its tag or longer than
  // the largest record, a rekey record that carries data.
  if (!(f.flags & ZS_FLAG_ENCRYPTED) || len < ZS_AEAD_TAG_BYTES || len - ZS_AEAD_TAG_BYTES > s->max_record ||
      (f.kind == ZS_AEAD_REKEY_KIND && len != ZS_AEAD_TAG_BYTES)) {
    close_conn(id, c, ZS_CLOSE_AUTH, 0);
    return;
  }
  const uint32_t n = len - ZS_AEAD_TAG_BYTES;
  zs_frame plain = f;
  plain.payload_length = n;
  plain.flags = f.flags & ~ZS_FLAG_ENCRYPTED;
  // Opened straight into the batch, unless the plaintext still has to be decompressed.
  const bool inflate = (plain.flags & ZS_FLAG_COMPRESSED) && compress_on && f.kind != ZS_AEAD_REKEY_KIND;
  Batch& b = batch();
  const size_t at = b.data.size();
  uint8_t* out;
  if (inflate) {
    if (record_buf.size() < size_t{n} + 1) record_buf.resize(size_t{n} + 1);
    out = record_buf.data();
  } else {
    b.data.resize(at + n + 1);  // + 1: a bare tag opens into a valid pointer
    out = b.data.data() + at;
  }
  uint8_t aad[ZS_AEAD_HEADER_BYTES];
  zs_aead_record_header(len, f.kind, f.flags, aad);
  const int rc = zs_aead_open(s->open, aad, sizeof aad, payload, len, out);
  if (!inflate) b.data.resize(rc == ZS_AEAD_OK && f.kind != ZS_AEAD_REKEY_KIND ? at + n : at);
  if (rc != ZS_AEAD_OK) {
    close_conn(id, c, ZS_CLOSE_AUTH, 0);
    return;
  }
  record_counts[5].fetch_add(1, std::memory_order_relaxed);
  if (f.kind == ZS_AEAD_REKEY_KIND) {
    if (zs_aead_rekey(s->open) != ZS_AEAD_OK) close_conn(id, c, ZS_CLOSE_AUTH, 0);
    record_counts[7].fetch_add(1, std::memory_order_relaxed);
    return;
  }
  if (inflate) {
    deliver_compressed(id, c, out, plain);
    return;
  }
  if ((plain.flags & ZS_FLAG_COMPRESSED) && !compress_on && (configs[c.cfg].flags & ZS_IO_REFUSE_COMPRESSED)) {
    b.data.resize(at);
    close_conn(id, c, ZS_CLOSE_PROTOCOL, ZS_PROTO_COMPRESSED_REFUSED);
    return;
  }
  b.peers.push_back(id);
  b.kinds.push_back(plain.kind);
  b.flags.push_back(plain.flags);
  b.offsets.push_back(static_cast<uint32_t>(at));
  b.lengths.push_back(n);
}
