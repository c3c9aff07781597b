/**
 * `zserver xnat server` and `zserver xnat agent` as processes: a config file for the server, flags
 * for the agent, an HTTP request through them, a refused agent's exit, and --help with examples.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { closeHttp, get, httpService } from './helpers.js';

function zserver(args: string[]): ChildProcess {
  return spawn(process.execPath, ['--import', 'tsx', 'bin/zserver.ts', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Resolves to the first stdout line matching `re` (its match), rejects when the process exits first. */
function line(p: ChildProcess, re: RegExp): Promise<RegExpExecArray> {
  return new Promise((resolve, reject) => {
    let text = '';
    let err = '';
    p.stderr!.on('data', (b: Buffer) => (err += b.toString()));
    p.stdout!.on('data', (b: Buffer) => {
      text += b.toString();
      const m = re.exec(text);
      if (m) resolve(m);
    });
    p.once('exit', (code) => reject(new Error(`exited with ${code} before printing ${re}: ${text} ${err}`)));
  });
}

/** A new Ed25519 private key as PKCS#8 PEM, what `zserver keygen` writes. */
function keyPem(): { pem: string } {
  const { privateKey } = generateKeyPairSync('ed25519');
  return { pem: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString() };
}

describe('zserver xnat', () => {
  it('--help shows examples for an HTTP and an SSH server; bad flags exit 2 with the reason', () => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', 'bin/zserver.ts', 'xnat', 'agent', '--help'], { encoding: 'utf8' });
    assert.equal(r.status, 0);
    assert.match(r.stdout, /--map 8080=127\.0\.0\.1:80/);
    assert.match(r.stdout, /ssh -p 2222/);
    const bad = spawnSync(process.execPath, ['--import', 'tsx', 'bin/zserver.ts', 'xnat', 'agent', '--server', 'x:1', '--pin', 'ab', '--token', 'tttttttttttttttttt', '--map', 'nope'], { encoding: 'utf8' });
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /a mapping must be PUBLICPORT=HOST:PORT/);
    const badTransport = spawnSync(process.execPath, ['--import', 'tsx', 'bin/zserver.ts', 'xnat', 'agent', '--server', 'x:1', '--pin', 'ab', '--token', 'tttttttttttttttttt', '--map', '1=h:2', '--transport', 'tls'], { encoding: 'utf8' });
    assert.equal(badTransport.status, 2);
    assert.match(badTransport.stderr, /--transport must be 'native' or 'node-net', got 'tls'/);
  });

  it('serves HTTP through a server run from a config file and an agent run from flags; a wrong key exits 1', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'zs-xnat-'));
    const server = keyPem();
    const agentKey = keyPem();
    const otherKey = keyPem();
    writeFileSync(join(dir, 'server.key'), server.pem, { mode: 0o600 });
    writeFileSync(join(dir, 'agent.key'), agentKey.pem, { mode: 0o600 });
    writeFileSync(join(dir, 'other.key'), otherKey.pem, { mode: 0o600 });
    // The agent's fingerprint, as `zserver keygen` would print it.
    const { loadAgentKey } = await import('../../lib/xnat/index.js');
    const fp = loadAgentKey(agentKey.pem).fingerprint;
    writeFileSync(
      join(dir, 'xnat-server.json'),
      JSON.stringify({ key: 'server.key', listen: '127.0.0.1:0', ports: [{ host: '127.0.0.1', port: 0 }], agents: [{ name: 'home', key: fp }] }),
    );
    const web = await httpService('cli');
    const procs: ChildProcess[] = [];
    try {
      const s = zserver(['xnat', 'server', '--config', join(dir, 'xnat-server.json'), '--quiet', '--metrics', '127.0.0.1:0']);
      procs.push(s);
      const [, metricsPort, agentPort, pin, publicPort] = await line(
        s,
        // The default transport is the native one where the addon loads (it is built here).
        /metrics on http:\/\/[^:]+:(\d+)\/metrics\nxnat server: agents on [^:]+:(\d+); fingerprint ([0-9a-f]{64}); public port\(s\) (\d+); transport native/,
      );
      const common = ['xnat', 'agent', '--server', `127.0.0.1:${agentPort}`, '--pin', pin!, '--map', `${publicPort}=127.0.0.1:${web.port}`];
      // The agent on Node net against the server on the native transport: the flag picks, and the two interoperate.
      const a = zserver([...common, '--key', join(dir, 'agent.key'), '--name', 'laptop', '--transport', 'node-net']);
      procs.push(a);
      await line(a, /serving as laptop/);
      assert.equal(await get(Number(publicPort), '/through'), 'cli /through 0');
      const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
      assert.match(text, new RegExp(`zserver_xnat_connections_total\\{[^}]*port="${publicPort}"[^}]*\\} 1\\n`));
      assert.match(text, /zserver_xnat_agents\{[^}]*\} 1\n/);
      assert.match(text, new RegExp(`zserver_xnat_sent_bytes_total\\{[^}]*port="${publicPort}"[^}]*\\} [1-9]`));

      const refused = zserver([...common, '--key', join(dir, 'other.key')]);
      procs.push(refused);
      let err = '';
      refused.stderr!.on('data', (b: Buffer) => (err += b.toString()));
      const [code] = (await once(refused, 'exit')) as [number];
      assert.equal(code, 1);
      assert.match(err, /refused this agent: .*not listed/);

      for (const p of [a, s]) {
        p.kill('SIGTERM');
        const [c] = (await once(p, 'exit')) as [number];
        assert.equal(c, 0, 'a signal stops it cleanly');
      }
    } finally {
      for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
      await closeHttp(web.server);
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
