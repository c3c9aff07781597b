// The Linux back end of poller.h: epoll, level-triggered, with an eventfd as
// the wake-up channel.
#include <errno.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <new>

#include "poller.h"

struct zs_poller {
  int epfd;
  int wakefd;
  // Set by zs_poller_wake and cleared when the wake-up is consumed, so a burst
  // of wake-ups from the JavaScript thread costs one eventfd write.
  std::atomic<bool> wake_pending{false};
};

namespace {

uint32_t to_epoll(uint32_t events) {
  uint32_t e = 0;
  if (events & ZS_POLL_IN) e |= EPOLLIN | EPOLLRDHUP;
  if (events & ZS_POLL_OUT) e |= EPOLLOUT;
  return e;
}

}  // namespace

extern "C" {

zs_poller* zs_poller_create(void) {
  int epfd = epoll_create1(EPOLL_CLOEXEC);
  if (epfd < 0) return nullptr;
  int wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wakefd < 0) {
    int e = errno;
    close(epfd);
    errno = e;
    return nullptr;
  }
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = ZS_POLL_WAKE_DATA;
  if (epoll_ctl(epfd, EPOLL_CTL_ADD, wakefd, &ev) < 0) {
    int e = errno;
    close(wakefd);
    close(epfd);
    errno = e;
    return nullptr;
  }
  auto* p = new (std::nothrow) zs_poller;
  if (!p) {
    close(wakefd);
    close(epfd);
    errno = ENOMEM;
    return nullptr;
  }
  p->epfd = epfd;
  p->wakefd = wakefd;
  return p;
}

void zs_poller_destroy(zs_poller* p) {
  if (!p) return;
  close(p->wakefd);
  close(p->epfd);
  delete p;
}

int zs_poller_add(zs_poller* p, int fd, uint64_t data, uint32_t events) {
  epoll_event ev{};
  ev.events = to_epoll(events);
  ev.data.u64 = data;
  return epoll_ctl(p->epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

int zs_poller_modify(zs_poller* p, int fd, uint64_t data, uint32_t events) {
  epoll_event ev{};
  ev.events = to_epoll(events);
  ev.data.u64 = data;
  return epoll_ctl(p->epfd, EPOLL_CTL_MOD, fd, &ev) < 0 ? -errno : 0;
}

int zs_poller_remove(zs_poller* p, int fd) {
  epoll_event ev{};
  return epoll_ctl(p->epfd, EPOLL_CTL_DEL, fd, &ev) < 0 ? -errno : 0;
}

int zs_poller_wait(zs_poller* p, zs_poll_event* out, int max, int timeout_ms) {
  epoll_event evs[256];
  if (max > 256) max = 256;
  int n = epoll_wait(p->epfd, evs, max, timeout_ms);
  if (n < 0) return errno == EINTR ? 0 : -errno;
  for (int i = 0; i < n; i++) {
    out[i].data = evs[i].data.u64;
    uint32_t e = 0;
    if (evs[i].events & (EPOLLIN | EPOLLRDHUP)) e |= ZS_POLL_IN;
    if (evs[i].events & EPOLLOUT) e |= ZS_POLL_OUT;
    if (evs[i].events & (EPOLLERR | EPOLLHUP)) e |= ZS_POLL_ERR;
    out[i].events = e;
    if (evs[i].data.u64 == ZS_POLL_WAKE_DATA) {
      uint64_t v;
      // Drain, then clear the flag. The other order loses wake-ups: a wake()
      // between the clear and the read writes, the read swallows its write,
      // and the flag stays set with nothing in the channel, so every later
      // wake() skips its write and the loop only turns on socket events or
      // its 100 ms tick. In this order a wake() that still sees the flag set
      // skips its write, but the caller's commands were queued before it and
      // the loop takes them in the turn this wait is returning into.
      while (read(p->wakefd, &v, sizeof v) > 0) {
      }
      p->wake_pending.store(false, std::memory_order_seq_cst);
    }
  }
  return n;
}

int zs_poller_fd(zs_poller* p) { return p->epfd; }

void zs_poller_wake(zs_poller* p) {
  if (p->wake_pending.exchange(true, std::memory_order_seq_cst)) return;
  uint64_t one = 1;
  ssize_t r;
  do {
    r = write(p->wakefd, &one, sizeof one);
  } while (r < 0 && errno == EINTR);
}

}
