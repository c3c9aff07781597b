// See net_socket.h.
#include "net_socket.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

namespace {

// Fills ss from a numeric host; returns its length or 0 when not numeric.
socklen_t make_address(const char* host, int port, sockaddr_storage* ss) {
  std::memset(ss, 0, sizeof *ss);
  auto* v4 = reinterpret_cast<sockaddr_in*>(ss);
  if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<uint16_t>(port));
    return sizeof(sockaddr_in);
  }
  auto* v6 = reinterpret_cast<sockaddr_in6*>(ss);
  if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<uint16_t>(port));
    return sizeof(sockaddr_in6);
  }
  return 0;
}

int fail_close(int fd) {
  int e = errno;
  close(fd);
  return -e;
}

}  // namespace

extern "C" {

int zs_net_listen(const char* host, int port, int reuse_port, int backlog, int* bound_port) {
  sockaddr_storage ss;
  socklen_t len = make_address(host, port, &ss);
  if (!len || port < 0 || port > 65535) return -EINVAL;
  int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (reuse_port && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0) return fail_close(fd);
  // "::" listens on IPv6 only, like an explicit "0.0.0.0" listens on IPv4
  // only: a program that wants both listens on both, and each keeps its port.
  if (ss.ss_family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  if (bind(fd, reinterpret_cast<sockaddr*>(&ss), len) < 0) return fail_close(fd);
  zs_net_tune(fd);  // inherited by accepted sockets on Linux
  if (listen(fd, backlog) < 0) return fail_close(fd);
  sockaddr_storage bound;
  socklen_t blen = sizeof bound;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &blen) < 0) return fail_close(fd);
  *bound_port = ntohs(bound.ss_family == AF_INET ? reinterpret_cast<sockaddr_in*>(&bound)->sin_port
                                                 : reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port);
  return fd;
}

int zs_net_adopt_listener(int fd, int* bound_port) {
  int type = 0, listening = 0;
  socklen_t len = sizeof type;
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0) return -errno;
  len = sizeof listening;
  if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) < 0) return -errno;
  if (type != SOCK_STREAM || !listening) return -EINVAL;
  sockaddr_storage bound;
  socklen_t blen = sizeof bound;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &blen) < 0) return -errno;
  if (bound.ss_family != AF_INET && bound.ss_family != AF_INET6) return -EAFNOSUPPORT;
  int own = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (own < 0) return -errno;
  int fl = fcntl(own, F_GETFL);
  if (fl < 0 || fcntl(own, F_SETFL, fl | O_NONBLOCK) < 0) return fail_close(own);
  zs_net_tune(own);  // inherited by accepted sockets on Linux
  *bound_port = ntohs(bound.ss_family == AF_INET ? reinterpret_cast<sockaddr_in*>(&bound)->sin_port
                                                 : reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port);
  return own;
}

int zs_net_connect(const char* host, int port, const char* local_host) {
  sockaddr_storage ss;
  socklen_t len = make_address(host, port, &ss);
  if (!len || port <= 0 || port > 65535) return -EINVAL;
  int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  if (local_host && *local_host) {
    sockaddr_storage local;
    socklen_t llen = make_address(local_host, 0, &local);
    if (!llen || local.ss_family != ss.ss_family) {
      close(fd);
      return -EINVAL;
    }
#ifdef IP_BIND_ADDRESS_NO_PORT
    // Pick the source port at connect() time, from the whole 4-tuple, instead
    // of a port free for every destination at bind() time: with tens of
    // thousands of sockets on one source address the bind-time search is slow
    // and runs out of ports long before connect-time selection would.
    int one = 1;
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
#endif
    if (bind(fd, reinterpret_cast<sockaddr*>(&local), llen) < 0) return fail_close(fd);
  }
  zs_net_tune(fd);
  if (connect(fd, reinterpret_cast<sockaddr*>(&ss), len) < 0 && errno != EINPROGRESS) return fail_close(fd);
  return fd;
}

int zs_net_socket_error(int fd) {
  int err = 0;
  socklen_t len = sizeof err;
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) return errno;
  return err;
}

void zs_net_tune(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

void zs_net_tune_accepted(int fd) {
#ifdef __linux__
  (void)fd;
#else
  zs_net_tune(fd);
#endif
}

void zs_net_close_abort(int fd) {
  linger lg{1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  close(fd);
}

int zs_net_address(int fd, int remote, char* host, int host_size, int* port) {
  sockaddr_storage ss;
  socklen_t len = sizeof ss;
  int r = remote ? getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len)
                 : getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  if (r < 0) return -errno;
  const void* addr;
  if (ss.ss_family == AF_INET) {
    auto* v4 = reinterpret_cast<sockaddr_in*>(&ss);
    addr = &v4->sin_addr;
    *port = ntohs(v4->sin_port);
  } else {
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&ss);
    addr = &v6->sin6_addr;
    *port = ntohs(v6->sin6_port);
  }
  if (!inet_ntop(ss.ss_family, addr, host, static_cast<socklen_t>(host_size))) return -errno;
  return 0;
}

}
