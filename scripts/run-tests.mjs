// `npm test`: runs every test/**/*.test.ts with Node's test runner (TypeScript
// through tsx), one `node --test` process per file. Pass file names or folders to run fewer:
// `npm test -- test/hash/hash.test.ts`.
//
// ZS_TEST_CONCURRENCY (default 1) files run at once; with more than one, each file's output is
// held back and printed whole when the file ends, so reports never interleave. A file whose
// first lines hold the marker `// run-tests: alone` runs with no other file beside it: the
// hardening tests measure RSS growth and honest clients' latency while a server is attacked, and
// a second file on the same two cores would measure that file, not the server.
// At the end it prints the file and test counts, each failed file and the slowest files with their
// wall time (CI time is a budget: this is where it goes).
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
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
const concurrency = Number(process.env.ZS_TEST_CONCURRENCY ?? 1);
if (!Number.isInteger(concurrency) || concurrency < 1) {
  console.error(`run-tests: ZS_TEST_CONCURRENCY must be a positive integer, got ${process.env.ZS_TEST_CONCURRENCY}`);
  process.exit(2);
}
// The same report format on every Node (Node 23+ defaults to spec even into a pipe; CI greps
// the TAP summary lines).
const reporter = process.stdout.isTTY ? 'spec' : 'tap';
const alone = new Set(files.filter((f) => /^\/\/ run-tests: alone\b/m.test(readFileSync(f, 'utf8').slice(0, 2000))));

const children = new Set();
function runFile(file) {
  const started = Date.now();
  const buffered = concurrency > 1;
  const child = spawn(process.execPath, ['--import', 'tsx', '--test', `--test-reporter=${reporter}`, file], {
    stdio: ['ignore', 'pipe', buffered ? 'pipe' : 'inherit'],
  });
  children.add(child);
  // A child that cannot start still ends with 'close' (code null): the file counts as failed.
  child.on('error', (err) => console.error(`run-tests: ${file}: ${err.message}`));
  const chunks = [];
  // The end of the report, for its counts ('# tests 12' in TAP, 'ℹ tests 12' in spec).
  let tail = '';
  child.stdout.on('data', (c) => {
    if (buffered) chunks.push(c);
    else process.stdout.write(c);
    tail = (tail + c.toString()).slice(-4096);
  });
  if (buffered) child.stderr.on('data', (c) => chunks.push(c));
  return new Promise((resolve) => {
    child.on('close', (code, signal) => {
      children.delete(child);
      const seconds = (Date.now() - started) / 1000;
      if (buffered) process.stdout.write(Buffer.concat(chunks));
      const ok = code === 0;
      const count = (what) => Number(new RegExp(`^(?:# |ℹ )${what} (\\d+)\\s*$`, 'm').exec(tail.replace(/\x1b\[[0-9;]*m/g, ''))?.[1] ?? 0);
      console.log(`# run-tests: ${file} ${ok ? 'ok' : `FAILED (exit ${code ?? signal})`} in ${seconds.toFixed(1)} s`);
      resolve({ file, ok, seconds, tests: count('tests'), failedTests: count('fail') });
    });
  });
}

for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    for (const child of children) child.kill(sig);
    process.exit(130);
  });
}

const started = Date.now();
const results = [];
// `alone` files first: each holds both cores for its own time only, and the rest packs in after.
const queue = [...files.filter((f) => alone.has(f)), ...files.filter((f) => !alone.has(f))];
let running = 0;
let aloneRunning = false;
await new Promise((resolveAll) => {
  const pump = () => {
    if (queue.length === 0 && running === 0) return resolveAll();
    while (queue.length > 0 && running < concurrency && !aloneRunning) {
      // An `alone` file waits for the running ones to end and then holds every slot.
      if (alone.has(queue[0]) && running > 0) break;
      const file = queue.shift();
      running++;
      if (alone.has(file)) aloneRunning = true;
      runFile(file).then((r) => {
        results.push(r);
        running--;
        if (alone.has(file)) aloneRunning = false;
        pump();
      });
    }
  };
  pump();
});

const failed = results.filter((r) => !r.ok);
const slowest = [...results].sort((a, b) => b.seconds - a.seconds).slice(0, 10);
const tests = results.reduce((n, r) => n + r.tests, 0);
const failedTests = results.reduce((n, r) => n + r.failedTests, 0);
const wall = ((Date.now() - started) / 1000).toFixed(0);
console.log(`# run-tests: ${results.length} files (${failed.length} failed), ${tests} tests (${failedTests} failed), ${wall} s wall, concurrency ${concurrency}`);
console.log('# run-tests: slowest files');
for (const r of slowest) console.log(`#   ${r.seconds.toFixed(1).padStart(7)} s  ${r.file}`);
for (const r of failed) console.log(`# run-tests: FAILED ${r.file}`);
process.exit(failed.length ? 1 : 0);
