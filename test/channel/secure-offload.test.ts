// SecureChannel with record offload: over NativeTcpTransport the record keys go down to the
// native loop after the handshake, which seals and opens every record itself (JavaScript passes
// plaintext). The wire bytes must be those of the JavaScript path, so every test here talks to a
// SecureChannel that seals and opens in JavaScript over NodeNetTransport, in both roles, or checks
// what the native side counted. Forged records and frames sent in clear close only that peer
// with reason 'auth'.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { ServerIdentity, SecureKind } from '../../lib/channel/handshake.js';
import type { SecureChannelOptions } from '../../lib/channel/options.js';
import { SecureChannel } from '../../lib/channel/secure.js';
import { decompress } from '../../lib/compression/index.js';
import { NativeTcpTransport, type NativeTcpOptions } from '../../lib/transport/native-tcp.js';
import { SubmitQueue } from '../../lib/transport/submit-queue.js';
import { NodeNetTransport } from '../../lib/transport/node-net.js';
import { FrameFlag, type FrameBatch, type PeerId, type Transport } from '../../lib/transport/types.js';

const identity = ServerIdentity.from(randomBytes(32));

interface Got {
  peer: PeerId;
  kind: number;
  flags: number;
  payload: Buffer;
}

function collect(t: Transport): Got[] {
  const got: Got[] = [];
  t.on('frames', (b: FrameBatch) => {
    for (let i = 0; i < b.count; i++) got.push({ peer: b.peers[i]!, kind: b.kinds[i]!, flags: b.flags[i]!, payload: Buffer.from(b.data.subarray(b.offsets[i]!, b.offsets[i]! + b.lengths[i]!)) });
  });
  return got;
}

async function until(cond: () => boolean, what: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

interface Side {
  inner: Transport;
  channel: SecureChannel;
  frames: Got[];
  closes: [PeerId, string, string][];
}

function side(inner: Transport, options: SecureChannelOptions): Side {
  // Clients pin the test identity; a side with an identity serves.
  const channel = new SecureChannel(inner, { offload: inner instanceof NativeTcpTransport, ...(options.identity ? {} : { pin: identity.fingerprint }), ...options });
  const s: Side = { inner, channel, frames: collect(channel), closes: [] };
  channel.on('close', (p, r, d) => s.closes.push([p, r, d]));
  return s;
}

/** A secure server and client; `nativeServer` picks which side runs over NativeTcpTransport. */
async function connect(server: Side, client: Side) {
  const opened: PeerId[] = [];
  server.channel.on('open', (p) => opened.push(p));
  const at = await server.channel.listen({ host: '127.0.0.1', port: 0 });
  const peer = await client.channel.connect(at);
  await until(() => opened.length === 1, 'server open');
  return { peer, serverPeer: opened[0]!, done: async () => (await client.channel.shutdown(), await server.channel.shutdown()) };
}

const native = (t: Transport) => t as NativeTcpTransport;
const payload = (i: number, n: number) => Buffer.concat([Buffer.from(String(i).padStart(6, '0')), Buffer.alloc(n, i & 255)]);

for (const mode of [{ ioThread: false }, { ioThread: true }] as NativeTcpOptions[]) {
  const label = mode.ioThread ? 'I/O thread' : 'inline';
  describe(`SecureChannel record offload to NativeTcpTransport (${label})`, () => {
    for (const suite of ['aes-256-gcm', 'chacha20-poly1305'] as const) {
      for (const nativeRole of ['server', 'client'] as const) {
        it(`${suite}: an offloaded native ${nativeRole} and a JavaScript-only peer over Node net exchange frames`, async () => {
          const nat = side(new NativeTcpTransport(mode), nativeRole === 'server' ? { identity, suites: [suite] } : { suites: [suite] });
          const js = side(new NodeNetTransport(), nativeRole === 'server' ? { suites: [suite] } : { identity, suites: [suite] });
          const [server, client] = nativeRole === 'server' ? [nat, js] : [js, nat];
          const { peer, serverPeer, done } = await connect(server, client);
          try {
            for (let i = 0; i < 100; i++) {
              client.channel.send(peer, 8 + (i % 56), i % 2 ? FrameFlag.Compressed : 0, payload(i, i * 37));
              server.channel.send(serverPeer, 9, 0, payload(i, 5000 - i));
            }
            await until(() => server.frames.length === 100 && client.frames.length === 100, 'frames');
            server.frames.forEach((f, i) => assert.deepEqual(f, { peer: serverPeer, kind: 8 + (i % 56), flags: i % 2 ? FrameFlag.Compressed : 0, payload: payload(i, i * 37) }));
            client.frames.forEach((f, i) => assert.deepEqual(f, { peer, kind: 9, flags: 0, payload: payload(i, 5000 - i) }));
            const rs = native(nat.inner).recordStats();
            // The native side sealed its 100 records (plus ClientFinished as a client) and opened the other 100.
            assert.equal(rs.recordsSealed, nativeRole === 'client' ? 101 : 100);
            assert.equal(rs.recordsOpened, nativeRole === 'server' ? 101 : 100);
            assert.equal(nat.channel.secureStats().handshakes, 1);
            assert.equal(server.closes.length + client.closes.length, 0);
          } finally {
            await done();
          }
        });
      }
    }

    it('rekeys natively by bytes in both directions against a JavaScript peer that rekeys too, losing nothing', async () => {
      const nat = side(new NativeTcpTransport(mode), { identity, rekeyBytes: 4096 });
      const js = side(new NodeNetTransport(), { rekeyBytes: 3000 });
      const { peer, serverPeer, done } = await connect(nat, js);
      try {
        const total = 1500;
        for (let i = 0; i < total; i++) {
          js.channel.send(peer, 8, 0, payload(i, i % 300));
          nat.channel.send(serverPeer, 9, 0, payload(i, i % 300));
          if (i % 100 === 0) await new Promise((r) => setImmediate(r));
        }
        await until(() => nat.frames.length === total && js.frames.length === total, 'all frames', 20_000);
        for (const frames of [nat.frames, js.frames]) frames.forEach((f, i) => assert.deepEqual(f.payload, payload(i, i % 300)));
        const rs = native(nat.inner).recordStats();
        const c = js.channel.secureStats();
        assert.ok(rs.rekeysSent > 20, `native side rekeyed ${rs.rekeysSent} times`);
        assert.equal(c.rekeysReceived, rs.rekeysSent);
        assert.equal(rs.rekeysReceived, c.rekeysSent);
        assert.ok(c.rekeysSent > 20);
      } finally {
        await done();
      }
    });

    it('leaves no traffic secret in the send buffer once the loop has taken them', async () => {
      const server = new NativeTcpTransport(mode);
      const client = new NativeTcpTransport(mode);
      // The transport's SubmitQueue is private to its NativeDispatch: watch every queue's buffer
      // right after it was handed to the loop.
      const submitted: Buffer[] = [];
      const submit = SubmitQueue.prototype.submit;
      SubmitQueue.prototype.submit = function (this: SubmitQueue, loop) {
        const hadRecords = this.count > 0;
        submit.call(this, loop);
        if (hadRecords) submitted.push((this as unknown as { data: Buffer }).data);
      };
      try {
        const peer = await client.connect(await server.listen({ host: '127.0.0.1', port: 0 }));
        const sealSecret = randomBytes(32);
        const openSecret = randomBytes(32);
        const params = { suite: 1, sealSecret, openSecret, maxRecordSize: 1 << 16, rekeyBytes: 1 << 30, maxRecordsPerKey: 1 << 24, rekeyInterval: 3_600_000 };
        submitted.length = 0;
        assert.equal(client.offloadRecords(peer, params), true);
        await new Promise((r) => setImmediate(r)); // the turn's records are submitted in a microtask
        assert.ok(submitted.length >= 1, 'the offload record was never submitted');
        for (const buffer of submitted) {
          assert.equal(buffer.indexOf(sealSecret), -1, 'seal secret left in the send buffer');
          assert.equal(buffer.indexOf(openSecret), -1, 'open secret left in the send buffer');
          assert.equal(buffer.indexOf(sealSecret.subarray(0, 8)), -1);
        }
      } finally {
        SubmitQueue.prototype.submit = submit;
        await client.shutdown();
        await server.shutdown();
      }
    });

    it('rekeys natively by age', async () => {
      const nat = side(new NativeTcpTransport(mode), { rekeyInterval: 20 });
      const js = side(new NodeNetTransport(), { identity });
      const { peer, done } = await connect(js, nat);
      try {
        // Sends 30 ms apart, each older than the 20 ms key age, until 5 rekeys (a loaded machine may
        // run two timers in one turn, so a fixed count of sends could see fewer): bounded to 60 sends.
        let sent = 0;
        while (sent < 60 && (sent < 8 || native(nat.inner).recordStats().rekeysSent < 5)) {
          nat.channel.send(peer, 8, 0, payload(sent % 256, 10));
          sent++;
          await new Promise((r) => setTimeout(r, 30));
        }
        await until(() => js.frames.length === sent, 'frames');
        assert.ok(native(nat.inner).recordStats().rekeysSent >= 5, `${native(nat.inner).recordStats().rekeysSent} rekeys in ${sent} sends`);
        assert.equal(js.channel.secureStats().rekeysReceived, native(nat.inner).recordStats().rekeysSent);
      } finally {
        await done();
      }
    });

    it('a forged record, a replayed one, or an application frame in clear closes only that peer with reason auth', async () => {
      const nat = side(new NativeTcpTransport(mode), { identity });
      const at = await nat.channel.listen({ host: '127.0.0.1', port: 0 });
      const opened: PeerId[] = [];
      nat.channel.on('open', (p) => opened.push(p));
      const live = side(new NodeNetTransport(), {});
      const livePeer = await live.channel.connect(at);
      const attacks: [string, (send: Transport['send'], peer: PeerId, record: Uint8Array) => void][] = [
        ['a flipped bit', (send, peer, r) => send(peer, 8, FrameFlag.Encrypted, Buffer.from(r).fill(r[0]! ^ 1, 0, 1))],
        ['a replay', (send, peer, r) => (send(peer, 8, FrameFlag.Encrypted, r), send(peer, 8, FrameFlag.Encrypted, r))],
        ['a relabelled kind', (send, peer, r) => send(peer, 9, FrameFlag.Encrypted, r)],
        ['a frame in clear', (send, peer) => send(peer, 8, 0, Buffer.from('not a record'))],
        ['a record of a clear kind', (send, peer, r) => send(peer, SecureKind.Alert, FrameFlag.Encrypted, r)],
      ];
      for (const [what, attack] of attacks) {
        const inner = new NodeNetTransport();
        const bad = side(inner, {});
        const send = inner.send.bind(inner);
        let record: Uint8Array | undefined;
        // Keep the first application record instead of sending it.
        inner.send = (p, k, f, pl) => (k === 8 && record === undefined ? ((record = Buffer.from(pl)), true) : send(p, k, f, pl));
        const peer = await bad.channel.connect(at);
        bad.channel.send(peer, 8, 0, Buffer.from('hello'));
        const before = nat.closes.length;
        attack(send, peer, record!);
        await until(() => nat.closes.length > before, `the close after ${what}`);
        assert.equal(nat.closes[before]![1], 'auth', what);
        await bad.channel.shutdown();
      }
      assert.equal(nat.frames.filter((f) => f.payload.toString() === 'hello').length, 1, 'only the replayed original arrived');
      live.channel.send(livePeer, 8, 0, Buffer.from('still here'));
      await until(() => nat.frames.some((f) => f.payload.toString() === 'still here'), 'the live peer');
      assert.equal(nat.channel.secureStats().authFailures, attacks.length);
      assert.equal(nat.closes.length, attacks.length);
      await live.channel.shutdown();
      await nat.channel.shutdown();
    });

    it('compresses before sealing and opens before decompressing, native to native; a JavaScript peer sees compress() payloads', async () => {
      const compression = { method: 'deflate-fixed' as const, threshold: 512 };
      const server = side(new NativeTcpTransport({ ...mode, compression }), { identity });
      const client = side(new NativeTcpTransport({ ...mode, compression }), {});
      const js = side(new NodeNetTransport(), {});
      const text = Buffer.from('the frame of the peer in the batch of the record '.repeat(100));
      const { peer, serverPeer, done } = await connect(server, client);
      try {
        client.channel.send(peer, 8, 0, text);
        server.channel.send(serverPeer, 8, 0, text);
        await until(() => server.frames.length === 1 && client.frames.length === 1, 'frames');
        assert.deepEqual(server.frames[0]!.payload, text);
        assert.deepEqual(client.frames[0]!, { peer, kind: 8, flags: 0, payload: text });
        const cs = native(client.inner).compressionStats();
        assert.equal(cs.framesCompressed, 1);
        assert.equal(cs.framesDecompressed, 1);
        assert.ok(cs.bytesAfter < text.length / 4);
        const jsPeer = await js.channel.connect(await server.channel.listen({ host: '127.0.0.1', port: 0 }));
        await until(() => server.channel.peerInfo(jsPeer) !== undefined || server.frames.length > 0, 'js open');
        js.channel.send(jsPeer, 8, 0, Buffer.from('ping'));
        await until(() => server.frames.length === 2, 'js frame');
        server.channel.send(server.frames[1]!.peer, 8, 0, text);
        await until(() => js.frames.length === 1, 'reply to js');
        assert.equal(js.frames[0]!.flags, FrameFlag.Compressed);
        assert.deepEqual(decompress(js.frames[0]!.payload), text);
      } finally {
        await js.channel.shutdown();
        await done();
      }
    });
  });
}

describe('SecureChannel offload option', () => {
  it('is off by default: records stay in JavaScript over NativeTcpTransport', async () => {
    const inner = new NativeTcpTransport();
    const channel = new SecureChannel(inner, { identity });
    const nat: Side = { inner, channel, frames: collect(channel), closes: [] };
    const js = side(new NodeNetTransport(), {});
    const { peer, done } = await connect(nat, js);
    try {
      js.channel.send(peer, 8, 0, Buffer.from('x'));
      await until(() => nat.frames.length === 1, 'frame');
      assert.deepEqual(inner.recordStats(), { recordsSealed: 0, recordsOpened: 0, rekeysSent: 0, rekeysReceived: 0 });
    } finally {
      await done();
    }
    assert.throws(() => new SecureChannel(new NodeNetTransport(), { offload: 1 as never }), /options\.offload must be a boolean/);
  });
});
