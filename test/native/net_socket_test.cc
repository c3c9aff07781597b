// Socket helpers of the I/O loop (native/core/net_socket.h): a listening
// socket's accepted connections and an outgoing connection both end up with
// TCP_NODELAY, whether set per socket or inherited from the listener (the loop
// relies on the latter on Linux and skips the call per accept).
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check.h"
#include "net_socket.h"

namespace {

int nodelay(int fd) {
  int v = -1;
  socklen_t len = sizeof v;
  if (getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &v, &len) < 0) return -1;
  return v != 0 ? 1 : 0;
}

}  // namespace

TEST(net_socket_accepted_and_connected_sockets_have_nodelay) {
  int port = 0;
  const int lfd = zs_net_listen("127.0.0.1", 0, 0, 16, &port);
  CHECK(lfd >= 0);
  if (lfd < 0) return;
  CHECK(port > 0);
  const int cfd = zs_net_connect("127.0.0.1", port, "127.0.0.1");
  CHECK(cfd >= 0);
  pollfd p{lfd, POLLIN, 0};
  CHECK_EQ(poll(&p, 1, 2000), 1);
  const int afd = accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
  CHECK(afd >= 0);
  zs_net_tune_accepted(afd);
  CHECK_EQ(nodelay(afd), 1);
  CHECK_EQ(nodelay(cfd), 1);
  pollfd w{cfd, POLLOUT, 0};
  CHECK_EQ(poll(&w, 1, 2000), 1);
  CHECK_EQ(zs_net_socket_error(cfd), 0);
  char host[64];
  int remote_port = 0;
  CHECK_EQ(zs_net_address(afd, 1, host, sizeof host, &remote_port), 0);
  CHECK(remote_port > 0);
  if (afd >= 0) close(afd);
  if (cfd >= 0) close(cfd);
  close(lfd);
}
