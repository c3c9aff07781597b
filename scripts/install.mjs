// `npm install` hook: use the prebuilt addon when one loads on this platform;
// otherwise build from source, with cmake-js when it is installed (a checkout
// of this repository) or with the node-gyp that npm itself ships (a user's
// install without a matching prebuilt). ZSERVER_BUILD_FROM_SOURCE=1 forces a
// source build.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const prebuilt = join(root, 'prebuilds', `${process.platform}-${process.arch}`, 'zserver.node');

if (process.env.ZSERVER_BUILD_FROM_SOURCE !== '1' && existsSync(prebuilt)) {
  try {
    require(prebuilt);
    console.log(`zserver: using the prebuilt addon for ${process.platform}-${process.arch}`);
    process.exit(0);
  } catch (err) {
    console.log(`zserver: the prebuilt addon does not load here (${err.message.split('\n')[0]}); building from source`);
  }
}

function resolve(id) {
  try {
    return require.resolve(id, { paths: [root] });
  } catch {
    return undefined;
  }
}

const cmakeJs = resolve('cmake-js/bin/cmake-js');
const nodeGyp = process.env.npm_config_node_gyp || resolve('node-gyp/bin/node-gyp.js');
let result;
if (cmakeJs) {
  result = spawnSync(process.execPath, [cmakeJs, 'compile', '--out', 'build'], { cwd: root, stdio: 'inherit' });
} else if (nodeGyp) {
  result = spawnSync(process.execPath, [nodeGyp, 'rebuild'], { cwd: root, stdio: 'inherit' });
} else {
  result = { status: 1 };
  console.error('zserver: neither cmake-js nor node-gyp was found to build the addon.');
}
if (result.status !== 0) {
  console.error(
    `zserver: building the native addon for ${process.platform}-${process.arch} on Node ${process.version} failed. ` +
      `It needs python3, make and a C++17 compiler (Debian/Ubuntu: apt-get install python3 make g++ cmake). ` +
      `Then run \`npm rebuild zserver\`.`,
  );
  process.exit(result.status ?? 1);
}
