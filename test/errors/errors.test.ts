// lib/errors.ts is the one home of the library's error classes: every class that extends Error
// lives there and descends from ZsError (with a code), no runtime fault is thrown as a plain
// Error, and use after close() or shutdown() throws ConnectionClosedError on every transport
// (Node and browser) and handle. The source checks read lib/ as text, so a new stray class or a
// `new TypeError('... after close')` fails here; the behaviour checks call the real objects.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import * as errors from '../../lib/errors.js';
import { ConnectionClosedError, ZsError } from '../../lib/errors.js';
import type { Transport } from '../../lib/transport/types.js';

const LIB = fileURLToPath(new URL('../../lib/', import.meta.url));

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...sources(p));
    else if (name.endsWith('.ts')) out.push(p);
  }
  return out;
}

/** Error classes declared outside lib/errors.ts that never reach a caller, with the reason. */
const INTERNAL_SENTINELS: Record<string, string> = {
  // Rejected by ComputePool.run() and caught by compute/command.ts, which answers BusyError.
  PoolFullError: 'lib/compute/pool.ts',
};

/** Folders whose plain Errors end in a command-line message, not in a library caller. */
const TOOL_FOLDERS = ['cli/', 'stress/'];

describe('lib/errors.ts, the one home of error classes', () => {
  const files = sources(LIB).map((p) => ({ path: relative(LIB, p).split('\\').join('/'), text: readFileSync(p, 'utf8') }));

  it('declares every error class of lib/, each a ZsError with a code', () => {
    const stray: string[] = [];
    for (const f of files) {
      if (f.path === 'errors.ts') continue;
      for (const m of f.text.matchAll(/class\s+(\w+)\s+extends\s+(\w*Error)\b/g)) {
        const name = m[1]!;
        if (INTERNAL_SENTINELS[name] === `lib/${f.path}`) continue;
        stray.push(`lib/${f.path}: ${name} extends ${m[2]}`);
      }
    }
    assert.deepEqual(stray, [], 'error classes belong in lib/errors.ts');
    const classes = Object.entries(errors).filter(([, v]) => typeof v === 'function') as [string, new (...a: never[]) => Error][];
    assert.ok(classes.length >= 15, `${classes.length} classes exported`);
    for (const [name, cls] of classes) {
      assert.ok(cls === ZsError || cls.prototype instanceof ZsError, `${name} extends ZsError`);
    }
    assert.equal(new errors.TransportUnavailableError('x').code, 'ZS_TRANSPORT_UNAVAILABLE');
  });

  it('has no use-after-close fault thrown as anything but ConnectionClosedError', () => {
    const wrong: string[] = [];
    const re = /new\s+(\w*Error)\(\s*[`'"][^`'"]*(used after|after close|after shutdown)/g;
    for (const f of files) {
      for (const m of f.text.matchAll(re)) if (m[1] !== 'ConnectionClosedError') wrong.push(`lib/${f.path}: ${m[0]}`);
    }
    assert.deepEqual(wrong, []);
  });

  it('throws no plain Error from library code (only the command-line tools print them)', () => {
    const plain: string[] = [];
    for (const f of files) {
      if (TOOL_FOLDERS.some((d) => f.path.startsWith(d))) continue;
      for (const m of f.text.matchAll(/throw\s+new\s+Error\(/g)) plain.push(`lib/${f.path} at ${m.index}`);
    }
    assert.deepEqual(plain, []);
  });
});

describe('use after close: ConnectionClosedError everywhere', () => {
  const closedError = (e: unknown) => e instanceof ConnectionClosedError && e.code === 'ZS_CONNECTION_CLOSED';

  // send() and connect() refuse after shutdown() on every transport (close() and the peer
  // lookups of some transports answer "no such peer" instead, which is not a fault).
  async function checkTransport(t: Pick<Transport, 'send' | 'shutdown'> & { connect(e: { host: string; port: number }): Promise<number> }) {
    await t.shutdown();
    assert.throws(() => t.send(0, 8, 0, new Uint8Array(1)), closedError);
    await assert.rejects(t.connect({ host: '127.0.0.1', port: 1 }), closedError);
  }

  it('memory, node-net and ws-client transports', async () => {
    const { MemoryTransport } = await import('../../lib/transport/memory.js');
    const { NodeNetTransport } = await import('../../lib/transport/node-net.js');
    const { WsClientTransport } = await import('../../lib/transport/ws-client.js');
    await checkTransport(new MemoryTransport());
    await checkTransport(new NodeNetTransport());
    await checkTransport(new WsClientTransport());
  });

  it('the browser transport (the same class as on Node)', async () => {
    const { BrowserWsTransport } = await import('../../lib/transport/browser-ws.js');
    await checkTransport(new BrowserWsTransport());
  });

  it('ServerIdentity and AeadContext after close()', async () => {
    const { ServerIdentity } = await import('../../lib/channel/handshake.js');
    const { AeadContext } = await import('../../lib/channel/aead.js');
    const id = ServerIdentity.from(randomBytes(32));
    id.close();
    assert.throws(() => id.respond(new Uint8Array(40), 'aes-256-gcm'), closedError);
    assert.throws(() => id.respondAsync(new Uint8Array(40), 'aes-256-gcm', () => {}), closedError);
    const c = new AeadContext('aes-256-gcm', 'seal', { secret: randomBytes(32) });
    c.close();
    assert.throws(() => c.seal(8, 0, new Uint8Array(1)), closedError);
    assert.throws(() => c.sequence, closedError);
  });
});
