/**
 * The SecureChannel test suite, written against any pair of transports that
 * can reach each other: secure-memory.test.ts runs it over MemoryTransport,
 * and the same function runs over Node net (and later native TCP).
 *
 * `makePair` returns a server-side and a client-side transport plus the
 * endpoint to listen on; the suite wraps them, listens, connects, and shuts
 * both down at the end of each test.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import type { Endpoint, FrameBatch, PeerId, Transport } from '../../lib/transport/types.js';
import { FrameFlag } from '../../lib/transport/types.js';
import { SecureChannel } from '../../lib/channel/secure.js';
import type { SecureChannelOptions } from '../../lib/channel/options.js';
import { ServerIdentity, SecureKind } from '../../lib/channel/handshake.js';
import { HandshakeError } from '../../lib/errors.js';

export interface TransportPair {
  server: Transport;
  client: Transport;
  endpoint: Endpoint;
}

interface Received {
  peer: PeerId;
  kind: number;
  flags: number;
  payload: Buffer;
}

function collect(t: Transport): Received[] {
  const got: Received[] = [];
  t.on('frames', (b: FrameBatch) => {
    for (let i = 0; i < b.count; i++) {
      got.push({ peer: b.peers[i]!, kind: b.kinds[i]!, flags: b.flags[i]!, payload: Buffer.from(b.data.subarray(b.offsets[i]!, b.offsets[i]! + b.lengths[i]!)) });
    }
  });
  return got;
}

async function until(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

/** Wraps `inner` so a test can tamper with frames on their way out. */
function tamper(inner: Transport, edit: (kind: number, flags: number, payload: Uint8Array) => Uint8Array | null): Transport {
  const send = inner.send.bind(inner);
  inner.send = (peer, kind, flags, payload) => {
    const changed = edit(kind, flags, payload);
    return changed === null ? true : send(peer, kind, flags, changed);
  };
  return inner;
}

export function runSecureChannelSuite(name: string, makePair: () => Promise<TransportPair> | TransportPair): void {
  const identity = ServerIdentity.from(randomBytes(32));

  async function setup(serverOptions: SecureChannelOptions = {}, clientOptions: SecureChannelOptions = {}, edit?: Parameters<typeof tamper>[1]) {
    const pair = await makePair();
    const server = new SecureChannel(pair.server, { identity, ...serverOptions });
    const client = new SecureChannel(edit ? tamper(pair.client, edit) : pair.client, { pin: identity.fingerprint, ...clientOptions });
    const bound = await server.listen(pair.endpoint);
    const serverFrames = collect(server);
    const clientFrames = collect(client);
    const serverOpens: PeerId[] = [];
    const serverCloses: [PeerId, string, string][] = [];
    const clientCloses: [PeerId, string, string][] = [];
    server.on('open', (p) => serverOpens.push(p));
    server.on('close', (p, r, d) => serverCloses.push([p, r, d]));
    client.on('close', (p, r, d) => clientCloses.push([p, r, d]));
    const done = async () => {
      await client.shutdown();
      await server.shutdown();
    };
    return { pair, server, client, bound, serverFrames, clientFrames, serverOpens, serverCloses, clientCloses, done };
  }

  describe(`SecureChannel over ${name}`, () => {
    it('completes the handshake, then carries frames both ways in order with kinds and flags intact', async () => {
      const t = await setup();
      try {
        const peer = await t.client.connect(t.bound);
        assert.equal(t.client.remoteFingerprint(peer), identity.fingerprint);
        await until(() => t.serverOpens.length === 1, 'server open');
        const sp = t.serverOpens[0]!;
        for (let i = 0; i < 50; i++) t.client.send(peer, 8 + (i % 50), i % 2 ? FrameFlag.Compressed : 0, Buffer.from(`msg ${i}`));
        t.server.send(sp, 9, 0, Buffer.alloc(0));
        t.server.send(sp, 63, 0, Buffer.alloc(100_000, 7));
        await until(() => t.serverFrames.length === 50 && t.clientFrames.length === 2, 'frames');
        t.serverFrames.forEach((f, i) => {
          assert.equal(f.kind, 8 + (i % 50));
          assert.equal(f.flags, i % 2 ? FrameFlag.Compressed : 0);
          assert.equal(f.payload.toString(), `msg ${i}`);
        });
        assert.equal(t.clientFrames[0]!.payload.length, 0);
        assert.deepEqual(t.clientFrames[1]!.payload, Buffer.alloc(100_000, 7));
        assert.equal(t.server.secureStats().handshakes, 1);
      } finally {
        await t.done();
      }
    });

    it('never puts plaintext on the wire and marks every application frame Encrypted', async () => {
      const seen: { kind: number; flags: number; payload: Buffer }[] = [];
      const t = await setup({}, {}, (kind, flags, payload) => {
        seen.push({ kind, flags, payload: Buffer.from(payload) });
        return payload;
      });
      try {
        const peer = await t.client.connect(t.bound);
        const secret = Buffer.from('attack at dawn, attack at dawn');
        t.client.send(peer, 10, 0, secret);
        await until(() => t.serverFrames.length === 1, 'frame');
        const app = seen.filter((s) => s.kind === 10);
        assert.equal(app.length, 1);
        assert.equal(app[0]!.flags, FrameFlag.Encrypted);
        assert.equal(app[0]!.payload.length, secret.length + 16);
        assert.equal(app[0]!.payload.includes(secret.subarray(0, 8)), false);
        assert.deepEqual(seen.map((s) => s.kind).slice(0, 2), [SecureKind.ClientHello, SecureKind.ClientFinished]);
      } finally {
        await t.done();
      }
    });

    for (const suite of ['aes-256-gcm', 'chacha20-poly1305'] as const) {
      it(`negotiates ${suite} when the server prefers it and the client offers it`, async () => {
        const t = await setup({ suites: [suite] }, { suites: ['aes-256-gcm', 'chacha20-poly1305'] });
        try {
          const peer = await t.client.connect(t.bound);
          t.client.send(peer, 8, 0, Buffer.from('x'));
          await until(() => t.serverFrames.length === 1, 'frame');
          assert.equal(t.serverFrames[0]!.payload.toString(), 'x');
        } finally {
          await t.done();
        }
      });
    }

    it('refuses a connection with no common suite', async () => {
      const t = await setup({ suites: ['chacha20-poly1305'] }, { suites: ['aes-256-gcm'] });
      try {
        await assert.rejects(t.client.connect(t.bound), (e: HandshakeError) => e.code === 'ZS_HANDSHAKE' && /no common cipher suite/.test(e.message));
        assert.equal(t.serverOpens.length, 0);
      } finally {
        await t.done();
      }
    });

    it('accepts a matching pin and refuses another, naming both fingerprints', async () => {
      const ok = await setup({}, { pin: identity.fingerprint.toUpperCase() });
      try {
        await ok.client.connect(ok.bound);
      } finally {
        await ok.done();
      }
      const wrong = 'ab'.repeat(32);
      const t = await setup({}, { pin: wrong });
      try {
        await assert.rejects(t.client.connect(t.bound), (e: HandshakeError) =>
          e.code === 'ZS_HANDSHAKE' && e.message.includes(`expected fingerprint ${wrong}`) && e.message.includes(`received ${identity.fingerprint}`));
        await until(() => (t.server.stats().closes.auth ?? 0) === 1, 'server close');
        assert.equal(t.serverOpens.length, 0);
      } finally {
        await t.done();
      }
    });

    it('refuses a server that signs with a different key than the one it claims (man in the middle)', async () => {
      // Swap the identity key inside ServerHello for the pinned one: the signature no longer verifies.
      const t = await setup({}, { pin: identity.fingerprint });
      const other = ServerIdentity.from(randomBytes(32));
      const forged = await makePair();
      const mitm = new SecureChannel(forged.server, { identity: other });
      forged.server.send = ((send) => (peer: PeerId, kind: number, flags: number, payload: Uint8Array) => {
        if (kind === SecureKind.ServerHello) {
          const copy = Buffer.from(payload);
          identity.publicKey.copy(copy, 34);
          return send(peer, kind, flags, copy);
        }
        return send(peer, kind, flags, payload);
      })(forged.server.send.bind(forged.server));
      const bound = await mitm.listen(forged.endpoint);
      const client = new SecureChannel(forged.client, { pin: identity.fingerprint });
      try {
        await assert.rejects(client.connect(bound), (e: HandshakeError) => e.code === 'ZS_HANDSHAKE' && /signature does not verify/.test(e.message));
      } finally {
        await client.shutdown();
        await mitm.shutdown();
        other.close();
        await t.done();
      }
    });

    it('rejects a wrong version and oversize or garbage handshake messages with a clear error', async () => {
      for (const [edit, pattern] of [
        [(m: Buffer) => ((m[0] = 9), m), /unsupported protocol version 9/],
        [(m: Buffer) => Buffer.concat([m, Buffer.alloc(1000)]), /ClientHello of \d{4} bytes \(expected 35 to 42\)/],
        [(_m: Buffer) => Buffer.from('GET / HTTP/1.1\r\n'), /malformed ClientHello|unsupported protocol version/],
        // A low-order X25519 key (all zeros) would give an all-zero shared secret: refused.
        [(m: Buffer) => m.fill(0, m.length - 32), /key agreement failed/],
      ] as const) {
        const t = await setup({}, {}, (kind, _flags, payload) => (kind === SecureKind.ClientHello ? edit(Buffer.from(payload)) : payload));
        try {
          await assert.rejects(t.client.connect(t.bound), (e: HandshakeError) => e.code === 'ZS_HANDSHAKE' && pattern.test(e.message));
          assert.equal(t.serverOpens.length, 0);
        } finally {
          await t.done();
        }
      }
    });

    it('closes with reason auth and delivers nothing of a record with any single bit flipped', async () => {
      const payload = Buffer.from('0123456789abcdef0123456789abcdef');
      for (const bit of [0, 7, 8 * 16 + 3, 8 * 33, 8 * 47 + 7]) {
        let n = 0;
        const t = await setup({}, {}, (kind, _flags, p) => {
          if (kind !== 12 || n++ !== 1) return p;
          const c = Buffer.from(p);
          c[bit >> 3]! ^= 1 << (bit & 7);
          return c;
        });
        try {
          const peer = await t.client.connect(t.bound);
          t.client.send(peer, 12, 0, payload);
          t.client.send(peer, 12, 0, payload); // this one is flipped
          t.client.send(peer, 12, 0, payload);
          await until(() => t.serverCloses.length === 1, 'server close');
          assert.equal(t.serverCloses[0]![1], 'auth');
          assert.match(t.serverCloses[0]![2], /ZS_AUTH/);
          assert.equal(t.serverFrames.length, 1);
          assert.deepEqual(t.serverFrames[0]!.payload, payload);
          await until(() => t.clientCloses.length === 1, 'client close');
          assert.equal(t.clientCloses[0]![1], 'auth');
          assert.equal(t.server.secureStats().authFailures, 1);
        } finally {
          await t.done();
        }
      }
    });

    it('rejects a replayed, a reordered, a truncated and a relabelled record', async () => {
      const cases: [string, string[], (records: Uint8Array[], send: (p: Uint8Array, kind?: number) => void, p: Uint8Array, kind: number) => void][] = [
        ['replayed', ['record 0', 'record 1'], (recs, send, p) => { recs.push(p); send(p); if (recs.length === 2) send(recs[0]!); }],
        ['reordered', [], (recs, send, p) => { recs.push(p); if (recs.length === 2) { send(p); send(recs[0]!); } else if (recs.length > 2) send(p); }],
        ['truncated', ['record 0'], (recs, send, p) => { recs.push(p); send(recs.length === 2 ? p.subarray(0, p.length - 1) : p); }],
        ['relabelled', ['record 0'], (recs, send, p, kind) => { recs.push(p); send(p, recs.length === 2 ? kind + 1 : kind); }],
      ];
      for (const [label, expected, edit] of cases) {
        const records: Uint8Array[] = [];
        const pair = await makePair();
        const rawSend = pair.client.send.bind(pair.client);
        pair.client.send = (peer, kind, flags, payload) => {
          if (kind !== 20) return rawSend(peer, kind, flags, payload);
          edit(records, (p, k = kind) => rawSend(peer, k, flags, p), Buffer.from(payload), kind);
          return true;
        };
        const server = new SecureChannel(pair.server, { identity });
        const client = new SecureChannel(pair.client, { pin: identity.fingerprint });
        const got = collect(server);
        const closes: string[] = [];
        server.on('close', (_p, reason) => closes.push(reason));
        try {
          const bound = await server.listen(pair.endpoint);
          const peer = await client.connect(bound);
          for (let i = 0; i < 3; i++) client.send(peer, 20, 0, Buffer.from(`record ${i}`));
          await until(() => closes.length === 1, `${label}: server close`);
          assert.deepEqual(closes, ['auth'], label);
          assert.deepEqual(got.map((f) => f.payload.toString()), expected, label);
        } finally {
          await client.shutdown();
          await server.shutdown();
        }
      }
    });

    it('rejects an oversize record before opening it', async () => {
      const t = await setup({ maxRecordSize: 1024 }, {});
      try {
        const peer = await t.client.connect(t.bound);
        assert.throws(() => t.client.send(peer, 8, 0, Buffer.alloc(16 * 1024 * 1024)), RangeError);
        t.client.send(peer, 8, 0, Buffer.alloc(1024));
        t.client.send(peer, 8, 0, Buffer.alloc(1025));
        await until(() => t.serverCloses.length === 1, 'server close');
        assert.equal(t.serverCloses[0]![1], 'auth');
        assert.match(t.serverCloses[0]![2], /exceeds maxRecordSize 1024/);
        assert.equal(t.serverFrames.length, 1);
      } finally {
        await t.done();
      }
    });

    it('rekeys by byte count under continuous traffic in both directions and loses nothing', async () => {
      const t = await setup({ rekeyBytes: 4096 }, { rekeyBytes: 3000 });
      try {
        const peer = await t.client.connect(t.bound);
        await until(() => t.serverOpens.length === 1, 'server open');
        const sp = t.serverOpens[0]!;
        const total = 2000;
        for (let i = 0; i < total; i++) {
          const body = Buffer.alloc(1 + (i % 300), i & 255);
          t.client.send(peer, 8, 0, Buffer.concat([Buffer.from(String(i).padStart(6, '0')), body]));
          t.server.send(sp, 9, 0, Buffer.concat([Buffer.from(String(i).padStart(6, '0')), body]));
          if (i % 100 === 0) await new Promise((r) => setImmediate(r));
        }
        await until(() => t.serverFrames.length === total && t.clientFrames.length === total, 'all frames', 15000);
        for (const frames of [t.serverFrames, t.clientFrames]) {
          frames.forEach((f, i) => {
            assert.equal(f.payload.subarray(0, 6).toString(), String(i).padStart(6, '0'));
            assert.equal(f.payload.length, 6 + 1 + (i % 300));
          });
        }
        const s = t.server.secureStats();
        const c = t.client.secureStats();
        assert.ok(c.rekeysSent > 50, `client rekeyed ${c.rekeysSent} times`);
        assert.equal(s.rekeysReceived, c.rekeysSent);
        assert.equal(c.rekeysReceived, s.rekeysSent);
        assert.equal(t.serverCloses.length + t.clientCloses.length, 0);
      } finally {
        await t.done();
      }
    });

    it('rekeys by age', async () => {
      const t = await setup({}, { rekeyInterval: 20 });
      try {
        const peer = await t.client.connect(t.bound);
        for (let i = 0; i < 5; i++) {
          t.client.send(peer, 8, 0, Buffer.from(`tick ${i}`));
          await new Promise((r) => setTimeout(r, 30));
        }
        await until(() => t.serverFrames.length === 5, 'frames');
        assert.deepEqual(t.serverFrames.map((f) => f.payload.toString()), [0, 1, 2, 3, 4].map((i) => `tick ${i}`));
        assert.ok(t.client.secureStats().rekeysSent >= 4);
        assert.equal(t.server.secureStats().rekeysReceived, t.client.secureStats().rekeysSent);
      } finally {
        await t.done();
      }
    });

    it('keeps many peers apart when their records arrive interleaved in one batch', async () => {
      const t = await setup();
      try {
        // Four connections from one client transport to one server.
        const peers: [SecureChannel, PeerId][] = [];
        for (let c = 0; c < 4; c++) peers.push([t.client, await t.client.connect(t.bound)]);
        for (let i = 0; i < 40; i++) for (const [ch, p] of peers) ch.send(p, 8, 0, Buffer.from(`${p}:${i}`));
        await until(() => t.serverFrames.length === 160, 'frames');
        const byPeer = new Map<PeerId, string[]>();
        for (const f of t.serverFrames) byPeer.set(f.peer, [...(byPeer.get(f.peer) ?? []), f.payload.toString()]);
        assert.equal(byPeer.size, 4);
        for (const list of byPeer.values()) {
          const sender = list[0]!.split(':')[0];
          assert.deepEqual(list, Array.from({ length: 40 }, (_, i) => `${sender}:${i}`));
        }
      } finally {
        await t.done();
      }
    });

    it('closes a handshake that does not complete in time and rejects connect()', async () => {
      const pair = await makePair();
      const client = new SecureChannel(pair.client, { handshakeTimeout: 50, insecureAcceptAnyServer: true });
      try {
        // A listener without a secure channel never answers the ClientHello.
        const bound = await pair.server.listen(pair.endpoint);
        await assert.rejects(client.connect(bound), (e: HandshakeError) => e.code === 'ZS_HANDSHAKE' && /timed out/.test(e.message));
        assert.equal(client.stats().closes.timeout, 1);
      } finally {
        await client.shutdown();
        await pair.server.shutdown();
      }
    });

    it('refuses to send reserved kinds or the Encrypted flag, and to use peers that are not open', async () => {
      const t = await setup();
      try {
        const peer = await t.client.connect(t.bound);
        assert.throws(() => t.client.send(peer, 5, 0, Buffer.alloc(1)), RangeError);
        assert.throws(() => t.client.send(peer, 8, FrameFlag.Encrypted, Buffer.alloc(1)), RangeError);
        assert.throws(() => t.client.send(peer + 1000, 8, 0, Buffer.alloc(1)), { code: 'ZS_CONNECTION_CLOSED' });
        await assert.rejects(new SecureChannel(t.pair.client, { pin: identity.fingerprint }).listen(t.pair.endpoint), TypeError);
      } finally {
        await t.done();
      }
    });
  });
}
