// The programs in examples/ run as their comments say: the self-contained ones
// exit 0 with the output they promise, and the chat server relays a line from
// one chat client to another over the native transport and keeps a private
// message for a user who is away across a server restart. (examples/web is
// tested in test/browser/examples-web.test.ts; serve-client.ts needs `npm start`.)
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, describe, it } from 'node:test';

const tsx = (file: string, ...args: string[]) =>
  spawn(process.execPath, ['--import', 'tsx', `examples/${file}`, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });

const children = new Set<ChildProcess>();
after(() => {
  for (const c of children) c.kill('SIGKILL');
});

/** Runs an example to its end (killed after 30 s); its exit code and output. */
async function run(file: string): Promise<{ code: number | null; out: string; err: string }> {
  const child = tsx(file);
  children.add(child);
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => (out += d));
  child.stderr!.on('data', (d: Buffer) => (err += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  const [code] = (await once(child, 'exit')) as [number | null];
  clearTimeout(timer);
  children.delete(child);
  return { code, out, err };
}

/** Resolves when `child`'s stdout has printed something matching `re`; the output so far. */
function waitOutput(child: ChildProcess, re: RegExp, ms = 20_000): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`no ${re} in 20 s; output: ${out}`)), ms);
    const onData = (d: Buffer) => {
      out += d;
      if (re.test(out)) {
        clearTimeout(timer);
        child.stdout!.off('data', onData);
        resolve(out);
      }
    };
    child.stdout!.on('data', onData);
  });
}

async function freePort(): Promise<number> {
  const s = createServer().listen(0, '127.0.0.1');
  await once(s, 'listening');
  const port = (s.address() as { port: number }).port;
  s.close();
  await once(s, 'close');
  return port;
}

describe('examples/', { timeout: 120_000 }, () => {
  it('relay.ts passes every line to the other two clients', async () => {
    const r = await run('relay.ts');
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /^relay \(native-tcp\)/m);
    for (const [who, from] of [['alice', 'bob'], ['alice', 'carol'], ['bob', 'alice'], ['bob', 'carol'], ['carol', 'alice'], ['carol', 'bob']]) {
      assert.match(r.out, new RegExp(`^${who} heard: hello from ${from}$`, 'm'));
    }
  });

  it('secure.ts verifies the pinned identity and echoes', async () => {
    const r = await run('secure.ts');
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /server identity verified: true/);
    assert.match(r.out, /echo: hello over an encrypted channel/);
  });

  it('secure-compressed.ts echoes intact with a compressed message', async () => {
    const r = await run('secure-compressed.ts');
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /intact: true/);
    assert.match(r.out, /1 message decompressed, 1 compressed/);
  });

  it('compute.ts answers echo while the worker pool counts primes', async () => {
    const r = await run('compute.ts');
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /^echo while the primes are counted: "still answering"/m);
    assert.match(r.out, /^primes below 2,000,000: 148933, 148933, 148933 /m);
    assert.match(r.out, /^primes: 3 completed, 0 refused busy/m);
  });

  it('files.ts uploads, stops a download half-way, resumes it to the same bytes, and refuses names outside the root', async () => {
    const r = await run('files.ts');
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /^uploaded reports\/2026\/report\.bin: 8388608 bytes, xxh64 [0-9a-f]{16}$/m);
    assert.match(r.out, /^listing: report\.bin \(file, 8388608 bytes\)$/m);
    assert.match(r.out, /^resumed from the verified part over 3 connections; hash [0-9a-f]{16}, same bytes: true$/m);
    assert.match(r.out, /^stat "\.\.\/outside\.txt": ZS_FILES_PATH$/m);
    assert.match(r.out, /^stat "\/etc\/passwd": ZS_FILES_PATH$/m);
  });

  it('hash.ts prints the digests node:crypto gives', async () => {
    const r = await run('hash.ts');
    assert.equal(r.code, 0, r.err);
    const md5 = (s: string) => createHash('md5').update(s).digest('hex');
    assert.match(r.out, new RegExp(`^md5 +${md5('hello, zserver')}$`, 'm'));
    assert.match(r.out, new RegExp(`^batch +${md5('hello')} ${md5('zserver')}$`, 'm'));
  });

  it('chat-server.ts relays a line between chat-client.ts users over native TCP and keeps a private message for an away user across a restart', async () => {
    const port = String(await freePort());
    const db = join(mkdtempSync(join(tmpdir(), 'zs-chat-')), 'chat.db');
    const start = async () => {
      const server = tsx('chat-server.ts', '--transport', 'native', '--port', port, '--db', db);
      children.add(server);
      await waitOutput(server, /chat server on .* over native-tcp/);
      return server;
    };
    const stop = async (child: ChildProcess, signal: NodeJS.Signals) => {
      child.kill(signal);
      if (child.exitCode === null && child.signalCode === null) await once(child, 'exit');
      children.delete(child);
    };
    const leave = async (child: ChildProcess) => {
      child.stdin!.end(); // Ctrl-D: the client logs out and exits by itself
      const [code] = (await once(child, 'exit')) as [number | null];
      assert.equal(code, 0);
      children.delete(child);
    };
    let server = await start();
    try {
      const alice = tsx('chat-client.ts', 'alice', 'pw-alice', '--transport', 'native', '--port', port);
      const bob = tsx('chat-client.ts', 'bob', 'pw-bob', '--transport', 'native', '--port', port);
      children.add(alice);
      children.add(bob);
      await waitOutput(alice, /logged in as alice/);
      await waitOutput(bob, /logged in as bob/);
      const heard = waitOutput(bob, /alice: hi bob/);
      alice.stdin!.write('hi bob\n');
      await heard;
      await leave(bob);
      const kept = waitOutput(alice, /bob is away/);
      alice.stdin!.write('/tell bob see you later\n');
      await kept;
      await leave(alice);
      // The server dies without a goodbye; the message is in its database.
      await stop(server, 'SIGKILL');
      server = await start();
      const bobAgain = tsx('chat-client.ts', 'bob', 'pw-bob', '--transport', 'native', '--port', port);
      children.add(bobAgain);
      await waitOutput(bobAgain, /\[alice → you, .* while you were away\] see you later/);
      await leave(bobAgain);
    } finally {
      await stop(server, 'SIGTERM');
      rmSync(dirname(db), { recursive: true, force: true });
    }
  });
});
