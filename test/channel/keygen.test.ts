// `zserver keygen`: files, permissions, fingerprint, and that the key loads as a ServerIdentity.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { publicKeyFromPem, ServerIdentity, fingerprint } from '../../lib/channel/handshake.js';

function zserver(...args: string[]) {
  return spawnSync(process.execPath, ['--import', 'tsx', 'bin/zserver.ts', ...args], { encoding: 'utf8' });
}

describe('zserver keygen', () => {
  it('writes a 0600 private key and its public key, prints the fingerprint, and refuses to overwrite', () => {
    const dir = mkdtempSync(join(tmpdir(), 'zs-keygen-'));
    try {
      const out = join(dir, 'id.key');
      const r = zserver('keygen', '--out', out);
      assert.equal(r.status, 0, r.stderr);
      assert.equal(statSync(out).mode & 0o777, 0o600);
      const printed = /fingerprint: ([0-9a-f]{64})/.exec(r.stdout)?.[1];
      const id = ServerIdentity.from(readFileSync(out, 'utf8'));
      assert.equal(printed, id.fingerprint);
      assert.equal(fingerprint(publicKeyFromPem(readFileSync(`${out}.pub`, 'utf8'))), id.fingerprint);
      id.close();
      const again = zserver('keygen', '--out', out);
      assert.equal(again.status, 1);
      assert.match(again.stderr, /exists; pass --force/);
      const forced = zserver('keygen', '--out', out, '--force');
      assert.equal(forced.status, 0, forced.stderr);
      assert.notEqual(/fingerprint: ([0-9a-f]{64})/.exec(forced.stdout)?.[1], printed);
      assert.equal(statSync(out).mode & 0o777, 0o600);
      const shown = zserver('keygen', '--out', out, '--show');
      assert.equal(shown.status, 0, shown.stderr);
      assert.equal(/fingerprint: ([0-9a-f]{64})/.exec(shown.stdout)?.[1], /fingerprint: ([0-9a-f]{64})/.exec(forced.stdout)?.[1]);
      const missing = zserver('keygen', '--out', join(dir, 'none.key'), '--show');
      assert.equal(missing.status, 1);
      assert.match(missing.stderr, /cannot read a server key/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('--help prints the usage with examples and exits 0', () => {
    const r = zserver('keygen', '--help');
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /Usage: zserver keygen/);
    assert.match(r.stdout, /--show/);
  });
});
