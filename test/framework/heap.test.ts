import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';

describe('framework memory', () => {
  it('returns the heap to its baseline after many calls and disconnects with work pending', () => {
    // A child process, so that --expose-gc applies to it alone.
    const r = spawnSync(process.execPath, ['--expose-gc', '--import', 'tsx', 'test/framework/heap-child.ts'], {
      encoding: 'utf8',
      timeout: 120_000,
    });
    assert.equal(r.status, 0, r.stderr);
    const { baseline, final, connections } = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as Record<string, number>;
    assert.equal(connections, 800);
    const growth = final - baseline;
    assert.ok(growth < 256 * 1024, `heap grew by ${growth} bytes (baseline ${baseline}, final ${final})`);
  });
});
