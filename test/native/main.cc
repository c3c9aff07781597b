// Runs every TEST registered by the test/native/*_test.cc files. An optional
// argument runs only the tests whose names contain it.
#include <cstring>

#include "check.h"

namespace zs_test {
std::vector<Case>& registry() {
  static std::vector<Case> cases;
  return cases;
}
int current_failures = 0;
}  // namespace zs_test

int main(int argc, char** argv) {
  int passed = 0, failed = 0;
  for (const auto& c : zs_test::registry()) {
    if (argc > 1 && !std::strstr(c.name, argv[1])) continue;
    zs_test::current_failures = 0;
    c.fn();
    if (zs_test::current_failures) {
      std::printf("FAIL %s\n", c.name);
      failed++;
    } else {
      std::printf("ok   %s\n", c.name);
      passed++;
    }
  }
  std::printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
