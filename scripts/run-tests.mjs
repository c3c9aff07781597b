// `npm test`: runs every test/**/*.test.ts with Node's test runner (TypeScript
// through tsx). Pass file names or folders to run fewer: `npm test -- test/hash/hash.test.ts`.
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

function collect(path, out) {
  if (statSync(path).isDirectory()) {
    for (const name of readdirSync(path).sort()) collect(join(path, name), out);
  } else if (path.endsWith('.test.ts')) {
    out.push(path);
  }
  return out;
}

const roots = process.argv.slice(2);
const files = (roots.length ? roots : ['test']).flatMap((r) => collect(r, []));
if (files.length === 0) {
  console.error('run-tests: no test files found');
  process.exit(1);
}
// One file at a time by default: the hardening tests measure RSS growth and honest clients'
// latency while a server is attacked, and a second file running beside them on two cores made
// one of them fail (an attack server died, 2026-12-07). ZS_TEST_CONCURRENCY=2 runs two files at
// once (about 40 % faster here: most of a file's time is waiting).
const concurrency = Number(process.env.ZS_TEST_CONCURRENCY ?? 1);
if (!Number.isInteger(concurrency) || concurrency < 1) {
  console.error(`run-tests: ZS_TEST_CONCURRENCY must be a positive integer, got ${process.env.ZS_TEST_CONCURRENCY}`);
  process.exit(2);
}
const result = spawnSync(process.execPath, ['--import', 'tsx', '--test', `--test-concurrency=${concurrency}`, ...files], {
  stdio: 'inherit',
});
process.exit(result.status ?? 1);
