// A single-threaded C++ epoll frame echo server: the ceiling row of
// bench/echo.ts. It reads, finds the complete frames (docs/protocol.md,
// default tokens), and writes those bytes straight back — no JavaScript, no
// copy beyond the read buffer. If the load generator drives this server
// much faster than any Node row, the generator is not what limits the rows.
//
// Usage: echo-server PORT   (prints "READY <port>" once listening; port 0 picks one)
// Build: g++ -O2 -std=c++17 -o build/echo-server bench/loadgen/echo-server.cc
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace {

constexpr uint32_t kHead = 0x5a534846;
constexpr uint32_t kMax = 16u << 20;

struct Conn {
  std::vector<uint8_t> in;   // bytes of an unfinished frame
  std::vector<uint8_t> out;  // echo bytes the kernel has not taken yet
};

bool write_all(int fd, Conn& c, const uint8_t* p, size_t n) {
  if (!c.out.empty()) {
    c.out.insert(c.out.end(), p, p + n);
    return true;
  }
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno != EAGAIN) return false;
      c.out.insert(c.out.end(), p, p + n);
      return true;
    }
    p += w;
    n -= w;
  }
  return true;
}

// Length of the complete frames at the start of [p, p + n), or -1 when the bytes are not frames.
long complete(const uint8_t* p, size_t n) {
  size_t at = 0;
  while (n - at >= 9) {
    uint32_t head, len;
    memcpy(&head, p + at, 4);
    memcpy(&len, p + at + 4, 4);
    if (head != kHead || len > kMax) return -1;
    if (n - at < 13 + size_t(len)) break;
    at += 13 + len;
  }
  return long(at);
}

}  // namespace

int main(int argc, char** argv) {
  signal(SIGPIPE, SIG_IGN);
  int port = argc > 1 ? atoi(argv[1]) : 0;
  int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  int one = 1;
  setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(ls, reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0 || listen(ls, 4096) < 0) {
    perror("echo-server: listen");
    return 1;
  }
  socklen_t len = sizeof addr;
  getsockname(ls, reinterpret_cast<sockaddr*>(&addr), &len);
  printf("READY %d\n", ntohs(addr.sin_port));
  fflush(stdout);

  int ep = epoll_create1(0);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = ls;
  epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
  std::vector<Conn> conns(1024);
  std::vector<epoll_event> events(1024);
  std::vector<uint8_t> buf(256 * 1024);
  while (true) {
    int n = epoll_wait(ep, events.data(), events.size(), -1);
    for (int e = 0; e < n; e++) {
      int fd = events[e].data.fd;
      if (fd == ls) {
        int c;
        while ((c = accept4(ls, nullptr, nullptr, SOCK_NONBLOCK)) >= 0) {
          setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          if (size_t(c) >= conns.size()) conns.resize(c * 2);
          conns[c] = Conn{};
          epoll_event cev{};
          cev.events = EPOLLIN;
          cev.data.fd = c;
          epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev);
        }
        continue;
      }
      Conn& c = conns[fd];
      bool dead = false;
      bool had_out = !c.out.empty();
      if ((events[e].events & EPOLLOUT) && had_out) {
        std::vector<uint8_t> pending;
        pending.swap(c.out);
        dead = !write_all(fd, c, pending.data(), pending.size());
      }
      // Level-triggered: one read per wakeup, like the load generator.
      ssize_t r = 0;
      if (!dead && (events[e].events & (EPOLLIN | EPOLLHUP | EPOLLERR))) {
        r = read(fd, buf.data(), buf.size());
        if (r == 0 || (r < 0 && errno != EAGAIN)) dead = true;
      }
      if (!dead && r > 0) {
        const uint8_t* p = buf.data();
        size_t have = size_t(r);
        if (!c.in.empty()) {
          c.in.insert(c.in.end(), p, p + have);
          p = c.in.data();
          have = c.in.size();
        }
        long whole = complete(p, have);
        if (whole < 0 || !write_all(fd, c, p, size_t(whole))) {
          dead = true;
        } else {
          std::vector<uint8_t> rest(p + whole, p + have);
          c.in.swap(rest);
        }
      }
      if (!dead && had_out != !c.out.empty()) {
        epoll_event cev{};
        cev.events = c.out.empty() ? EPOLLIN : EPOLLIN | EPOLLOUT;
        cev.data.fd = fd;
        epoll_ctl(ep, EPOLL_CTL_MOD, fd, &cev);
      }
      if (dead) {
        close(fd);
        conns[fd] = Conn{};
      }
    }
  }
}
