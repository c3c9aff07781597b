import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';

function zserver(...args: string[]) {
  return spawnSync(process.execPath, ['--import', 'tsx', 'bin/zserver.ts', ...args], { encoding: 'utf8' });
}

describe('zserver command line', () => {
  it('with no arguments prints its commands and passes the native self-check', () => {
    const r = zserver();
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /zserver selfcheck/);
    assert.match(r.stdout, /self-check: all \d+ passed/);
    // What zserver can do on this Node, not only hashing.
    assert.match(r.stdout, /transports: .*\bws \(WebSocket server on the ws package\)/);
    assert.match(r.stdout, /transports: .*\bnode-net\b/);
    assert.match(r.stdout, /WebSocket server in use .*: (native-ws|uWebSockets\.js|ws package)/);
    assert.match(r.stdout, /secure channel: .*aes-256-gcm/);
    assert.match(r.stdout, /compression: deflate-fixed, brrc, zlib, brotli/);
    assert.match(r.stdout, /hashing: md5, crc32, crc32c, xxh64/);
    assert.match(r.stdout, /P2PVM/);
    assert.doesNotMatch(r.stdout, /FAIL/);
  });

  it('rejects an unknown command with exit code 2 and the help text', () => {
    const r = zserver('frobnicate');
    assert.equal(r.status, 2);
    assert.match(r.stderr, /unknown command 'frobnicate'/);
    assert.match(r.stdout, /Usage:/);
  });
});
