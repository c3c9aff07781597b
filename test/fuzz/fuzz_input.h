// Shared by the libFuzzer targets of test/fuzz: a reader that takes typed
// values off the front of the fuzzer's input (zeros once it runs out), and
// FUZZ_CHECK, which aborts with the failed condition so libFuzzer saves the
// input as a crash artifact. Targets check invariants with FUZZ_CHECK rather
// than assert(), which NDEBUG would compile away.
#ifndef ZS_FUZZ_INPUT_H
#define ZS_FUZZ_INPUT_H

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#define FUZZ_CHECK(cond)                                                              \
  do {                                                                                \
    if (!(cond)) {                                                                    \
      std::fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                   \
    }                                                                                 \
  } while (0)

class FuzzInput {
 public:
  FuzzInput(const uint8_t* data, size_t size) : p_(data), n_(size) {}

  uint8_t u8() {
    if (n_ == 0) return 0;
    n_--;
    return *p_++;
  }
  uint16_t u16() { return static_cast<uint16_t>(u8() | u8() << 8); }
  uint32_t u32() { return static_cast<uint32_t>(u16()) | static_cast<uint32_t>(u16()) << 16; }

  // Up to `want` bytes off the front; *got says how many there were.
  const uint8_t* take(size_t want, size_t* got) {
    const size_t k = want < n_ ? want : n_;
    const uint8_t* at = p_;
    p_ += k;
    n_ -= k;
    *got = k;
    return at;
  }
  const uint8_t* rest() const { return p_; }
  size_t remaining() const { return n_; }

 private:
  const uint8_t* p_;
  size_t n_;
};

#endif
