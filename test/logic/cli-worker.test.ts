// `zserver worker`: --help, argument errors, and a module without a register function.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';

const zserver = (...args: string[]) => spawnSync(process.execPath, ['--import', 'tsx', 'bin/zserver.ts', ...args], { encoding: 'utf8', timeout: 30_000 });

describe('zserver worker', () => {
  it('--help prints the usage with examples; the main help lists the subcommand', () => {
    const r = zserver('worker', '--help');
    assert.equal(r.status, 0);
    assert.match(r.stdout, /Usage: zserver worker <module> --nats URL/);
    assert.match(r.stdout, /Examples:\n  zserver worker/);
    assert.match(r.stdout, /--concurrency N/);
    assert.match(zserver('help').stdout, /zserver worker +run a logic-tier worker/);
  });

  it('refuses a missing module, an unknown option and a bad concurrency with exit code 2', () => {
    assert.equal(zserver('worker').status, 2);
    const unknown = zserver('worker', 'x.js', '--bogus');
    assert.equal(unknown.status, 2);
    assert.match(unknown.stderr, /unknown option '--bogus'/);
    assert.equal(zserver('worker', 'x.js', '--concurrency', '0').status, 2);
  });

  it('a module that exports no function is refused before connecting', () => {
    const r = zserver('worker', 'test/logic/nats.ts', '--nats', 'nats://127.0.0.1:1');
    assert.equal(r.status, 2);
    assert.match(r.stderr, /exports no function/);
  });

  it('an unreachable NATS server fails with ZS_NATS_UNAVAILABLE in the message and exit code 1', () => {
    const r = zserver('worker', 'examples/logic/logic.ts', '--nats', 'nats://127.0.0.1:1');
    assert.equal(r.status, 1);
    assert.match(r.stderr, /cannot connect to NATS at nats:\/\/127\.0\.0\.1:1/);
  });
});
