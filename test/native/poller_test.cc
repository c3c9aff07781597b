// The poller's wake-up channel (native/core/poller.h): every zs_poller_wake()
// from another thread must end a zs_poller_wait(), even one that blocks
// forever, however the wake-ups and the waits interleave. A lost wake-up
// stalls the I/O thread until some socket event happens to come along, so
// here the waiter has no descriptor but the wake-up channel (and a pipe that
// only ends the test) and waits with no timeout; the test thread gives up after 5 s per round and reports a failure.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include <unistd.h>

#include "check.h"
#include "poller.h"

TEST(poller_every_wake_ends_a_wait_without_timeout) {
  zs_poller* p = zs_poller_create();
  CHECK(p != nullptr);
  if (!p) return;
  // Ends the waiter at the end even when the wake-up channel is broken.
  int quit[2];
  CHECK_EQ(pipe(quit), 0);
  CHECK_EQ(zs_poller_add(p, quit[0], 1, ZS_POLL_IN), 0);
  constexpr int kRounds = 2000;
  std::mutex mu;
  std::condition_variable cv;
  int posted = 0;  // rounds the test thread asked for (the "commands")
  int seen = 0;    // rounds the waiter took after a wait returned
  std::atomic<bool> stop{false};
  std::thread waiter([&] {
    zs_poll_event ev[4];
    while (!stop.load()) {
      zs_poller_wait(p, ev, 4, -1);
      std::lock_guard<std::mutex> lock(mu);
      seen = posted;  // take every command queued so far, as the loop does each turn
      cv.notify_all();
    }
  });
  // A storm of wake-ups from two threads first: the waiter keeps draining the
  // channel while they write, which is when a wake-up can get lost.
  auto storm = [&] {
    for (int i = 0; i < 300000; i++) zs_poller_wake(p);
  };
  std::thread a(storm), b(storm);
  a.join();
  b.join();
  // Then every round must get through: a "command" posted, one wake-up, the waiter takes it.
  int stalled_at = -1;
  for (int round = 1; round <= kRounds && stalled_at < 0; round++) {
    {
      std::lock_guard<std::mutex> lock(mu);
      posted = round;
    }
    zs_poller_wake(p);
    std::unique_lock<std::mutex> lock(mu);
    if (!cv.wait_for(lock, std::chrono::seconds(5), [&] { return seen >= round; })) stalled_at = round;
  }
  CHECK_EQ(stalled_at, -1);
  stop.store(true);
  CHECK_EQ(write(quit[1], "q", 1), 1);
  waiter.join();
  zs_poller_destroy(p);
  close(quit[0]);
  close(quit[1]);
}
