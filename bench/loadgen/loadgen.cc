// Echo load generator for bench/echo.ts: one thread, one epoll loop, N
// connections each keeping K messages of S bytes in flight. Written in C++ so
// that it is not the bottleneck of the servers it measures (docs/bench.md says
// how that was checked: its CPU use is reported with the result).
//
// Modes:
//   frame  zserver frames (docs/protocol.md): head u32, length u32, kind byte,
//          payload, tail u32; the server echoes each frame.
//   ws     RFC 6455 WebSocket: HTTP/1.1 upgrade, then masked binary client
//          frames of S bytes; the server echoes each message.
//   wsframe  WebSocket carrying zserver frames (the native-ws transport): each
//          message holds one frame of S payload bytes; a reply message may hold
//          several frames (the server gathers a turn's replies), each counted.
//
// Every connection sends K messages at start and one more for each echo it
// reads, so K stay in flight. Replies on one connection come back in order,
// so a ring of send times per connection gives each round trip.
//
// Prints one JSON object on stdout:
//   {"msgs":..,"seconds":..,"msgsPerSec":..,"p50us":..,"p99us":..,"errors":..,
//    "connectMs":..,"cpuSeconds":..,"cpuShare":..}
// cpuShare is the generator's own CPU time over the wall time of the measured
// window, waitShare the time it was runnable but had no CPU (schedstat run
// delay). When cpuShare + waitShare is well under 1.0 the generator sat in
// epoll_wait waiting for the server, so the server was the limit.
//
// Build: g++ -O2 -std=c++17 -o build/loadgen bench/loadgen/loadgen.cc
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

constexpr uint32_t kHead = 0x5a534846;
constexpr uint32_t kTail = 0x5a535446;
constexpr int kHistMax = 1000000;  // microseconds; slower round trips land in the last bucket

double now_s() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

// Seconds this process spent runnable but waiting for a CPU (other processes had it).
double run_delay_s() {
  FILE* f = fopen("/proc/self/schedstat", "r");
  if (!f) return 0;
  unsigned long long run = 0, wait = 0;
  int got = fscanf(f, "%llu %llu", &run, &wait);
  fclose(f);
  return got == 2 ? wait * 1e-9 : 0;
}

double cpu_s() {
  rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec * 1e-6;
}

struct Options {
  std::string host = "127.0.0.1";
  int port = 0;
  int conns = 100;
  int inflight = 16;
  int size = 64;
  double warmup = 1.0;
  double duration = 3.0;
  bool ws = false;
  bool wsframe = false;  // ws messages hold zserver frames
};

struct Conn {
  int fd = -1;
  bool upgraded = false;  // ws mode: the 101 response has been read
  bool connected = false;
  std::vector<uint8_t> in;  // unparsed received bytes
  size_t in_at = 0;
  std::vector<double> sent;  // ring of send times
  size_t ring_head = 0, ring_count = 0;
  std::vector<uint8_t> out;  // bytes not yet accepted by the kernel
  size_t out_at = 0;
};

Options opt;
std::vector<uint8_t> message;  // one encoded message
std::vector<uint32_t> hist(kHistMax + 1);
uint64_t measured = 0, errors = 0;
bool measuring = false;
double measure_start = 0;

void die(const char* what) {
  fprintf(stderr, "loadgen: %s: %s\n", what, strerror(errno));
  exit(1);
}

void build_message() {
  std::vector<uint8_t> payload(opt.size);
  for (int i = 0; i < opt.size; i++) payload[i] = uint8_t(i * 7 + 1);
  if (opt.wsframe) {
    std::vector<uint8_t> f(13 + opt.size);
    memcpy(&f[0], &kHead, 4);
    uint32_t n = opt.size;
    memcpy(&f[4], &n, 4);
    f[8] = 8;
    memcpy(&f[9], payload.data(), opt.size);
    memcpy(&f[9 + opt.size], &kTail, 4);
    payload = f;
  }
  const int size = int(payload.size());
  if (!opt.ws) {
    message.resize(13 + opt.size);
    memcpy(&message[0], &kHead, 4);
    uint32_t n = opt.size;
    memcpy(&message[4], &n, 4);
    message[8] = 8;  // kind 8: the first kind for layers above the transport
    memcpy(&message[9], payload.data(), opt.size);
    memcpy(&message[9 + opt.size], &kTail, 4);
    return;
  }
  const uint8_t mask[4] = {0x12, 0x34, 0x56, 0x78};
  message.push_back(0x82);  // FIN + binary
  if (size < 126) {
    message.push_back(0x80 | size);
  } else {
    message.push_back(0x80 | 126);
    message.push_back(uint8_t(size >> 8));
    message.push_back(uint8_t(size));
  }
  message.insert(message.end(), mask, mask + 4);
  for (int i = 0; i < size; i++) message.push_back(payload[i] ^ mask[i & 3]);
}

void queue_messages(Conn& c, int count, double t) {
  for (int i = 0; i < count; i++) {
    c.out.insert(c.out.end(), message.begin(), message.end());
    c.sent[(c.ring_head + c.ring_count) % c.sent.size()] = t;
    c.ring_count++;
  }
}

bool flush(Conn& c) {
  while (c.out_at < c.out.size()) {
    ssize_t n = write(c.fd, c.out.data() + c.out_at, c.out.size() - c.out_at);
    if (n < 0) {
      if (errno == EAGAIN) return true;
      return false;
    }
    c.out_at += n;
  }
  c.out.clear();
  c.out_at = 0;
  return true;
}

void got_reply(Conn& c, double t) {
  if (c.ring_count == 0) {
    errors++;
    return;
  }
  double rtt = t - c.sent[c.ring_head];
  c.ring_head = (c.ring_head + 1) % c.sent.size();
  c.ring_count--;
  if (measuring) {
    measured++;
    long us = long(rtt * 1e6);
    hist[us < 0 ? 0 : (us > kHistMax ? kHistMax : us)]++;
  }
}

// Parses every complete reply in c.in; returns how many, or -1 on a protocol error.
int parse(Conn& c, double t) {
  int replies = 0;
  uint8_t* p = c.in.data();
  size_t end = c.in.size();
  while (true) {
    size_t avail = end - c.in_at;
    uint8_t* q = p + c.in_at;
    if (!opt.ws) {
      if (avail < 13) break;
      uint32_t head, n;
      memcpy(&head, q, 4);
      memcpy(&n, q + 4, 4);
      if (head != kHead) return -1;
      if (avail < 13 + size_t(n)) break;
      c.in_at += 13 + n;
    } else {
      if (avail < 2) break;
      size_t n = q[1] & 0x7f, hdr = 2;
      if (n == 126) {
        if (avail < 4) break;
        n = (size_t(q[2]) << 8) | q[3];
        hdr = 4;
      } else if (n == 127) {
        return -1;  // the bench never sends messages that big
      }
      if (avail < hdr + n) break;
      c.in_at += hdr + n;
      if (opt.wsframe) {
        // Every frame of the message is one reply.
        size_t at = hdr;
        int frames = 0;
        while (at + 13 <= hdr + n) {
          uint32_t len;
          memcpy(&len, q + at + 4, 4);
          at += 13 + size_t(len);
          frames++;
        }
        if (at != hdr + n || frames == 0) return -1;
        for (int k = 1; k < frames; k++) {
          got_reply(c, t);
          replies++;
        }
      }
    }
    got_reply(c, t);
    replies++;
  }
  if (c.in_at == c.in.size()) {
    c.in.clear();
    c.in_at = 0;
  } else if (c.in_at > 65536) {
    c.in.erase(c.in.begin(), c.in.begin() + c.in_at);
    c.in_at = 0;
  }
  return replies;
}

int parse_arg(int argc, char** argv) {
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--host") opt.host = v;
    else if (k == "--port") opt.port = atoi(v.c_str());
    else if (k == "--conns") opt.conns = atoi(v.c_str());
    else if (k == "--inflight") opt.inflight = atoi(v.c_str());
    else if (k == "--size") opt.size = atoi(v.c_str());
    else if (k == "--warmup") opt.warmup = atof(v.c_str());
    else if (k == "--duration") opt.duration = atof(v.c_str());
    else if (k == "--mode") {
      opt.ws = v == "ws" || v == "wsframe";
      opt.wsframe = v == "wsframe";
    }
    else {
      fprintf(stderr, "loadgen: unknown option %s\n", k.c_str());
      return 1;
    }
  }
  if (opt.port <= 0 || opt.conns <= 0 || opt.inflight <= 0 || opt.size < 0 || opt.size > 65535 - 13) {
    fprintf(stderr, "usage: loadgen --port P [--host H] [--conns N] [--inflight K] [--size S] [--warmup s] [--duration s] [--mode frame|ws|wsframe]\n");
    return 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (parse_arg(argc, argv)) return 2;
  build_message();
  int ep = epoll_create1(0);
  if (ep < 0) die("epoll_create1");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(opt.port);
  if (inet_pton(AF_INET, opt.host.c_str(), &addr.sin_addr) != 1) die("inet_pton");

  std::vector<Conn> conns(opt.conns);
  double t_connect = now_s();
  for (int i = 0; i < opt.conns; i++) {
    Conn& c = conns[i];
    c.sent.resize(opt.inflight);
    c.fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (c.fd < 0) die("socket");
    int one = 1;
    setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(c.fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0 && errno != EINPROGRESS) die("connect");
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP;
    ev.data.u32 = i;
    if (epoll_ctl(ep, EPOLL_CTL_ADD, c.fd, &ev) < 0) die("epoll_ctl");
  }

  // Phase 1: connect (and upgrade) every connection.
  const std::string upgrade = "GET / HTTP/1.1\r\nHost: " + opt.host + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                              "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
  int ready = 0;
  std::vector<epoll_event> events(1024);
  double deadline = now_s() + 10;
  while (ready < opt.conns) {
    if (now_s() > deadline) {
      fprintf(stderr, "loadgen: only %d of %d connections ready after 10 s\n", ready, opt.conns);
      return 1;
    }
    int n = epoll_wait(ep, events.data(), events.size(), 100);
    for (int e = 0; e < n; e++) {
      Conn& c = conns[events[e].data.u32];
      if (events[e].events & (EPOLLERR | EPOLLHUP)) {
        fprintf(stderr, "loadgen: connection failed\n");
        return 1;
      }
      if (!c.connected && (events[e].events & EPOLLOUT)) {
        c.connected = true;
        if (!opt.ws) {
          ready++;
        } else if (write(c.fd, upgrade.data(), upgrade.size()) != ssize_t(upgrade.size())) {
          die("write upgrade");
        }
      }
      if (opt.ws && c.connected && !c.upgraded && (events[e].events & EPOLLIN)) {
        char buf[4096];
        ssize_t r = read(c.fd, buf, sizeof buf);
        if (r <= 0) die("read upgrade");
        c.in.insert(c.in.end(), buf, buf + r);
        std::string s(c.in.begin(), c.in.end());
        size_t end = s.find("\r\n\r\n");
        if (end != std::string::npos) {
          if (s.compare(0, 12, "HTTP/1.1 101") != 0) {
            fprintf(stderr, "loadgen: upgrade refused: %.40s\n", s.c_str());
            return 1;
          }
          c.in.erase(c.in.begin(), c.in.begin() + end + 4);
          c.upgraded = true;
          ready++;
        }
      }
    }
  }
  double connect_ms = (now_s() - t_connect) * 1e3;
  for (int i = 0; i < opt.conns; i++) {
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP;
    ev.data.u32 = i;
    epoll_ctl(ep, EPOLL_CTL_MOD, conns[i].fd, &ev);
  }

  // Phase 2: K in flight per connection; warm up, then measure.
  double start = now_s();
  for (auto& c : conns) {
    queue_messages(c, opt.inflight, start);
    if (!flush(c)) die("write");
  }
  double cpu0 = 0, wait0 = 0, wall_end = start + opt.warmup + opt.duration;
  std::vector<uint8_t> buf(256 * 1024);
  while (true) {
    double t = now_s();
    if (!measuring && t >= start + opt.warmup) {
      measuring = true;
      measure_start = t;
      cpu0 = cpu_s();
      wait0 = run_delay_s();
    }
    if (t >= wall_end) break;
    int n = epoll_wait(ep, events.data(), events.size(), 50);
    t = now_s();
    for (int e = 0; e < n; e++) {
      uint32_t i = events[e].data.u32;
      Conn& c = conns[i];
      if (events[e].events & EPOLLOUT) {
        if (!flush(c)) die("write");
        if (c.out.empty()) {
          epoll_event ev{};
          ev.events = EPOLLIN | EPOLLRDHUP;
          ev.data.u32 = i;
          epoll_ctl(ep, EPOLL_CTL_MOD, c.fd, &ev);
        }
      }
      if (!(events[e].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))) continue;
      ssize_t r = read(c.fd, buf.data(), buf.size());
      if (r <= 0) {
        if (r < 0 && errno == EAGAIN) continue;
        fprintf(stderr, "loadgen: the server closed a connection\n");
        return 1;
      }
      c.in.insert(c.in.end(), buf.data(), buf.data() + r);
      int replies = parse(c, t);
      if (replies < 0) {
        fprintf(stderr, "loadgen: bad reply bytes\n");
        return 1;
      }
      if (replies > 0) {
        bool was_empty = c.out.empty();
        queue_messages(c, replies, t);
        if (!flush(c)) die("write");
        if (was_empty && !c.out.empty()) {
          epoll_event ev{};
          ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP;
          ev.data.u32 = i;
          epoll_ctl(ep, EPOLL_CTL_MOD, c.fd, &ev);
        }
      }
    }
  }
  double seconds = now_s() - measure_start;
  double cpu = cpu_s() - cpu0;
  double waited = run_delay_s() - wait0;
  for (auto& c : conns) close(c.fd);

  auto percentile = [](double p) {
    uint64_t total = 0;
    for (auto v : hist) total += v;
    uint64_t want = uint64_t(total * p), seen = 0;
    for (int us = 0; us <= kHistMax; us++) {
      seen += hist[us];
      if (seen > want) return us;
    }
    return kHistMax;
  };
  printf("{\"msgs\":%llu,\"seconds\":%.4f,\"msgsPerSec\":%.1f,\"p50us\":%d,\"p99us\":%d,\"errors\":%llu,"
         "\"connectMs\":%.2f,\"cpuSeconds\":%.4f,\"cpuShare\":%.3f,\"waitShare\":%.3f}\n",
         (unsigned long long)measured, seconds, measured / seconds, percentile(0.5), percentile(0.99),
         (unsigned long long)errors, connect_ms, cpu, cpu / seconds, waited / seconds);
  return 0;
}
