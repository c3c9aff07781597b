// File ranges in the send queue (native/core/io_file.cc), driven as the
// binding drives them: a ZS_OP_SEND_FILE record between two plain sends comes
// out as one frame, in order, its bytes read from the file by sendfile(2); the
// caller's descriptor may be closed as soon as the submit returns; the loop's
// duplicates are closed once written and when the loop goes with ranges still
// queued (counted in /proc/self/fd), at most 64 per peer; a file shorter than its range resets the
// peer; inline, a descriptor that cannot be duplicated is read at once. Run under ASan/UBSan by `npm run test:native`.
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <vector>

#include "check.h"
#include "frame_codec.h"
#include "io_loop.h"

namespace {

struct Inbox {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<int32_t> events;  // 4 per event
  zs_io_loop* loop = nullptr;
};

void post(void* ctx, const zs_io_batch* b) {
  auto* in = static_cast<Inbox*>(ctx);
  {
    std::lock_guard<std::mutex> lock(in->mu);
    in->events.insert(in->events.end(), b->event_records, b->event_records + 4 * b->events);
  }
  in->cv.notify_all();
  zs_io_batch_done(in->loop, b);
}

// The first event of `type` (its peer, a): false when none came within 5 s.
bool wait_event(Inbox& in, int32_t type, int32_t* peer, int32_t* a) {
  std::unique_lock<std::mutex> lock(in.mu);
  return in.cv.wait_for(lock, std::chrono::seconds(5), [&] {
    for (size_t i = 0; i + 3 < in.events.size(); i += 4) {
      if (in.events[i] == type) {
        *peer = in.events[i + 1];
        *a = in.events[i + 2];
        return true;
      }
    }
    return false;
  });
}

int open_fds() {
  int n = 0;
  if (DIR* d = opendir("/proc/self/fd")) {
    while (readdir(d)) n++;
    closedir(d);
  }
  return n;
}

bool wait_fds(int want) {
  for (int i = 0; i < 500 && open_fds() != want; i++) usleep(10000);
  return open_fds() == want;
}

int connect_to(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) < 0) {
    close(fd);
    return -1;
  }
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

bool read_exact(int fd, uint8_t* p, size_t n) {
  while (n) {
    ssize_t r = read(fd, p, n);
    if (r <= 0) return false;
    p += r;
    n -= static_cast<size_t>(r);
  }
  return true;
}

// One whole frame from the socket: its payload (empty and false on a short read or bad frame).
bool read_frame(int fd, std::vector<uint8_t>* payload) {
  uint8_t head[ZS_FRAME_HEADER];
  if (!read_exact(fd, head, sizeof head)) return false;
  uint32_t len;
  std::memcpy(&len, head + 4, 4);
  payload->assign(len + 4, 0);
  if (!read_exact(fd, payload->data(), payload->size())) return false;
  uint32_t tail;
  std::memcpy(&tail, payload->data() + len, 4);
  payload->resize(len);
  return tail == ZS_FRAME_DEFAULT_TAIL;
}

const zs_io_options kOptions{{ZS_FRAME_DEFAULT_HEAD, ZS_FRAME_DEFAULT_TAIL, 1 << 20}, 0, 0, 1 << 20, 0, 0, 0};

// A temporary file of `size` patterned bytes, unlinked at once: its descriptor, and the bytes.
int temp_file(size_t size, std::vector<uint8_t>* bytes) {
  char path[] = "/tmp/zs-io-file-XXXXXX";
  int fd = mkstemp(path);
  if (fd < 0) return -1;
  unlink(path);
  bytes->resize(size);
  for (size_t i = 0; i < size; i++) (*bytes)[i] = static_cast<uint8_t>(i * 7 + (i >> 9));
  if (write(fd, bytes->data(), size) != static_cast<ssize_t>(size)) {
    close(fd);
    return -1;
  }
  return fd;
}

// Appends a ZS_OP_SEND_FILE record's data: zs_io_file_range, then the head bytes.
uint32_t file_record(std::vector<uint8_t>* data, int fd, uint64_t offset, uint32_t length, const char* head) {
  zs_io_file_range r{fd, length, offset};
  const uint8_t* p = reinterpret_cast<const uint8_t*>(&r);
  data->insert(data->end(), p, p + sizeof r);
  data->insert(data->end(), head, head + std::strlen(head));
  return static_cast<uint32_t>(sizeof r + std::strlen(head));
}

// Inline mode: the batches' events, kept on this thread.
struct InlineInbox {
  std::vector<int32_t> events;
  zs_io_loop* loop = nullptr;
};

void post_inline(void* ctx, const zs_io_batch* b) {
  auto* in = static_cast<InlineInbox*>(ctx);
  in->events.insert(in->events.end(), b->event_records, b->event_records + 4 * b->events);
  zs_io_batch_done(in->loop, b);
}

}  // namespace

TEST(io_file_range_in_order_between_frames_and_fds_closed) {
  Inbox in;
  zs_io_loop* loop = zs_io_create(post, &in);
  CHECK(loop != nullptr);
  if (!loop) return;
  in.loop = loop;
  int port = zs_io_listen(loop, "127.0.0.1", 0, 0, &kOptions);
  CHECK(port > 0);
  int sock = connect_to(port);
  CHECK(sock >= 0);
  int32_t peer = -1, a = 0;
  CHECK(wait_event(in, ZS_EV_OPEN, &peer, &a));
  const int base = open_fds();
  std::vector<uint8_t> file;
  int fd = temp_file(700 * 1024, &file);
  CHECK(fd >= 0);

  // "A", then a range of 600 KiB from offset 1000 behind the head "HD", then a small range (copied), then "B".
  std::vector<uint8_t> data{'A'};
  std::vector<uint32_t> lens{1};
  lens.push_back(file_record(&data, fd, 1000, 600 * 1024, "HD"));
  lens.push_back(file_record(&data, fd, 5, 100, "h"));
  data.push_back('B');
  lens.push_back(1);
  const uint8_t ops[] = {ZS_OP_SEND, ZS_OP_SEND_FILE, ZS_OP_SEND_FILE, ZS_OP_SEND};
  const uint32_t peers[] = {uint32_t(peer), uint32_t(peer), uint32_t(peer), uint32_t(peer)};
  const uint8_t kinds[] = {zs_frame_kind_byte(8, 0), zs_frame_kind_byte(9, 0), zs_frame_kind_byte(10, 0),
                           zs_frame_kind_byte(11, 0)};
  zs_io_submit(loop, data.data(), data.size(), 4, ops, peers, kinds, lens.data());
  close(fd);  // the loop has its own duplicate

  std::vector<uint8_t> p;
  CHECK(read_frame(sock, &p));
  CHECK(p == std::vector<uint8_t>{'A'});
  CHECK(read_frame(sock, &p));
  CHECK_EQ(p.size(), size_t{2 + 600 * 1024});
  CHECK(p.size() > 2 && p[0] == 'H' && p[1] == 'D' && std::memcmp(p.data() + 2, file.data() + 1000, 600 * 1024) == 0);
  CHECK(read_frame(sock, &p));
  CHECK(p.size() == 101 && p[0] == 'h' && std::memcmp(p.data() + 1, file.data() + 5, 100) == 0);
  CHECK(read_frame(sock, &p));
  CHECK(p == std::vector<uint8_t>{'B'});
  CHECK(wait_fds(base));  // the duplicates went once their ranges were written

  // A file shorter than its range: the peer is reset (the frame's length was on the wire).
  fd = temp_file(64 * 1024, &file);
  CHECK(fd >= 0);
  data.clear();
  const uint32_t len = file_record(&data, fd, 32 * 1024, 64 * 1024, "");
  const uint8_t op = ZS_OP_SEND_FILE;
  const uint32_t who = uint32_t(peer);
  const uint8_t kind = zs_frame_kind_byte(8, 0);
  zs_io_submit(loop, data.data(), data.size(), 1, &op, &who, &kind, &len);
  close(fd);
  int32_t closed = -1;
  CHECK(wait_event(in, ZS_EV_CLOSE, &closed, &a));
  CHECK_EQ(closed, peer);
  CHECK_EQ(a, int32_t{ZS_CLOSE_RESET});
  CHECK(wait_fds(base));
  close(sock);
  zs_io_destroy(loop);
}

TEST(io_file_ranges_still_queued_when_the_loop_goes) {
  const int before_loop = open_fds();
  Inbox in;
  zs_io_loop* loop = zs_io_create(post, &in);
  CHECK(loop != nullptr);
  if (!loop) return;
  in.loop = loop;
  int port = zs_io_listen(loop, "127.0.0.1", 0, 0, &kOptions);
  CHECK(port > 0);
  int sock = connect_to(port);  // never read: the ranges stay queued
  CHECK(sock >= 0);
  int32_t peer = -1, a = 0;
  CHECK(wait_event(in, ZS_EV_OPEN, &peer, &a));
  const int base = open_fds();
  std::vector<uint8_t> file;
  int fd = temp_file(1024 * 1024, &file);
  CHECK(fd >= 0);
  std::vector<uint8_t> data;
  std::vector<uint32_t> lens;
  std::vector<uint8_t> ops;
  std::vector<uint32_t> peers;
  std::vector<uint8_t> kinds;
  for (int i = 0; i < 80; i++) {
    lens.push_back(file_record(&data, fd, 0, 1024 * 1024, "x"));
    ops.push_back(ZS_OP_SEND_FILE);
    peers.push_back(uint32_t(peer));
    kinds.push_back(zs_frame_kind_byte(8, 0));
  }
  zs_io_submit(loop, data.data(), data.size(), 80, ops.data(), peers.data(), kinds.data(), lens.data());
  close(fd);
  // The socket buffers take a few MiB; the rest wait, at most 64 ranges with a descriptor each
  // (kMaxFileRangesPerPeer), the ones past that copied into the queue. The submit duplicated all
  // 80 descriptors; the I/O thread closes the extra ones as it runs the records.
  for (int i = 0; i < 500 && open_fds() > base + 64; i++) usleep(10000);
  CHECK(open_fds() > base);
  CHECK(open_fds() <= base + 64);
  zs_io_destroy(loop);
  close(sock);
  CHECK_EQ(open_fds(), before_loop);  // the loop's own descriptors and every range's duplicate
}

// Inline mode, out of descriptors: the duplicate fails, and the range is read
// from the caller's descriptor during the submit (it is open then) and sent as
// bytes; nothing is left open.
TEST(io_file_inline_without_a_duplicate_copies_the_range) {
  InlineInbox in;
  zs_io_loop* loop = zs_io_create_inline(post_inline, &in);
  CHECK(loop != nullptr);
  if (!loop) return;
  in.loop = loop;
  int port = zs_io_listen(loop, "127.0.0.1", 0, 0, &kOptions);
  CHECK(port > 0);
  int sock = connect_to(port);
  CHECK(sock >= 0);
  int32_t peer = -1;
  for (int turn = 0; turn < 500 && peer < 0; turn++) {
    zs_io_run_once(loop);
    for (size_t i = 0; i + 3 < in.events.size(); i += 4)
      if (in.events[i] == ZS_EV_OPEN) peer = in.events[i + 1];
    if (peer < 0) usleep(1000);
  }
  CHECK(peer >= 0);
  std::vector<uint8_t> file;
  int fd = temp_file(100 * 1024, &file);
  CHECK(fd >= 0);
  const int base = open_fds();
  std::vector<uint8_t> data;
  const uint32_t len = file_record(&data, fd, 4096, 90 * 1024, "hd");
  const uint8_t op = ZS_OP_SEND_FILE;
  const uint32_t who = uint32_t(peer);
  const uint8_t kind = zs_frame_kind_byte(8, 0);
  // No descriptor number is free below the limit during the submit.
  rlimit saved;
  getrlimit(RLIMIT_NOFILE, &saved);
  const int lowest = dup(0);
  close(lowest);
  rlimit tight = saved;
  tight.rlim_cur = static_cast<rlim_t>(lowest);
  CHECK_EQ(setrlimit(RLIMIT_NOFILE, &tight), 0);
  zs_io_submit(loop, data.data(), data.size(), 1, &op, &who, &kind, &len);
  setrlimit(RLIMIT_NOFILE, &saved);
  close(fd);
  for (int turn = 0; turn < 20; turn++) zs_io_run_once(loop);
  std::vector<uint8_t> p;
  CHECK(read_frame(sock, &p));
  CHECK(p.size() == 2 + 90 * 1024 && p[0] == 'h' && p[1] == 'd' && std::memcmp(p.data() + 2, file.data() + 4096, 90 * 1024) == 0);
  CHECK_EQ(open_fds(), base - 1);  // the caller's descriptor, closed above; the loop held none
  for (size_t i = 0; i + 3 < in.events.size(); i += 4) CHECK(in.events[i] != ZS_EV_CLOSE);
  close(sock);
  zs_io_destroy(loop);
}

// The loop's bound on ranges (kMaxFileRanges, 4,096 descriptors over all
// peers; docs/limits.md "File service"): 65 peers that do not read are each
// handed 65 ranges of 16 KiB in one submit. Inline mode runs the records during
// the submit and writes nothing before the next turn, so exactly 4,096 ranges
// hold a duplicate then (64 peers × 64, kMaxFileRangesPerPeer); every other
// range was read with pread(2) into its peer's queue, no descriptor held. Each
// peer then receives its 65 frames in order, byte for byte, and once they are
// written no duplicate is left.
TEST(io_file_loop_bound_on_ranges_in_flight) {
  constexpr int kPeers = 65;
  constexpr int kRanges = 65;
  constexpr uint32_t kLen = 16 * 1024;  // the smallest range that is queued, not copied
  rlimit saved;
  getrlimit(RLIMIT_NOFILE, &saved);
  rlimit wide = saved;
  if (wide.rlim_cur < 8192) wide.rlim_cur = std::min<rlim_t>(8192, saved.rlim_max);
  setrlimit(RLIMIT_NOFILE, &wide);
  rlimit now;
  getrlimit(RLIMIT_NOFILE, &now);
  CHECK(now.rlim_cur >= 4096 + 2 * kPeers + 64);  // else this machine cannot reach the bound
  InlineInbox in;
  zs_io_loop* loop = zs_io_create_inline(post_inline, &in);
  CHECK(loop != nullptr);
  if (!loop) return;
  in.loop = loop;
  int port = zs_io_listen(loop, "127.0.0.1", 0, 0, &kOptions);
  CHECK(port > 0);
  std::vector<int> socks;
  std::vector<int32_t> peers;
  for (int i = 0; i < kPeers; i++) {
    int s = connect_to(port);
    CHECK(s >= 0);
    socks.push_back(s);
  }
  for (int turn = 0; turn < 2000 && static_cast<int>(peers.size()) < kPeers; turn++) {
    zs_io_run_once(loop);
    peers.clear();
    for (size_t i = 0; i + 3 < in.events.size(); i += 4)
      if (in.events[i] == ZS_EV_OPEN) peers.push_back(in.events[i + 1]);
    if (static_cast<int>(peers.size()) < kPeers) usleep(1000);
  }
  CHECK_EQ(static_cast<int>(peers.size()), kPeers);
  // Accept order and connect order match on loopback, but map each peer to its socket by its port to be sure.
  std::vector<int> sock_of(peers.size(), -1);
  for (size_t k = 0; k < peers.size(); k++) {
    char host[64];
    int remote_port = 0;
    CHECK_EQ(zs_io_peer_address(loop, uint32_t(peers[k]), 1, host, sizeof host, &remote_port), 0);
    for (int s : socks) {
      sockaddr_in a{};
      socklen_t alen = sizeof a;
      getsockname(s, reinterpret_cast<sockaddr*>(&a), &alen);
      if (ntohs(a.sin_port) == remote_port) sock_of[k] = s;
    }
    CHECK(sock_of[k] >= 0);
  }
  std::vector<uint8_t> file;
  int fd = temp_file(kRanges * kLen, &file);
  CHECK(fd >= 0);
  const int base = open_fds();
  std::vector<uint8_t> data;
  std::vector<uint32_t> lens;
  std::vector<uint8_t> ops;
  std::vector<uint32_t> who;
  std::vector<uint8_t> kinds;
  for (int k = 0; k < kPeers; k++) {
    for (int r = 0; r < kRanges; r++) {
      lens.push_back(file_record(&data, fd, uint64_t(r) * kLen, kLen, "h"));
      ops.push_back(ZS_OP_SEND_FILE);
      who.push_back(uint32_t(peers[k]));
      kinds.push_back(zs_frame_kind_byte(8, 0));
    }
  }
  zs_io_submit(loop, data.data(), data.size(), uint32_t(lens.size()), ops.data(), who.data(), kinds.data(), lens.data());
  CHECK_EQ(open_fds(), base + 4096);  // the loop's bound, reached and held
  close(fd);

  // Every peer's frames arrive in order and whole: the loop writes on its turns, the sockets are read between them.
  std::vector<std::vector<uint8_t>> got(peers.size());
  const size_t frame_bytes = ZS_FRAME_HEADER + 1 + kLen + 4;
  const size_t want = frame_bytes * kRanges;
  std::vector<uint8_t> buf(256 * 1024);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  for (;;) {
    bool all = true;
    for (size_t k = 0; k < peers.size(); k++) {
      while (got[k].size() < want) {
        ssize_t n = recv(sock_of[k], buf.data(), buf.size(), MSG_DONTWAIT);
        if (n <= 0) break;
        got[k].insert(got[k].end(), buf.data(), buf.data() + n);
      }
      all = all && got[k].size() >= want;
    }
    if (all || std::chrono::steady_clock::now() > deadline) break;
    zs_io_run_once(loop);
  }
  for (size_t k = 0; k < peers.size(); k++) {
    CHECK_EQ(got[k].size(), want);
    if (got[k].size() != want) continue;
    for (int r = 0; r < kRanges; r++) {
      const uint8_t* f = got[k].data() + size_t(r) * frame_bytes;
      uint32_t len;
      std::memcpy(&len, f + 4, 4);
      CHECK_EQ(len, 1 + kLen);
      CHECK(f[ZS_FRAME_HEADER] == 'h');
      CHECK(std::memcmp(f + ZS_FRAME_HEADER + 1, file.data() + size_t(r) * kLen, kLen) == 0);
    }
  }
  for (size_t i = 0; i + 3 < in.events.size(); i += 4) CHECK(in.events[i] != ZS_EV_CLOSE);
  CHECK_EQ(open_fds(), base - 1);  // every duplicate closed once written (and the file's own, above)
  for (int s : socks) close(s);
  zs_io_destroy(loop);
  setrlimit(RLIMIT_NOFILE, &saved);
}

// Fairness when a turn's batch fills (issue 20: 1,000 downloads of 256 KiB
// frames saw some connections unread for 30 s and more, their frame timeout
// firing with the bytes waiting in the kernel). epoll, level-triggered, hands
// back the same ready peers in the same order every turn while they stay
// readable; a turn that stopped reading at kBatchCap (8 MiB) left the peers
// after that point for the next wait, which put them after the same ones
// again, so they were never read. 250 peers here always have frames of 512 KiB
// waiting (the test side tops every socket up before each turn), far more
// than one 8 MiB batch per turn can take: within 40 turns every peer must
// have had frames delivered.
TEST(io_loop_full_batch_leaves_no_peer_unread) {
  constexpr int kPeers = 250;
  constexpr uint32_t kPayload = 512 * 1024;
  rlimit saved;
  getrlimit(RLIMIT_NOFILE, &saved);
  rlimit wide = saved;
  if (wide.rlim_cur < 1024) wide.rlim_cur = std::min<rlim_t>(1024, saved.rlim_max);
  setrlimit(RLIMIT_NOFILE, &wide);
  InlineInbox in;
  zs_io_loop* loop = zs_io_create_inline(
      [](void* ctx, const zs_io_batch* b) {
        auto* box = static_cast<InlineInbox*>(ctx);
        // Frames per peer, counted as events of type -1 (peer, 0, 0) so one inbox serves.
        for (uint32_t i = 0; i < b->frames; i++) box->events.insert(box->events.end(), {-1, int32_t(b->peers[i]), 0, 0});
        box->events.insert(box->events.end(), b->event_records, b->event_records + 4 * b->events);
        zs_io_batch_done(box->loop, b);
      },
      &in);
  CHECK(loop != nullptr);
  if (!loop) return;
  in.loop = loop;
  int port = zs_io_listen(loop, "127.0.0.1", 0, 0, &kOptions);
  CHECK(port > 0);
  std::vector<int> socks;
  for (int i = 0; i < kPeers; i++) {
    int s = connect_to(port);
    CHECK(s >= 0);
    if (s < 0) break;
    const int sndbuf = 4 << 20;  // as much as the system allows: more bytes waiting per read
    setsockopt(s, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
    socks.push_back(s);
  }
  std::vector<int32_t> peers;
  for (int turn = 0; turn < 2000 && static_cast<int>(peers.size()) < kPeers; turn++) {
    zs_io_run_once(loop);
    peers.clear();
    for (size_t i = 0; i + 3 < in.events.size(); i += 4)
      if (in.events[i] == ZS_EV_OPEN) peers.push_back(in.events[i + 1]);
    if (static_cast<int>(peers.size()) < kPeers) usleep(1000);
  }
  CHECK_EQ(static_cast<int>(peers.size()), kPeers);
  // One frame, written again and again by every socket (non-blocking, as far as each one takes).
  std::vector<uint8_t> frame(kPayload + ZS_FRAME_OVERHEAD);
  std::vector<uint8_t> payload(kPayload, 0x5a);
  zs_frame_encode(&kOptions.frame, zs_frame_kind_byte(8, 0), payload.data(), kPayload, frame.data());
  std::vector<size_t> at(socks.size(), 0);
  const auto top_up = [&] {
    for (size_t k = 0; k < socks.size(); k++) {
      for (int round = 0; round < 256; round++) {
        ssize_t n = send(socks[k], frame.data() + at[k], frame.size() - at[k], MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n <= 0) break;
        at[k] = (at[k] + static_cast<size_t>(n)) % frame.size();
      }
    }
  };
  in.events.clear();
  for (int turn = 0; turn < 40; turn++) {
    top_up();
    zs_io_run_once(loop);
  }
  std::vector<int> frames_of(peers.size(), 0);
  int closes = 0;
  for (size_t i = 0; i + 3 < in.events.size(); i += 4) {
    if (in.events[i] == ZS_EV_CLOSE) closes++;
    if (in.events[i] != -1) continue;
    for (size_t k = 0; k < peers.size(); k++)
      if (peers[k] == in.events[i + 1]) frames_of[k]++;
  }
  CHECK_EQ(closes, 0);
  int unread = 0, total = 0;
  for (int f : frames_of) {
    unread += f == 0;
    total += f;
  }
  std::fprintf(stderr, "  %d frames over %d peers in 40 turns; peers with none: %d\n", total, kPeers, unread);
  CHECK(total > 8 * 1024 * 1024 / int(kPayload));  // at least one full batch went through
  CHECK_EQ(unread, 0);
  for (int s : socks) close(s);
  zs_io_destroy(loop);
  setrlimit(RLIMIT_NOFILE, &saved);
}
