// The readiness poller behind the I/O loop: one interface, one back end per
// platform in a sibling file (poller_epoll.cc on Linux; kqueue and IOCP back
// ends are later siblings), picked by the build, never by #ifdefs in callers.
//
// Level-triggered: a descriptor reported readable stays reported until it is
// drained, so the loop may read once per wake-up and stay fair across peers.
// Each registration carries a 64-bit user word that comes back with its events.
// The poller also owns a wake-up channel: zs_poller_wake() may be called from
// any thread and makes a pending or the next zs_poller_wait() return an event
// whose data is ZS_POLL_WAKE_DATA.
#ifndef ZS_POLLER_H
#define ZS_POLLER_H

#include <cstdint>

extern "C" {

#define ZS_POLL_IN 0x1u
#define ZS_POLL_OUT 0x2u
#define ZS_POLL_ERR 0x4u  // error or hang-up: read or write to learn which
#define ZS_POLL_WAKE_DATA UINT64_MAX

typedef struct zs_poller zs_poller;

typedef struct zs_poll_event {
  uint64_t data;
  uint32_t events;  // ZS_POLL_*
} zs_poll_event;

// Returns null on failure (errno is set).
zs_poller* zs_poller_create(void);
void zs_poller_destroy(zs_poller* p);

// These return 0, or -errno.
int zs_poller_add(zs_poller* p, int fd, uint64_t data, uint32_t events);
int zs_poller_modify(zs_poller* p, int fd, uint64_t data, uint32_t events);
int zs_poller_remove(zs_poller* p, int fd);

// Waits up to timeout_ms (-1: forever) and fills at most max events.
// Returns the number of events, or -errno (never -EINTR: that returns 0).
int zs_poller_wait(zs_poller* p, zs_poll_event* out, int max, int timeout_ms);

// Thread-safe; cheap when a wake-up is already pending.
void zs_poller_wake(zs_poller* p);

// A descriptor that polls readable whenever zs_poller_wait has events, so an
// outer event loop (libuv) can drive the poller.
int zs_poller_fd(zs_poller* p);

}

#endif
