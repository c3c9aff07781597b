// Prints the native source files for binding.gyp, one per argument, so that
// gyp and CMake build the same list: `node scripts/native-sources.cjs core|binding`.
// Mirrors the platform filter in CMakeLists.txt.
'use strict';
const fs = require('fs');
const path = require('path');

const which = process.argv[2];
const dir = path.join(__dirname, '..', 'native', which);
const skip = {
  'poller_kqueue.cc': process.platform !== 'darwin',
  'poller_iocp.cc': process.platform !== 'win32',
  'poller_epoll.cc': process.platform === 'win32' || process.platform === 'darwin',
};
const files = fs
  .readdirSync(dir)
  .filter((f) => f.endsWith('.cc') && !skip[f])
  .sort()
  .map((f) => `native/${which}/${f}`);
process.stdout.write(files.join(' '));
