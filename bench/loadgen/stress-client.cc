// A stress-runner client in C++ (the fast alternative to lib/stress/client.ts):
// one epoll loop opens this child's share of the connections from its own
// loopback source addresses, lets each connection exchange M messages one
// after another (each echoed), then closes them. A Node client needs about
// 0.1-0.3 ms of CPU per connect here, which with 2 cores caps the connect
// phase of 60,000 connections at several seconds whatever the server; this
// one uses IP_BIND_ADDRESS_NO_PORT so the kernel picks the source port at
// connect() time without scanning its bind table.
//
// Connections take their source address round-robin from --source (a comma
// list). Linux picks a connect-time port by walking the ephemeral range from
// a point hashed from (source, destination, port), even ports first: past
// about half of the range's 28,000 ports per such triple, every connect walks
// all the used even ports before trying an odd one, which made 15,000
// connections from one address cost ~120 us of kernel CPU each (against ~28
// at 10,000). A few thousand connections per address keep the walk short.
//
// It speaks the runner's protocol (lib/stress/protocol.ts) as JSON lines:
// commands "connect", "exchange", "close" on stdin; messages ready,
// progress, connected, exchanged, closed on stdout.
//
// With --mode rpc the connections talk to the command framework running the
// stress app (lib/stress/app.ts) in the message format of docs/protocol.md,
// "Messages": the exchange is M Console calls of `stress.ping` per connection
// (kind 8, answered by Reply kind 18 or Error kind 19), keepalive pings
// (kind 0) are answered with pongs (kind 1), and three more commands come on
// stdin: "presence" and "broadcast" (the first open connection calls
// stress.presence / stress.broadcast and reports what they answered) and
// "tick-report" (report at once how many connections got the 'stress.tick'
// direct console message, kind 10, that the broadcast sends; otherwise
// reported when all have). With --call stream each call is the Stream
// request (kind 9) `stress.add` with a DataFrame of two int32 instead, and its
// Reply must hold their sum (else error wrong-answer); the operands are fixed
// per process (from --index), since every call reuses one prebuilt request.
// Plain connections only: the secure channel and rooms are the Node client's
// (lib/stress/rpc-client.ts).
//
// Usage: stress-client --host H --ports P[,P...] --source A[,A...] --conns N --messages M --size S
//                      [--index I] [--window W] [--mode echo|rpc] [--call console|stream]
// Build: g++ -O2 -std=c++17 -o build/stress-client bench/loadgen/stress-client.cc
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

namespace {

constexpr uint32_t kHead = 0x5a534846;
constexpr uint32_t kTail = 0x5a535446;
constexpr int kBuckets = 400;  // must match HISTOGRAM_BUCKETS of lib/stress/protocol.ts
constexpr uint64_t kStdin = ~uint64_t(0);
// The framework's message kinds (docs/protocol.md, "Messages") and the stress app's names.
constexpr uint8_t kPing = 0, kPong = 1, kConsole = 8, kStream = 9, kDirectConsole = 10, kReply = 18, kError = 19;
// DataFrame type id of an int32 (docs/protocol.md, "DataFrame").
constexpr uint8_t kInt32 = 2;
constexpr uint32_t kMaxFrame = 1u << 20;  // the server's default maxFrameSize
// Request ids: one call in flight per connection, so each request type has its own fixed id.
constexpr uint32_t kIdPing = 1, kIdPresence = 2, kIdBroadcast = 3;
const std::string kTick = "stress.tick";

double now_ms() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

// Wall-clock ms since the epoch: times compared across processes (broadcast sent, tick arrived).
double wall_ms() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

int bucket_of(double us) {
  if (us <= 1) return 0;
  int b = int(std::lround(std::log(us) / std::log(1.05)));
  return b < kBuckets ? b : kBuckets - 1;
}

struct Conn {
  int fd = -1;
  bool open = false;
  bool ticked = false;
  uint32_t remaining = 0;
  double sent_at = 0;
  std::vector<uint8_t> in;
};

std::string host = "127.0.0.1";
std::vector<sockaddr_in> sources;
std::vector<int> ports;
int conns_wanted = 0, messages = 10, size = 64, index_ = 0, window_ = 2000;
std::vector<Conn> conns;
std::vector<uint8_t> message;
std::map<std::string, uint64_t> errors;
std::vector<uint64_t> hist(kBuckets);
int ep = -1;
int started = 0, connected = 0, failed = 0, finished = 0, exchanging = 0;
uint64_t done_msgs = 0;
double t_connect = 0, last_progress = 0;
enum class Phase { Idle, Connect, Exchange } phase = Phase::Idle;
bool rpc = false;
// rpc --call stream: the calls are stress.add(add_a, add_b), and the Reply's DataFrame must be this.
bool stream_call = false;
uint8_t add_answer[6];
// rpc mode: ticks received, connections lost before their tick, when the last tick came.
int ticks = 0, lost_unticked = 0;
double last_tick_at = 0, broadcast_sent_at = 0;
bool tick_reported = false;
int ticks_said = 0;  // ticks last reported as progress

void say(const std::string& json) {
  fputs(json.c_str(), stdout);
  fputc('\n', stdout);
  fflush(stdout);
}

std::string errors_json() {
  std::string s = "{";
  for (auto& [k, v] : errors) s += (s.size() > 1 ? "," : "") + ("\"" + k + "\":" + std::to_string(v));
  return s + "}";
}

void count(const std::string& kind) { errors[kind]++; }

// One frame: head token, length, kind, payload, tail token (docs/protocol.md, "Frames").
std::vector<uint8_t> frame(uint8_t kind, const uint8_t* payload, size_t n) {
  std::vector<uint8_t> f(13 + n);
  uint32_t len = uint32_t(n);
  memcpy(&f[0], &kHead, 4);
  memcpy(&f[4], &len, 4);
  f[8] = kind;
  if (n > 0) memcpy(&f[9], payload, n);
  memcpy(&f[9 + n], &kTail, 4);
  return f;
}

// A Console request: id u32, name (u8 length + bytes), text to the end.
std::vector<uint8_t> console_call(uint32_t id, const std::string& name, const std::string& text) {
  std::vector<uint8_t> p(4 + 1 + name.size() + text.size());
  memcpy(&p[0], &id, 4);
  p[4] = uint8_t(name.size());
  memcpy(&p[5], name.data(), name.size());
  memcpy(&p[5 + name.size()], text.data(), text.size());
  return frame(kConsole, p.data(), p.size());
}

// A Stream request of stress.add: id u32, name, DataFrame {count 2, int32 a, int32 b}; also
// sets the answer its Reply must carry: DataFrame {count 1, int32 a + b}.
std::vector<uint8_t> add_call(uint32_t id, int32_t a, int32_t b) {
  const std::string name = "stress.add";
  std::vector<uint8_t> p(4 + 1 + name.size() + 11);
  memcpy(&p[0], &id, 4);
  p[4] = uint8_t(name.size());
  memcpy(&p[5], name.data(), name.size());
  uint8_t* df = &p[5 + name.size()];
  df[0] = 2;
  df[1] = kInt32;
  memcpy(&df[2], &a, 4);
  df[6] = kInt32;
  memcpy(&df[7], &b, 4);
  int32_t sum = int32_t(uint32_t(a) + uint32_t(b));  // wraps as the app's `| 0` does
  add_answer[0] = 1;
  add_answer[1] = kInt32;
  memcpy(&add_answer[2], &sum, 4);
  return frame(kStream, p.data(), p.size());
}

void start_connect() {
  while (started < conns_wanted && started - connected - failed < window_) {
    int i = started++;
    Conn& c = conns[i];
    c.fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (c.fd < 0) {
      count(std::string("connect:") + strerrorname_np(errno));
      failed++;
      continue;
    }
    int one = 1;
    setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(c.fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    const sockaddr_in& local = sources[i % sources.size()];
    sockaddr_in remote{};
    remote.sin_family = AF_INET;
    remote.sin_port = htons(ports[(i + index_) % ports.size()]);
    inet_pton(AF_INET, host.c_str(), &remote.sin_addr);
    if (bind(c.fd, reinterpret_cast<const sockaddr*>(&local), sizeof local) < 0 ||
        (connect(c.fd, reinterpret_cast<sockaddr*>(&remote), sizeof remote) < 0 && errno != EINPROGRESS)) {
      count(std::string("connect:") + strerrorname_np(errno));
      close(c.fd);
      c.fd = -1;
      failed++;
      continue;
    }
    // Registered once for good, edge-triggered: the first EPOLLOUT says the
    // connect finished, later edges say bytes arrived (read until drained).
    // One epoll_ctl per connection instead of an ADD and a MOD.
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
    ev.data.u64 = uint64_t(i);
    epoll_ctl(ep, EPOLL_CTL_ADD, c.fd, &ev);
  }
}

void check_connect_done() {
  if (phase == Phase::Connect && connected + failed == conns_wanted) {
    phase = Phase::Idle;
    char buf[128];
    snprintf(buf, sizeof buf, "{\"type\":\"connected\",\"ms\":%.2f,\"ok\":%d,\"errors\":", now_ms() - t_connect, connected);
    say(buf + errors_json() + "}");
  }
}

void lose(Conn& c, const char* kind) {
  if (!c.open) return;
  c.open = false;
  epoll_ctl(ep, EPOLL_CTL_DEL, c.fd, nullptr);
  close(c.fd);
  c.fd = -1;
  count(kind);
  if (!c.ticked) lost_unticked++;
  if (phase == Phase::Exchange && c.remaining > 0) {
    c.remaining = 0;
    finished++;
  }
}

void check_exchange_done() {
  if (phase == Phase::Exchange && finished == exchanging) {
    phase = Phase::Idle;
    std::string h = "[";
    for (int b = 0; b < kBuckets; b++) h += (b ? "," : "") + std::to_string(hist[b]);
    say("{\"type\":\"exchanged\",\"messages\":" + std::to_string(done_msgs) + ",\"histogram\":" + h + "],\"errors\":" + errors_json() + "}");
  }
}

bool take(Conn& c, const uint8_t* buf, size_t r);

void report_ticks(bool now) {
  int of = connected - lost_unticked;
  if (tick_reported || (!now && ticks < of)) return;
  tick_reported = true;
  char buf[160];
  snprintf(buf, sizeof buf, "{\"type\":\"ticked\",\"got\":%d,\"of\":%d,\"lastAt\":%.3f}", ticks, of, last_tick_at);
  say(buf);
}

// The number after "key": in a small JSON answer such as {"online":123}; -1 when absent.
long json_number(const std::string& text, const std::string& key) {
  size_t at = text.find("\"" + key + "\":");
  return at == std::string::npos ? -1 : strtol(text.c_str() + at + key.size() + 3, nullptr, 10);
}

// One call of a connection's exchange is over (answered either way): record it, start the next.
void call_done(Conn& c, double t, bool ok) {
  if (c.remaining == 0) {
    count("unexpected-reply");
    return;
  }
  if (ok) {
    hist[bucket_of((t - c.sent_at) * 1e3)]++;
    done_msgs++;
  }
  if (--c.remaining > 0) {
    c.sent_at = t;
    if (write(c.fd, message.data(), message.size()) != ssize_t(message.size())) count("short-write");
  } else {
    finished++;
  }
}

// One framework message on connection c (rpc mode); false when the connection was lost.
bool on_message(Conn& c, uint8_t kind, const uint8_t* p, uint32_t n, double t) {
  if (kind == kPing) {
    std::vector<uint8_t> pong = frame(kPong, p, n);
    if (write(c.fd, pong.data(), pong.size()) != ssize_t(pong.size())) count("short-write");
    return true;
  }
  if (kind == kDirectConsole) {
    if (n < 1 || n < 1u + p[0]) {
      lose(c, "reply:malformed");
      return false;
    }
    if (std::string(reinterpret_cast<const char*>(p + 1), p[0]) == kTick && !c.ticked) {
      c.ticked = true;
      ticks++;
      last_tick_at = wall_ms();
      report_ticks(false);
    }
    return true;
  }
  if (kind != kReply && kind != kError) {
    count("unexpected-kind");
    return true;
  }
  if (n < 4) {
    lose(c, "reply:malformed");
    return false;
  }
  uint32_t id;
  memcpy(&id, p, 4);
  std::string body(reinterpret_cast<const char*>(p + 4), n - 4);
  std::string code;
  if (kind == kError) {
    size_t len = body.empty() ? 0 : uint8_t(body[0]);
    code = body.substr(1, len);
    body = body.size() > 1 + len ? body.substr(1 + len) : "";
  }
  if (id == kIdPing) {
    if (kind == kError) count("call:" + code);
    else if (stream_call && (body.size() != sizeof add_answer || memcmp(body.data(), add_answer, sizeof add_answer) != 0)) count("wrong-answer");
    else if (!stream_call && int(body.size()) != size) count("wrong-size");
    call_done(c, t, kind == kReply);
  } else if (id == kIdPresence) {
    long online = kind == kReply ? json_number(body, "online") : -1;
    say("{\"type\":\"presence\",\"online\":" + std::to_string(online) + (kind == kError ? ",\"error\":\"" + code + "\"" : "") + "}");
  } else if (id == kIdBroadcast) {
    long reached = kind == kReply ? json_number(body, "reached") : -1;
    char buf[128];
    snprintf(buf, sizeof buf, "{\"type\":\"broadcasted\",\"sentAt\":%.3f,\"answeredAt\":%.3f,\"reached\":%ld", broadcast_sent_at, wall_ms(), reached);
    say(buf + (kind == kError ? ",\"error\":\"" + code + "\"" : std::string()) + "}");
  } else {
    count("unexpected-reply");
  }
  return true;
}

// Edge-triggered: reads until a short read says the socket is drained.
void on_readable(Conn& c) {
  uint8_t buf[65536];
  for (;;) {
    ssize_t r = read(c.fd, buf, sizeof buf);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 && errno == EAGAIN) return;
    if (r <= 0) {
      lose(c, r == 0 ? "closed-by-server" : "socket:reset");
      return;
    }
    if (!take(c, buf, size_t(r)) || size_t(r) < sizeof buf) return;
  }
}

// Handles the bytes of one read; false when the connection was lost.
bool take(Conn& c, const uint8_t* buf, size_t r) {
  c.in.insert(c.in.end(), buf, buf + r);
  size_t at = 0;
  double t = now_ms();
  while (c.in.size() - at >= 13) {
    uint32_t head, n;
    memcpy(&head, &c.in[at], 4);
    memcpy(&n, &c.in[at + 4], 4);
    if (head != kHead) {
      lose(c, "reply:bad-token");
      return false;
    }
    if (n > kMaxFrame) {
      lose(c, "reply:oversize");
      return false;
    }
    if (c.in.size() - at < 13 + size_t(n)) break;
    if (rpc) {
      uint8_t kind = c.in[at + 8] & 0x3f;
      size_t payload = at + 9;
      at += 13 + n;
      if (!on_message(c, kind, &c.in[payload], n, t)) return false;
      continue;
    }
    at += 13 + n;
    if (c.remaining == 0) {
      count("unexpected-reply");
      continue;
    }
    if (int(n) != size) count("wrong-size");
    hist[bucket_of((t - c.sent_at) * 1e3)]++;
    done_msgs++;
    if (--c.remaining > 0) {
      c.sent_at = t;
      if (write(c.fd, message.data(), message.size()) != ssize_t(message.size())) count("short-write");
    } else {
      finished++;
    }
  }
  c.in.erase(c.in.begin(), c.in.begin() + at);
  return true;
}

void command(const std::string& cmd) {
  if (cmd == "connect") {
    phase = Phase::Connect;
    t_connect = now_ms();
    start_connect();
    check_connect_done();
  } else if (cmd == "exchange") {
    errors.clear();
    phase = Phase::Exchange;
    double t = now_ms();
    for (auto& c : conns) {
      if (!c.open) continue;
      exchanging++;
      c.remaining = messages;
      c.sent_at = t;
      if (messages == 0) {
        finished++;
      } else if (write(c.fd, message.data(), message.size()) != ssize_t(message.size())) {
        count("short-write");
      }
    }
    check_exchange_done();
  } else if (rpc && (cmd == "presence" || cmd == "broadcast")) {
    Conn* first = nullptr;
    for (auto& c : conns) {
      if (c.open) {
        first = &c;
        break;
      }
    }
    bool presence = cmd == "presence";
    if (first == nullptr) {
      say(presence ? "{\"type\":\"presence\",\"online\":-1,\"error\":\"no open connection\"}"
                   : "{\"type\":\"broadcasted\",\"sentAt\":0,\"answeredAt\":0,\"reached\":-1,\"error\":\"no open connection\"}");
      return;
    }
    std::vector<uint8_t> req = presence ? console_call(kIdPresence, "stress.presence", "") : console_call(kIdBroadcast, "stress.broadcast", "1");
    if (!presence) broadcast_sent_at = wall_ms();
    if (write(first->fd, req.data(), req.size()) != ssize_t(req.size())) count("short-write");
  } else if (rpc && cmd == "tick-report") {
    report_ticks(true);
  } else if (cmd == "close") {
    for (auto& c : conns) {
      if (c.fd >= 0) close(c.fd);
    }
    say("{\"type\":\"closed\"}");
    exit(0);
  }
}

}  // namespace

int main(int argc, char** argv) {
  signal(SIGPIPE, SIG_IGN);
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--host") host = v;
    else if (k == "--source") {
      for (size_t at = 0; at < v.size();) {
        size_t comma = v.find(',', at);
        if (comma == std::string::npos) comma = v.size();
        sockaddr_in a{};
        a.sin_family = AF_INET;
        if (inet_pton(AF_INET, v.substr(at, comma - at).c_str(), &a.sin_addr) != 1) {
          fprintf(stderr, "stress-client: --source wants IPv4 addresses, got '%s'\n", v.c_str());
          return 2;
        }
        sources.push_back(a);
        at = comma + 1;
      }
    }
    else if (k == "--conns") conns_wanted = atoi(v.c_str());
    else if (k == "--messages") messages = atoi(v.c_str());
    else if (k == "--size") size = atoi(v.c_str());
    else if (k == "--index") index_ = atoi(v.c_str());
    else if (k == "--window") window_ = atoi(v.c_str());
    else if (k == "--mode") rpc = v == "rpc";
    else if (k == "--call") stream_call = v == "stream";
    else if (k == "--ports") {
      for (size_t at = 0; at < v.size();) {
        size_t comma = v.find(',', at);
        if (comma == std::string::npos) comma = v.size();
        ports.push_back(atoi(v.substr(at, comma - at).c_str()));
        at = comma + 1;
      }
    }
  }
  if (sources.empty()) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    inet_pton(AF_INET, "127.0.0.2", &a.sin_addr);
    sources.push_back(a);
  }
  if (ports.empty() || conns_wanted <= 0 || size < 0) {
    fprintf(stderr, "usage: stress-client --host H --ports P[,P] --source A --conns N --messages M --size S\n");
    return 2;
  }
  if (rpc) {
    message = stream_call ? add_call(kIdPing, 40 + index_, 2000000000) : console_call(kIdPing, "stress.ping", std::string(size, 'x'));
  } else {
    std::vector<uint8_t> payload(size, 0x5a);
    message = frame(8, payload.data(), payload.size());
  }
  conns.resize(conns_wanted);
  ep = epoll_create1(0);
  epoll_event sev{};
  sev.events = EPOLLIN;
  sev.data.u64 = kStdin;
  epoll_ctl(ep, EPOLL_CTL_ADD, 0, &sev);
  say("{\"type\":\"ready\",\"port\":0}");

  std::string line;
  std::vector<epoll_event> events(4096);
  while (true) {
    int k = epoll_wait(ep, events.data(), events.size(), 100);
    for (int e = 0; e < k; e++) {
      uint64_t id = events[e].data.u64;
      if (id == kStdin) {
        char buf[256];
        ssize_t r = read(0, buf, sizeof buf);
        if (r <= 0) return 0;  // the runner went away
        for (ssize_t j = 0; j < r; j++) {
          if (buf[j] == '\n') {
            command(line);
            line.clear();
          } else {
            line += buf[j];
          }
        }
        continue;
      }
      Conn& c = conns[id];
      if (!c.open) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0 || (events[e].events & (EPOLLERR | EPOLLHUP))) {
          count(std::string("connect:") + strerrorname_np(err ? err : ECONNRESET));
          epoll_ctl(ep, EPOLL_CTL_DEL, c.fd, nullptr);
          close(c.fd);
          c.fd = -1;
          failed++;
        } else {
          c.open = true;
          connected++;
        }
        start_connect();
        check_connect_done();
        if (c.open && (events[e].events & (EPOLLIN | EPOLLRDHUP))) on_readable(c);  // that edge will not come again
        continue;
      }
      on_readable(c);
    }
    check_exchange_done();
    double t = now_ms();
    if (t - last_progress > 200 && phase != Phase::Idle) {
      last_progress = t;
      say("{\"type\":\"progress\",\"done\":" + std::to_string(phase == Phase::Connect ? uint64_t(connected) : done_msgs) + "}");
    } else if (t - last_progress > 100 && phase == Phase::Idle && ticks != ticks_said) {
      // Between phases, progress counts the broadcast's ticks: the runner stops waiting once
      // they add up to what the server sent.
      last_progress = t;
      ticks_said = ticks;
      say("{\"type\":\"progress\",\"done\":" + std::to_string(ticks) + "}");
    }
  }
}
