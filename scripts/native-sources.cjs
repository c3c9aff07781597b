// Prints the native source files for binding.gyp, one per argument, so that
// gyp and CMake build the same list: `node scripts/native-sources.cjs core|binding`.
// Like CMakeLists.txt it takes every .cc of the folder: the only event-loop back
// end is poller_epoll.cc (Linux); a platform filter comes with a second one.
'use strict';
const fs = require('fs');
const path = require('path');

const which = process.argv[2];
const dir = path.join(__dirname, '..', 'native', which);
const files = fs
  .readdirSync(dir)
  .filter((f) => f.endsWith('.cc'))
  .sort()
  .map((f) => `native/${which}/${f}`);
process.stdout.write(files.join(' '));
