// WebSecureChannel (the browser client, on WebCrypto) against the unchanged
// Node SecureChannel server, in Node 20, whose globalThis.crypto.subtle has
// X25519 and Ed25519: over MemoryTransport and over WebSocket (UwsTransport
// served, WsClientTransport connecting). The Chromium run is test/browser/.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { SecureChannel } from '../../lib/channel/secure.js';
import type { SecureChannelOptions } from '../../lib/channel/options.js';
import { ServerIdentity, SecureKind } from '../../lib/channel/handshake.js';
import { WebSecureChannel, type WebSecureChannelOptions } from '../../lib/channel/web/index.js';
import { AuthError, HandshakeError } from '../../lib/errors.js';
import { AeadContext, REKEY_KIND } from '../../lib/channel/aead.js';
import { RecordKeys } from '../../lib/channel/web/records.js';
import { hmacKey } from '../../lib/channel/web/subtle.js';
import { subtleWithoutCurves } from '../browser/page-util.js';
import { MemoryNetwork, MemoryTransport } from '../../lib/transport/memory.js';
import { ServerUnderTest } from '../transport/ws-helpers.js';
import { WsClientTransport } from '../../lib/transport/ws-client.js';
import type { Endpoint, PeerId, Transport } from '../../lib/transport/types.js';
import { FrameFlag } from '../../lib/transport/types.js';

const identity = ServerIdentity.from(randomBytes(32));

interface Got {
  kind: number;
  flags: number;
  payload: Buffer;
}

async function until(cond: () => boolean, what: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

function pattern(i: number, size: number): Buffer {
  const b = Buffer.allocUnsafe(size);
  for (let j = 0; j < size; j++) b[j] = (i * 31 + j) & 255;
  return b;
}

type Kind = 'memory' | 'websocket';

/** A Node SecureChannel echo server and a WebSecureChannel client over `kind` transports. */
async function setup(
  kind: Kind,
  serverOptions: SecureChannelOptions = {},
  clientOptions: WebSecureChannelOptions = {},
  wrapClient?: (t: Transport) => Transport,
  alterServerSend?: (kind: number, payload: Uint8Array) => Uint8Array,
) {
  let serverT: Transport;
  let clientT: Transport;
  let endpoint: Endpoint;
  if (kind === 'memory') {
    const network = new MemoryNetwork();
    serverT = new MemoryTransport({ network });
    clientT = new MemoryTransport({ network });
    endpoint = { host: 'mem', port: 0 };
  } else {
    serverT = new ServerUnderTest();
    clientT = new WsClientTransport();
    endpoint = { host: '127.0.0.1', port: 0 };
  }
  if (alterServerSend) {
    const send = serverT.send.bind(serverT);
    serverT.send = (peer: PeerId, k: number, flags: number, payload: Uint8Array) => send(peer, k, flags, alterServerSend(k, payload));
  }
  const server = new SecureChannel(serverT, { identity, ...serverOptions });
  const client = new WebSecureChannel(wrapClient ? wrapClient(clientT) : clientT, { pin: identity.fingerprint, ...clientOptions });
  const serverCloses: string[] = [];
  server.on('close', (_p, reason) => serverCloses.push(reason));
  server.on('frames', (b) => {
    for (let i = 0; i < b.count; i++) {
      const payload = b.data.subarray(b.offsets[i]!, b.offsets[i]! + b.lengths[i]!);
      if (b.kinds[i] === 62) continue; // a sink: not echoed
      server.send(b.peers[i]!, b.kinds[i]!, b.flags[i]!, payload);
    }
  });
  const got: Got[] = [];
  client.on('frames', (b) => {
    for (let i = 0; i < b.count; i++) {
      got.push({ kind: b.kinds[i]!, flags: b.flags[i]!, payload: Buffer.from(b.data.subarray(b.offsets[i]!, b.offsets[i]! + b.lengths[i]!)) });
    }
  });
  const clientCloses: [string, string][] = [];
  client.on('close', (_p, reason, detail) => clientCloses.push([reason, detail]));
  const bound = await server.listen(endpoint);
  const done = async () => {
    await client.shutdown();
    await server.shutdown();
  };
  return { server, client, bound, got, serverCloses, clientCloses, done };
}

for (const kind of ['memory', 'websocket'] as const) {
  describe(`WebSecureChannel client with a Node SecureChannel server over ${kind}`, () => {
    it('handshakes, then echoes frames of many sizes (over 16 KiB too), sent in one turn, in order', async () => {
      const t = await setup(kind, {}, { pin: identity.fingerprint });
      try {
        const peer = await t.client.connect(t.bound);
        assert.equal(t.client.remoteFingerprint(peer), identity.fingerprint);
        const sizes = Array.from({ length: 300 }, (_, i) => (i % 37 === 5 ? 16 * 1024 + 1 + i * 100 : (i * 53) % 2000));
        sizes.forEach((size, i) => t.client.send(peer, 8 + (i % 54), i % 2 ? FrameFlag.Compressed : 0, pattern(i, size)));
        await until(() => t.got.length === sizes.length, 'echoes');
        t.got.forEach((g, i) => {
          assert.equal(g.kind, 8 + (i % 54), `kind of frame ${i}`);
          assert.equal(g.flags, i % 2 ? FrameFlag.Compressed : 0, `flags of frame ${i}`);
          assert.ok(g.payload.equals(pattern(i, sizes[i]!)), `payload of frame ${i}`);
        });
        assert.equal(t.server.secureStats().handshakes, 1);
        assert.equal(t.client.secureStats().handshakes, 1);
        assert.equal(t.client.stats().framesIn, sizes.length);
      } finally {
        await t.done();
      }
    });

    it('rekeys both directions mid-stream (small rekeyBytes on both sides) without losing or reordering a frame', async () => {
      const t = await setup(kind, { rekeyBytes: 2000 }, { rekeyBytes: 1500 });
      try {
        const peer = await t.client.connect(t.bound);
        for (let round = 0; round < 3; round++) {
          const base = t.got.length;
          for (let i = 0; i < 100; i++) t.client.send(peer, 9, 0, pattern(round * 100 + i, 700));
          await until(() => t.got.length === base + 100, `round ${round}`);
          await new Promise((r) => setTimeout(r, 5));
        }
        t.got.forEach((g, i) => assert.ok(g.payload.equals(pattern(i, 700)), `frame ${i}`));
        const c = t.client.secureStats();
        const s = t.server.secureStats();
        assert.ok(c.rekeysSent >= 90, `client rekeys sent: ${c.rekeysSent}`);
        assert.ok(s.rekeysSent >= 90, `server rekeys sent: ${s.rekeysSent}`);
        assert.equal(s.rekeysReceived, c.rekeysSent);
        assert.equal(c.rekeysReceived, s.rekeysSent);
      } finally {
        await t.done();
      }
    });

    it('refuses a server whose fingerprint is not pinned, with HandshakeError naming both', async () => {
      const wrong = 'cd'.repeat(32);
      const t = await setup(kind, {}, { pin: wrong });
      try {
        await assert.rejects(t.client.connect(t.bound), (e: HandshakeError) =>
          e instanceof HandshakeError && e.message.includes(`expected fingerprint ${wrong}`) && e.message.includes(`received ${identity.fingerprint}`));
        await until(() => t.server.secureStats().handshakeFailures === 1, 'server handshake failure');
        assert.equal(t.client.secureStats().handshakeFailures, 1);
      } finally {
        await t.done();
      }
    });
  });
}

describe('WebSecureChannel checks and failures', () => {
  it('negotiates AES-256-GCM with a server that prefers ChaCha20-Poly1305 but also has AES-256-GCM', async () => {
    const t = await setup('memory', { suites: ['chacha20-poly1305', 'aes-256-gcm'] });
    try {
      const peer = await t.client.connect(t.bound);
      t.client.send(peer, 8, 0, Buffer.from('gcm'));
      await until(() => t.got.length === 1, 'echo');
      assert.equal(t.got[0]!.payload.toString(), 'gcm');
    } finally {
      await t.done();
    }
  });

  it('fails connect with "no common cipher suite" against a ChaCha20-only server, and refuses a ChaCha20 option', async () => {
    const t = await setup('memory', { suites: ['chacha20-poly1305'] });
    try {
      await assert.rejects(t.client.connect(t.bound), (e: HandshakeError) => e.code === 'ZS_HANDSHAKE' && /no common cipher suite/.test(e.message));
    } finally {
      await t.done();
    }
    assert.throws(() => new WebSecureChannel(new MemoryTransport(), { suites: ['chacha20-poly1305'], insecureAcceptAnyServer: true }), /only 'aes-256-gcm'/);
  });

  it('fails connect with a HandshakeError naming the missing algorithms when WebCrypto lacks X25519 and Ed25519', async () => {
    // A WebCrypto without the secure curves, as in older browsers: every other algorithm still works.
    const old = subtleWithoutCurves(globalThis.crypto.subtle);
    const t = await setup('memory', {}, { subtle: old });
    try {
      await assert.rejects(t.client.connect(t.bound), (e: HandshakeError) =>
        e.code === 'ZS_HANDSHAKE' && /lacks X25519 .* and Ed25519/.test(e.message) && /wss:\/\//.test(e.message));
      assert.equal(t.server.stats().connections, 0, 'no connection was made');
    } finally {
      await t.done();
    }
  });

  it('closes with reason auth (ZS_AUTH) on an altered record, after handing up the records before it and none after', async () => {
    let appRecords = 0;
    const t = await setup('memory', {}, {}, undefined, (kind, payload) => {
      if (kind !== 8 || ++appRecords !== 4) return payload;
      const bad = Buffer.from(payload);
      bad[bad.length - 1]! ^= 1;
      return bad;
    });
    try {
      const peer = await t.client.connect(t.bound);
      for (let i = 0; i < 6; i++) t.client.send(peer, 8, 0, Buffer.from(`ok ${i}`));
      await until(() => t.clientCloses.length === 1, 'client close');
      assert.deepEqual(t.got.map((g) => g.payload.toString()), ['ok 0', 'ok 1', 'ok 2']);
      assert.equal(t.clientCloses[0]![0], 'auth');
      assert.match(t.clientCloses[0]![1], /^ZS_AUTH: .*failed authentication/);
      assert.equal(t.client.secureStats().authFailures, 1);
      await until(() => t.serverCloses.length === 1, 'server close');
      assert.deepEqual(t.serverCloses, ['auth'], 'the server closed on the alert');
    } finally {
      await t.done();
    }
  });

  it('seals the same record bytes as the native AeadContext and opens its records, across rekeys', async () => {
    const subtle = globalThis.crypto.subtle;
    const secret = randomBytes(32);
    const web = await RecordKeys.create(subtle, 'seal', await hmacKey(subtle, secret));
    const webOpen = await RecordKeys.create(subtle, 'open', await hmacKey(subtle, secret));
    const native = new AeadContext('aes-256-gcm', 'seal', { secret });
    const plan = [8, 9, REKEY_KIND, 8, REKEY_KIND, REKEY_KIND, 63, 8];
    const mine = plan.map((kind, i) => {
      const r = web.run(kind, kind === REKEY_KIND ? 0 : i % 2, kind === REKEY_KIND ? new Uint8Array(0) : pattern(i, i * 5000));
      if (kind === REKEY_KIND) web.rekey();
      return r;
    });
    const theirs = plan.map((kind, i) => {
      const r = Buffer.from(native.seal(kind, kind === REKEY_KIND ? 0 : i % 2, kind === REKEY_KIND ? new Uint8Array(0) : pattern(i, i * 5000)));
      if (kind === REKEY_KIND) native.rekey();
      return r;
    });
    const sealed = await Promise.all(mine);
    sealed.forEach((rec, i) => assert.ok(Buffer.from(rec).equals(theirs[i]!), `record ${i} (kind ${plan[i]})`));
    const opened = await Promise.all(plan.map((kind, i) => {
      const r = webOpen.run(kind, (kind === REKEY_KIND ? 0 : i % 2) | FrameFlag.Encrypted, theirs[i]!);
      if (kind === REKEY_KIND) webOpen.rekey();
      return r;
    }));
    opened.forEach((pt, i) => assert.ok(Buffer.from(pt).equals(plan[i] === REKEY_KIND ? Buffer.alloc(0) : pattern(i, i * 5000))));
    await assert.rejects(webOpen.run(8, FrameFlag.Encrypted, theirs[7]!), AuthError, 'a replayed record fails');
    native.close();
  });

  it('backpressure: send() returns false past highWaterMark, then drain follows and everything arrives', async () => {
    const t = await setup('memory');
    try {
      const peer = await t.client.connect(t.bound, { highWaterMark: 64 * 1024 });
      let sent = 0;
      let full = false;
      while (!full && sent < 100) {
        full = !t.client.send(peer, 9, 0, pattern(sent, 8192));
        sent++;
      }
      assert.equal(full, true);
      await new Promise<void>((resolve) => t.client.once('drain', () => resolve()));
      await until(() => t.got.length === sent, 'echoes');
      t.got.forEach((g, i) => assert.ok(g.payload.equals(pattern(i, 8192))));
    } finally {
      await t.done();
    }
  });

  it('close() hands down what was sent before it, and the server sees an orderly close', async () => {
    const t = await setup('memory');
    const received: number[] = [];
    t.server.on('frames', (b) => received.push(b.count));
    try {
      const peer = await t.client.connect(t.bound);
      for (let i = 0; i < 50; i++) t.client.send(peer, 62, 0, pattern(i, 1000));
      t.client.close(peer);
      assert.throws(() => t.client.send(peer, 62, 0, Buffer.alloc(1)), /not open/);
      await until(() => t.serverCloses.length === 1, 'server close');
      assert.equal(received.reduce((a, b) => a + b, 0), 50);
      assert.deepEqual(t.serverCloses, ['remote']);
      assert.deepEqual(t.clientCloses.map((c) => c[0]), ['local']);
    } finally {
      await t.done();
    }
  });

  it('hands up the records that came before a close from the server, then reports the close', async () => {
    const t = await setup('memory');
    try {
      t.server.on('open', (peer) => {
        for (let i = 0; i < 20; i++) t.server.send(peer, 30, 0, pattern(i, 3000));
        t.server.close(peer);
      });
      await t.client.connect(t.bound);
      await until(() => t.clientCloses.length === 1, 'client close');
      assert.equal(t.got.length, 20);
      t.got.forEach((g, i) => assert.ok(g.payload.equals(pattern(i, 3000))));
      assert.equal(t.clientCloses[0]![0], 'remote');
    } finally {
      await t.done();
    }
  });

  it('fails connect with HandshakeError when the server never answers within handshakeTimeout', async () => {
    const network = new MemoryNetwork();
    const silent = new MemoryTransport({ network });
    const bound = await silent.listen({ host: 'mem', port: 0 });
    const client = new WebSecureChannel(new MemoryTransport({ network }), { handshakeTimeout: 100, insecureAcceptAnyServer: true });
    try {
      await assert.rejects(client.connect(bound), (e: HandshakeError) => e.code === 'ZS_HANDSHAKE' && /timed out/.test(e.message));
      assert.equal(client.secureStats().handshakeFailures, 1);
    } finally {
      await client.shutdown();
      await silent.shutdown();
    }
  });

  it('checks send() arguments as SecureChannel does', async () => {
    const t = await setup('memory', {}, { maxRecordSize: 1000 });
    try {
      const peer = await t.client.connect(t.bound);
      assert.throws(() => t.client.send(peer, 7, 0, Buffer.alloc(1)), RangeError);
      assert.throws(() => t.client.send(peer, 8, FrameFlag.Encrypted, Buffer.alloc(1)), RangeError);
      assert.throws(() => t.client.send(peer, 8, 0, Buffer.alloc(1001)), /maxRecordSize 1000/);
      assert.throws(() => t.client.send(peer + 1, 8, 0, Buffer.alloc(1)), /not open/);
      await assert.rejects(t.client.listen(), TypeError);
    } finally {
      await t.done();
    }
  });

  it('sends ClientHello then ClientFinished first, and every application frame Encrypted, 16 bytes longer', async () => {
    const seen: { kind: number; flags: number; length: number }[] = [];
    const t = await setup('memory', {}, {}, (inner) => {
      const send = inner.send.bind(inner);
      inner.send = (peer: PeerId, kind: number, flags: number, payload: Uint8Array) => {
        seen.push({ kind, flags, length: payload.length });
        return send(peer, kind, flags, payload);
      };
      return inner;
    });
    try {
      const peer = await t.client.connect(t.bound);
      t.client.send(peer, 10, 0, Buffer.from('attack at dawn'));
      await until(() => t.got.length === 1, 'echo');
      assert.deepEqual(seen.slice(0, 2).map((s) => s.kind), [SecureKind.ClientHello, SecureKind.ClientFinished]);
      assert.equal(seen[0]!.length, 2 + 1 + 32, 'ClientHello offers one suite');
      assert.deepEqual(seen[1], { kind: SecureKind.ClientFinished, flags: FrameFlag.Encrypted, length: 16 });
      assert.deepEqual(seen[2], { kind: 10, flags: FrameFlag.Encrypted, length: 14 + 16 });
    } finally {
      await t.done();
    }
  });
});
