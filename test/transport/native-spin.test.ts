// spinMicros of the native transports (NativeTcpOptions, docs/transport.md "Spin"): the option's
// checks, and a 64-in-flight ping-pong that keeps the inline loop's spin busy (off, default, the
// largest) delivers every frame in order on native TCP and native WebSocket while timers still run;
// against a client in another process (which the spin does catch), an immediate the handler
// schedules still runs before the next batch.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { describe, it } from 'node:test';
import { forwardFrame } from '../../lib/transport/common.js';
import { DEFAULT_SPIN_MICROS, MAX_SPIN_MICROS } from '../../lib/transport/native-options.js';
import { NativeTcpTransport } from '../../lib/transport/native-tcp.js';
import { NativeWsTransport } from '../../lib/transport/native-ws.js';
import type { FrameBatch, PeerId, Transport } from '../../lib/transport/types.js';
import { waitFor } from './suite-helpers.js';

const kinds = {
  'native-tcp': (spinMicros?: number) => new NativeTcpTransport({ spinMicros }),
  'native-ws': (spinMicros?: number) => new NativeWsTransport({ spinMicros }),
};

describe('spinMicros', () => {
  for (const [name, make] of Object.entries(kinds)) {
    it(`${name}: refuses anything but an integer from 0 to ${MAX_SPIN_MICROS}`, () => {
      for (const bad of [-1, MAX_SPIN_MICROS + 1, 2.5, '50', Number.NaN]) {
        assert.throws(() => make(bad as number), (err: Error) => err instanceof RangeError && /options\.spinMicros must be an integer from 0 to 1000/.test(err.message));
      }
    });

    for (const spin of [0, undefined, MAX_SPIN_MICROS]) {
      it(`${name}: spinMicros ${spin ?? `default (${DEFAULT_SPIN_MICROS})`}: 64 in flight, 2,000 echoes in order, timers still fire`, async () => {
        const server: Transport = make(spin);
        const client: Transport = make(spin);
        server.on('frames', (b: FrameBatch) => {
          for (let i = 0; i < b.count; i++) forwardFrame(server, b, i);
        });
        const at = await server.listen({ host: '127.0.0.1', port: 0 });
        const opened = once(server, 'open');
        const peer: PeerId = await client.connect(at);
        await opened;
        const total = 2000;
        let sent = 0;
        let next = 0;
        let outOfOrder = 0;
        const frame = (n: number) => {
          const p = Buffer.alloc(64);
          p.writeUInt32LE(n, 0);
          return p;
        };
        client.on('frames', (b: FrameBatch) => {
          for (let i = 0; i < b.count; i++) {
            if (b.data.readUInt32LE(b.offsets[i]!) !== next) outOfOrder++;
            next++;
            if (sent < total) client.send(peer, 8, 0, frame(sent++));
          }
        });
        let ticks = 0;
        const timer = setInterval(() => ticks++, 1);
        for (let i = 0; i < 64; i++) client.send(peer, 8, 0, frame(sent++));
        await waitFor('every echo', () => next === total, 20_000);
        // One more timer turn after the echoes: an interval that fired never would not count it.
        const before = ticks;
        await waitFor('the interval timer to fire', () => ticks > before, 5_000);
        clearInterval(timer);
        assert.equal(outOfOrder, 0);
        await client.shutdown();
        await server.shutdown();
      });
    }
  }
});

// The client in a child process answers while the server spins, so turns chain inside one libuv
// callback; an immediate scheduled by the handler must still run before the next batch, as it
// does without the spin (libuv's check phase comes between two polls).
const CHILD = `
const net = require('node:net');
const [port, total] = process.argv.slice(1).map(Number);
const frame = Buffer.alloc(13 + 64);
frame.writeUInt32LE(0x5a534846, 0); frame.writeUInt32LE(64, 4); frame[8] = 8; frame.writeUInt32LE(0x5a535446, 73);
const s = net.connect(port, '127.0.0.1', () => { s.setNoDelay(true); s.write(Buffer.concat(Array(64).fill(frame))); });
let sent = 64, got = 0, pending = 0;
s.on('data', (d) => {
  pending += d.length;
  const n = Math.floor(pending / frame.length);
  pending -= n * frame.length;
  got += n;
  const more = Math.min(n, total - sent);
  if (more > 0) { sent += more; s.write(Buffer.concat(Array(more).fill(frame))); }
  if (got >= total) s.end();
});
s.on('close', () => process.exit(got >= total ? 0 : 1));
`;

describe('spinMicros with a client in another process', () => {
  it('runs the handler\'s immediates between batches while turns chain', async () => {
    const server = new NativeTcpTransport({ spinMicros: MAX_SPIN_MICROS });
    let immediatePending = false;
    let batchBeforeImmediate = 0;
    let frames = 0;
    let batches = 0;
    server.on('frames', (b: FrameBatch) => {
      if (immediatePending) batchBeforeImmediate++;
      // Every other batch: a turn without one starts a chain, the next schedules one mid-chain.
      if (++batches % 2 === 0) {
        immediatePending = true;
        setImmediate(() => (immediatePending = false));
      }
      frames += b.count;
      for (let i = 0; i < b.count; i++) forwardFrame(server, b, i);
    });
    const at = await server.listen({ host: '127.0.0.1', port: 0 });
    const total = 5000;
    const child = spawn(process.execPath, ['-e', CHILD, String(at.port), String(total)], { stdio: 'inherit' });
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    const [code] = (await once(child, 'exit')) as [number | null];
    clearTimeout(timer);
    await server.shutdown();
    assert.equal(code, 0);
    assert.equal(frames, total);
    assert.equal(batchBeforeImmediate, 0);
    assert.ok(batches > 10, `${batches} batches`);
  });
});
