// Raw DEFLATE compressor with fixed Huffman codes (see deflate_fixed.h).
//
// The input is cut into segments of about 60 KB; each becomes one fixed-code
// block. After a segment is coded, its bit cost is compared with a stored
// block's, and the writer rewinds to the segment start and stores it raw when
// that is smaller (JPEG, already-compressed data). Matches may reach into
// earlier segments whatever their block type, since the window is the output.
//
// Match finding (LZ77, window 32 KiB, matches of 4..258 bytes):
//  - fast: a table of the last position of each 4-byte hash; one probe per
//    position, greedy; after 32 misses in a row the step between probed
//    positions grows (snappy's heuristic), so incompressible data is crossed
//    quickly.
//  - default: two tables, of 4-byte and 7-byte hashes (Tables2 in
//    deflate_match.h), probed at every position without a branch per
//    candidate; lazy matching (a longer match at the next byte wins
//    over a short current one); a match is extended backwards over the
//    pending literals; runs of misses are crossed with growing steps as in
//    fast, only more slowly.
//
// Bit writer (deflate_writer.h): a 64-bit accumulator; after each symbol
// group it stores all 8 bytes and advances by the whole bytes filled, which
// needs 8 bytes of slack past the end of the stream (counted in
// zs_deflate_fixed_bound).
#include "deflate_fixed.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "deflate_match.h"
#include "deflate_tables.h"
#include "deflate_writer.h"

namespace {

using namespace zs::deflate;

// Below 65535 by more than a match or a skip-ahead step can overrun, so a
// segment that falls back to a stored block needs only one.
constexpr size_t kSegment = 60000;
constexpr size_t kMaxInput = 0xFFFFFFFFu - 64;
// Fast level: a 2^16-entry table (less for small inputs); after 32 misses in
// a row the probe step grows by one every 32 misses.
constexpr unsigned kFastHashBits = 16;
constexpr unsigned kSkipShift = 5;
// Default level: the sizes of its two tables (less for small inputs), the
// match length from which the lazy step is skipped, the match length up to
// which every position of a match is indexed (beyond it, the first and last
// kInsertEdge), and the miss-run skip.
constexpr unsigned kDefaultHashBits = 16;
constexpr unsigned kLongHashBits = 17;
constexpr size_t kLazyLength = 24;
constexpr size_t kInsertAll = 32;
constexpr size_t kInsertEdge = 8;
constexpr unsigned kDefaultSkipShift = 6;

struct Workspace {
  std::vector<uint32_t> head;  // last position per hash (fast: the only table)
  std::vector<uint16_t> short_slots;  // default: its 4-byte hash table
  std::vector<uint16_t> long_slots;   // default: its 7-byte hash table
};

Workspace& LocalWorkspace() {
  static thread_local Workspace ws;
  return ws;
}

// Hash table size: about twice the input, between 2^10 and 2^max_bits entries,
// so that small frames do not pay for clearing a large table.
unsigned HashBits(size_t n, unsigned max_bits) {
  unsigned bits = 10;
  while (bits < max_bits && (size_t{1} << bits) < n * 2) bits++;
  return bits;
}

// Fast level: codes [pos, seg_end) (the last match may run past seg_end) and
// returns the position reached.
size_t FastSegment(const Input& in, size_t pos, size_t seg_end, uint32_t* table, unsigned bits,
                   BitWriter& writer) {
  // A local writer: output bytes are stored through a byte pointer, which may
  // alias anything reached through a reference, so the compiler would reload
  // the writer's state after every store. A local stays in registers.
  BitWriter w = writer;
  const EncodeTables& t = Tables();
  const uint8_t* src = in.data;
  size_t skip = 1 << kSkipShift;
  size_t lit_start = pos;
  // Positions past hash_end have no 4 bytes to hash: the segment's rest is literals.
  const size_t stop = std::min(seg_end, in.hash_end);
  while (pos < stop) {
    const uint32_t cur = Load32(src + pos);
    const uint32_t h = Hash(cur, bits);
    const size_t cand = table[h];
    table[h] = static_cast<uint32_t>(pos);
    // 1 <= pos - cand <= kWindow; an empty slot (2^32 - 1) is never below pos.
    if (pos - cand - 1 < kWindow && Load32(src + cand) == cur) {
      if (pos > lit_start) w.Literals(t, src + lit_start, pos - lit_start);
      const size_t max = std::min(kMaxMatch, in.size - pos);
      const size_t len = kMinMatch + MatchLength(src + cand + 4, src + pos + 4, max - 4);
      w.Match(t, len, pos - cand);
      // Index a few positions of the match (the one after its start, its
      // middle, two near its end): the table only holds positions that were
      // probed, and a later repeat of this text may start anywhere in it.
      const size_t end = pos + len;
      if (end - 1 < in.hash_end) {
        table[Hash(Load32(src + pos + 1), bits)] = static_cast<uint32_t>(pos + 1);
        if (len > 6) table[Hash(Load32(src + pos + len / 2), bits)] = static_cast<uint32_t>(pos + len / 2);
        table[Hash(Load32(src + end - 2), bits)] = static_cast<uint32_t>(end - 2);
        table[Hash(Load32(src + end - 1), bits)] = static_cast<uint32_t>(end - 1);
      }
      pos = end;
      lit_start = pos;
      skip = 1 << kSkipShift;
    } else {
      pos += skip++ >> kSkipShift;
    }
  }
  if (pos < seg_end) pos = seg_end;  // stopped at hash_end
  if (pos > in.size) pos = in.size;
  if (pos > lit_start) w.Literals(t, src + lit_start, pos - lit_start);
  writer = w;
  return pos;
}


// The state DefaultRun carries from one run to the next within a segment.
struct DefaultState {
  size_t pos;
  size_t lit_start;  // first byte not yet coded
  size_t misses;     // probes without a match since the last one
};

// The default level's loop over positions below `limit`. Wide: every
// position has 9 readable bytes (FindWide at it and the next), so the
// bound checks of the input's last bytes are left out; the other variant
// codes the rest of a segment that reaches the end of the input.
template <bool kWide>
ZS_DEFLATE_INLINE void DefaultRun(const Input& in, size_t limit, Tables2& c, const EncodeTables& t,
                                  BitWriter& w, DefaultState& st) {
  const uint8_t* src = in.data;
  size_t pos = st.pos;
  size_t lit_start = st.lit_start;
  size_t misses = st.misses;
  while (pos < limit) {
    if (!kWide && pos >= in.hash_end) {
      pos = limit;
      break;
    }
    size_t dist = 0;
    size_t len = kWide || pos + 8 <= in.size ? c.FindWide(in, pos, &dist, kMinMatch - 1) : c.Find(in, pos, &dist);
    if (len == 0) {
      // Runs of misses (incompressible data) are crossed with growing steps.
      pos += 1 + (misses++ >> kDefaultSkipShift);
      continue;
    }
    misses = 0;
    // Lazy step: a short match is emitted one byte later, as a literal and a
    // longer match, when the next byte starts one.
    bool next_indexed = false;
    if (len < kLazyLength && (kWide || pos + 1 < in.hash_end)) {
      size_t dist2 = 0;
      const size_t len2 = kWide || pos + 9 <= in.size ? c.FindWide(in, pos + 1, &dist2, len) : c.Find(in, pos + 1, &dist2, len);
      next_indexed = true;
      if (len2 > len) {
        pos++;
        len = len2;
        dist = dist2;
        next_indexed = false;
      }
    }
    // Extend the match backwards over pending literals.
    while (pos > lit_start && pos > dist && len < kMaxMatch && src[pos - 1] == src[pos - 1 - dist]) {
      pos--;
      len++;
    }
    if (pos > lit_start) w.Literals(t, src + lit_start, pos - lit_start);
    w.Match(t, len, dist);
    // Index the match's positions (a later repeat may start anywhere in it);
    // of a long match only its first and last few, which is where repeats of
    // text around it start.
    const size_t end = std::min(pos + len, in.hash_end);
    size_t q = pos + (next_indexed ? 2 : 1);
    if (len > kInsertAll) {
      for (const size_t stop = std::min(end, pos + kInsertEdge); q < stop; q++) c.Insert(in, q);
      q = std::max(q, end > kInsertEdge ? end - kInsertEdge : 0);
    }
    for (; q < end; q++) c.Insert(in, q);
    pos += len;
    lit_start = pos;
  }
  st = DefaultState{pos, lit_start, misses};
}

size_t DefaultSegment(const Input& in, size_t pos, size_t seg_end, Tables2& c, BitWriter& writer) {
  BitWriter w = writer;  // local, as in FastSegment
  const EncodeTables& t = Tables();
  DefaultState st{pos, pos, 0};
  const size_t wide_limit = in.size >= 9 ? in.size - 8 : 0;  // pos + 9 <= in.size below it
  DefaultRun<true>(in, std::min(seg_end, wide_limit), c, t, w, st);
  DefaultRun<false>(in, seg_end, c, t, w, st);
  pos = std::min(st.pos, in.size);
  if (pos > st.lit_start) w.Literals(t, in.data + st.lit_start, pos - st.lit_start);
  writer = w;
  return pos;
}

// Writes data[0, n) as stored blocks of at most 65535 bytes; the last is final if `final`.
void Stored(BitWriter& w, const uint8_t* data, size_t n, bool final) {
  do {
    const size_t chunk = std::min<size_t>(n, 65535);
    const bool last = final && chunk == n;
    w.Put(last ? 1 : 0, 3);
    w.Put(0, (8 - (w.count & 7)) & 7);
    w.Put(chunk | ((chunk ^ 0xFFFF) << 16), 32);
    w.Flush();
    std::memcpy(w.p, data, chunk);
    w.p += chunk;
    data += chunk;
    n -= chunk;
  } while (n > 0);
}

// Bits a stored copy of n bytes costs, counting the worst byte padding.
size_t StoredBits(size_t n) { return (n / 65535 + 1) * (3 + 7 + 32) + 8 * n; }

}  // namespace

extern "C" {

size_t zs_deflate_fixed_bound(size_t in_len) {
  // A segment is coded with fixed codes (at most 9 bits a byte) before it may
  // be replaced by a smaller stored copy; earlier segments cost at most their
  // stored size.
  return in_len + in_len / 8 + 5 * (in_len / 65535 + 2) + 64;
}

size_t zs_deflate_fixed_compress(const uint8_t* in, size_t in_len, uint8_t* out, size_t out_cap,
                                 int level) {
  if (in_len > kMaxInput || out_cap < zs_deflate_fixed_bound(in_len)) return 0;
  BitWriter w{out, 0, 0};
  if (in_len == 0) {
    w.Put(1 | (1 << 1), 3);  // final fixed block holding only end-of-block (7 zero bits)
    w.Put(0, 7);
    w.Flush();
    return static_cast<size_t>(w.p - out) + (w.count ? 1 : 0);
  }
  const Input input{in, in_len, in_len >= 4 ? in_len - 3 : 0};
  Workspace& ws = LocalWorkspace();
  const bool fast = level != ZS_DEFLATE_DEFAULT;
  const unsigned bits = HashBits(in_len, fast ? kFastHashBits : kDefaultHashBits);
  Tables2 tables{nullptr, bits, nullptr, 0};
  if (fast) {
    ws.head.assign(size_t{1} << bits, 0xFFFFFFFFu);
  } else {
    // A slot of 0 names distance pos (modulo 2^16): rejected by Find until
    // the input has that position, and a valid candidate after.
    ws.short_slots.assign(size_t{1} << bits, 0);
    tables.short_slots = ws.short_slots.data();
    tables.long_bits = HashBits(in_len, kLongHashBits);
    ws.long_slots.assign(size_t{1} << tables.long_bits, 0);
    tables.long_slots = ws.long_slots.data();
  }

  size_t pos = 0;
  bool final = false;
  while (pos < in_len) {
    const size_t seg_start = pos;
    const size_t seg_end = std::min(in_len, pos + kSegment);
    final = seg_end == in_len;
    const BitWriter saved = w;
    w.Put(final ? 3 : 2, 3);  // BFINAL, BTYPE = 01 (fixed)
    pos = fast ? FastSegment(input, pos, seg_end, ws.head.data(), bits, w)
               : DefaultSegment(input, pos, seg_end, tables, w);
    w.Put(0, 7);  // end of block
    w.Flush();
    const size_t fixed_bits = static_cast<size_t>(w.p - saved.p) * 8 + w.count - saved.count;
    if (StoredBits(pos - seg_start) < fixed_bits) {
      w = saved;
      Stored(w, in + seg_start, pos - seg_start, final);
    }
  }
  if (!final) {
    // The last match ran to the end of the input from a non-final segment.
    w.Put(3, 3);
    w.Put(0, 7);
    w.Flush();
  }
  return static_cast<size_t>(w.p - out) + (w.count ? 1 : 0);
}

}  // extern "C"
