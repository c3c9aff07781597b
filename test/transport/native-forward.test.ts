// NativeTcpTransport.forward(): inside the transport's own 'frames' callback
// the native loop copies a forwarded payload straight from the batch's memory
// when the callback returns; any other batch is copied at the call. Backpressure,
// closed peers, native compression and the binding's range checks. Both loop modes.
// (The conformance suite, suite.ts, checks forwardFrame() order and bytes on every transport.)
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { describe, it } from 'node:test';
import { ConnectionClosedError } from '../../lib/errors.js';
import { native } from '../../lib/native.js';
import { NativeTcpTransport, type NativeTcpOptions } from '../../lib/transport/native-tcp.js';
import { OP_FORWARD, OP_SEND } from '../../lib/transport/native-constants.js';
import type { ConnectionOptions, FrameBatch, PeerId } from '../../lib/transport/types.js';
import { collect, waitFor } from './suite-helpers.js';

async function pair(mode: NativeTcpOptions, serverOptions: ConnectionOptions = {}) {
  const server = new NativeTcpTransport(mode);
  const client = new NativeTcpTransport(mode);
  const at = await server.listen({ host: '127.0.0.1', port: 0 }, serverOptions);
  const opened = once(server, 'open');
  const peer = await client.connect(at);
  const [serverPeer] = (await opened) as [PeerId];
  return { server, client, peer, serverPeer, done: async () => (await client.shutdown(), await server.shutdown()) };
}

for (const mode of [{ ioThread: false }, { ioThread: true }] as NativeTcpOptions[]) {
  describe(`NativeTcpTransport.forward (${mode.ioThread ? 'I/O thread' : 'inline'})`, () => {
    it('reads a payload of its own batch when the callback returns, and copies any other batch at the call', async () => {
      const { server, client, peer, done } = await pair(mode);
      server.on('frames', (b: FrameBatch) => {
        for (let i = 0; i < b.count; i++) {
          const o = b.offsets[i]!;
          const n = b.lengths[i]!;
          if (b.kinds[i] === 8) {
            // Its own batch: the bytes go out as they are when the callback ends.
            server.forward(b, i);
            b.data.fill(0x41, o, o + n);
          } else {
            // A batch of other memory: copied now, so changing it afterwards changes nothing.
            const copy: FrameBatch = { ...b, data: Buffer.from(b.data) };
            server.forward(copy, i);
            copy.data.fill(0x42, o, o + n);
          }
        }
      });
      const got = collect(client);
      client.send(peer, 8, 0, Buffer.from('own batch'));
      client.send(peer, 9, 1, Buffer.from('other memory'));
      await waitFor('both frames back', () => got.length === 2);
      assert.deepEqual(got.map((g) => [g.kind, g.flags, g.payload.toString()]), [
        [8, 0, 'AAAAAAAAA'],
        [9, 1, 'other memory'],
      ]);
      await done();
    });

    it('throws for a closed peer, reports the high-water mark, and drain follows', async () => {
      const { server, client, peer, serverPeer, done } = await pair(mode, { highWaterMark: 1000 });
      const results: unknown[] = [];
      server.on('frames', (b: FrameBatch) => {
        for (let i = 0; i < b.count; i++) {
          try {
            server.forward(b, i, 4242);
          } catch (err) {
            results.push((err as Error).constructor);
          }
          results.push(server.forward(b, i));
        }
      });
      const got = collect(client);
      const drained = once(server, 'drain');
      client.send(peer, 8, 0, Buffer.alloc(600, 1));
      client.send(peer, 8, 0, Buffer.alloc(600, 2));
      await waitFor('both frames back', () => got.length === 2);
      const [drainedPeer] = (await drained) as [PeerId];
      assert.equal(drainedPeer, serverPeer);
      assert.deepEqual(results, [ConnectionClosedError, true, ConnectionClosedError, false]);
      assert.deepEqual(got.map((g) => g.payload[0]), [1, 2]);
      assert.equal(server.stats().framesOut, 2);
      await done();
    });

    it('a forwarded frame is compressed on the wire when the compression option is on', async () => {
      const server = new NativeTcpTransport({ ...mode, compression: {} });
      const client = new NativeTcpTransport({ ...mode, compression: {} });
      const at = await server.listen({ host: '127.0.0.1', port: 0 });
      server.on('frames', (b: FrameBatch) => {
        for (let i = 0; i < b.count; i++) server.forward(b, i);
      });
      const got = collect(client);
      const peer = await client.connect(at);
      const payload = Buffer.from('forwarded frames compress like sent ones. '.repeat(200));
      client.send(peer, 12, 0, payload);
      await waitFor('the frame back', () => got.length === 1);
      assert.ok(got[0]!.payload.equals(payload));
      assert.equal(server.compressionStats().framesCompressed, 1);
      assert.ok(server.compressionStats().bytesAfter < payload.length / 4);
      await client.shutdown();
      await server.shutdown();
    });
  });
}

describe('TcpLoop.submit forward records', () => {
  it('refuses a forward without a source or outside it, before queuing anything', () => {
    const loop = new (native().TcpLoop)(() => undefined, false);
    try {
      const ops = new Uint8Array([OP_SEND, OP_FORWARD]);
      const peers = new Uint32Array(2);
      const kinds = new Uint8Array([8, 8]);
      const lens = new Uint32Array([1, 4]);
      const data = new Uint8Array(1);
      assert.throws(() => loop.submit(data, 2, ops, peers, kinds, lens), { name: 'RangeError', message: /outside its source/ });
      assert.throws(() => loop.submit(data, 2, ops, peers, kinds, lens, new Uint32Array([0, 7]), new Uint8Array(10)), {
        name: 'RangeError',
        message: /outside its source/,
      });
      assert.throws(() => loop.submit(data, 2, ops, peers, kinds, lens, new Uint32Array(1), new Uint8Array(10)), {
        name: 'RangeError',
        message: /count exceeds/,
      });
      // In range: accepted (peer 0 is not open, so the loop drops the frames).
      loop.submit(data, 2, ops, peers, kinds, lens, new Uint32Array([0, 6]), new Uint8Array(10));
    } finally {
      loop.destroy();
    }
  });
});
