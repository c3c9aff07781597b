/**
 * Listening on an inherited socket (the `fd` listen option; NativeTcpTransport.listenSocket makes
 * one) and Transport.stopListening(), for the native TCP transport (inline loop and I/O thread)
 * and node-net: two transports accept from one queue; one that stops listening keeps its peers,
 * and the connections that arrive afterwards wait in the queue for the other, none reset.
 */
import assert from 'node:assert/strict';
import { closeSync, openSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import { ConnectError } from '../../lib/errors.js';
import { NativeTcpTransport } from '../../lib/transport/native-tcp.js';
import { NodeNetTransport } from '../../lib/transport/node-net.js';
import type { ListenOptions, Transport } from '../../lib/transport/types.js';
import { encodeFrame, rawClient, sleep, type RawClient } from '../helpers/frames.js';

/** Collects what a server transport sees: opened peers, payloads received, closes. */
function watch(t: Transport): { opened: number[]; payloads: string[]; closes: string[] } {
  const seen = { opened: [] as number[], payloads: [] as string[], closes: [] as string[] };
  t.on('open', (peer) => seen.opened.push(peer));
  t.on('frames', (b) => {
    for (let i = 0; i < b.count; i++) seen.payloads.push(b.data.subarray(b.offsets[i]!, b.offsets[i]! + b.lengths[i]!).toString());
  });
  t.on('close', (_peer, reason) => seen.closes.push(reason));
  return seen;
}

async function until(pred: () => boolean, what: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

const cleanups: (() => unknown)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

// node-net takes the descriptor over (stopListening closes it), so it is tested alone below.
const makers: [string, () => Transport][] = [
  ['native-tcp (inline loop)', () => new NativeTcpTransport()],
  ['native-tcp (I/O thread)', () => new NativeTcpTransport({ ioThread: true })],
];

for (const [name, make] of makers) {
  describe(`listen({ fd }) and stopListening(): ${name}`, () => {
    it('shares one accept queue; after stopListening the next connections wait for the other transport, none reset', { timeout: 20_000 }, async () => {
      const { fd, port } = NativeTcpTransport.listenSocket({ host: '127.0.0.1', port: 0 });
      const raws: RawClient[] = [];
      const a = make();
      const b = make();
      cleanups.push(() => a.shutdown(), () => b.shutdown(), () => closeSync(fd));
      const seenA = watch(a);
      const seenB = watch(b);
      // `fd` is a listen option of these two transports, not of every Transport.
      const listenFd = { fd } as ListenOptions;
      assert.equal((await a.listen({ host: '127.0.0.1', port: 0 }, listenFd)).port, port);
      const first = await rawClient(port);
      raws.push(first);
      first.socket.write(encodeFrame(9, 0, Buffer.from('first')));
      await until(() => seenA.payloads.length === 1, 'the first frame on A');

      assert.equal(await a.stopListening!(port), true);
      assert.equal(await a.stopListening!(port), false, 'nothing listens there any more');
      assert.equal(await a.stopListening!(1), false);
      // A's peer stays open and is still read.
      first.socket.write(encodeFrame(9, 0, Buffer.from('still A')));
      await until(() => seenA.payloads.length === 2, 'a frame on A after stopListening');

      // Nobody accepts now: these connections complete in the kernel and wait in the queue.
      for (let i = 0; i < 5; i++) {
        const c = await rawClient(port);
        c.socket.write(encodeFrame(9, 0, Buffer.from(`queued ${i}`)));
        raws.push(c);
      }
      await sleep(100);
      assert.equal(seenA.opened.length, 1, 'A accepted nothing after stopListening');

      await b.listen({ host: '127.0.0.1', port: 0 }, listenFd);
      await until(() => seenB.payloads.length === 5, 'the queued frames on B');
      assert.deepEqual(seenB.payloads.sort(), ['queued 0', 'queued 1', 'queued 2', 'queued 3', 'queued 4']);
      assert.deepEqual([...seenA.payloads], ['first', 'still A']);
      assert.deepEqual([...seenA.closes, ...seenB.closes], [], 'no connection was closed');
      for (const c of raws) assert.equal(c.socket.destroyed, false);
      for (const c of raws) c.socket.destroy();
    });
  });
}

describe('listen({ fd }) and stopListening(): node-net', () => {
  it('accepts on the socket; stopListening keeps its peers and closes the descriptor it took over', { timeout: 20_000 }, async () => {
    const { fd, port } = NativeTcpTransport.listenSocket({ host: '127.0.0.1', port: 0 });
    const a = new NodeNetTransport();
    cleanups.push(() => a.shutdown());
    const seen = watch(a);
    assert.equal((await a.listen({ host: '127.0.0.1', port: 0 }, { fd })).port, port);
    const first = await rawClient(port);
    first.socket.write(encodeFrame(9, 0, Buffer.from('first')));
    await until(() => seen.payloads.length === 1, 'the first frame');
    assert.equal(await a.stopListening(port), true);
    assert.equal(await a.stopListening(port), false);
    first.socket.write(encodeFrame(9, 0, Buffer.from('still open')));
    await until(() => seen.payloads.length === 2, 'a frame after stopListening');
    // It was the only holder of the socket: nothing listens on the port now.
    await assert.rejects(rawClient(port), /ECONNREFUSED/);
    assert.deepEqual(seen.closes, []);
    first.socket.destroy();
  });
});

describe('listen({ fd }): arguments', () => {
  it('rejects a descriptor that is not a listening TCP socket with ConnectError, and a bad one with RangeError', async () => {
    const t = new NativeTcpTransport();
    cleanups.push(() => t.shutdown());
    const file = openSync(new URL(import.meta.url), 'r');
    try {
      await assert.rejects(t.listen({ host: '127.0.0.1', port: 0 }, { fd: file }), (e: Error) => {
        assert.ok(e instanceof ConnectError);
        assert.match(e.message, new RegExp(`cannot listen on descriptor ${file} \\(it must be a listening TCP socket\\): ENOTSOCK`));
        return true;
      });
    } finally {
      closeSync(file);
    }
    await assert.rejects(t.listen({ host: '127.0.0.1', port: 0 }, { fd: -1 }), RangeError);
    await assert.rejects(new NodeNetTransport().listen({ host: '127.0.0.1', port: 0 }, { fd: 1.5 }), RangeError);
    assert.throws(() => NativeTcpTransport.listenSocket({ host: 'not-an-ip', port: 0 }), ConnectError);
  });
});
