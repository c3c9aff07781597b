// `npm run prebuild`: builds the addon in Release mode and copies it to
// prebuilds/<platform>-<arch>/zserver.node, where the loader looks first and
// which `npm pack` includes. Run it once on each platform you ship for (see
// docs/build.md) and gather the prebuilds/ folders before packing.
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const cmakeJs = createRequire(import.meta.url).resolve('cmake-js/bin/cmake-js');
const build = spawnSync(process.execPath, [cmakeJs, 'compile', '--out', 'build'], { cwd: root, stdio: 'inherit' });
if (build.status !== 0) process.exit(build.status ?? 1);

const dir = join(root, 'prebuilds', `${process.platform}-${process.arch}`);
mkdirSync(dir, { recursive: true });
copyFileSync(join(root, 'build', 'Release', 'zserver.node'), join(dir, 'zserver.node'));
if (process.platform === 'linux') spawnSync('strip', ['--strip-unneeded', join(dir, 'zserver.node')], { stdio: 'inherit' });
console.log(`zserver: wrote ${join('prebuilds', `${process.platform}-${process.arch}`, 'zserver.node')}`);
