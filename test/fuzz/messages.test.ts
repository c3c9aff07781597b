// Bounded fuzz loops for every message kind of the framework (docs/protocol.md,
// "Messages"; encoders in lib/protocol/messages.ts, decoding in
// lib/framework/connection.ts), over the in-process MemoryTransport.
//
// Server side: a raw peer sends mutated valid messages of every request kind
// (Console, Stream, DirectConsole, DirectStream, Buffer, BufferMore, BigBegin,
// BigChunk, BigCredit, BigAbort, and answers nobody asked for) to a Server
// with a command of every kind. Checked: nothing throws out of the framework
// (no uncaught exception or unhandled rejection); the server only ever sends
// Reply, Error or BigCredit, each well formed and for an id the peer used;
// every raw peer is gone from the server once closed; the memory outside the
// JavaScript heap (where Buffers live) never grows by more than 32 MiB within
// one iteration, which sends at most a few KiB (no length a peer declares is
// allocated up front); an honest client is served afterwards.
//
// Client side: a raw server answers a Client's calls of every kind with
// mutated Reply and Error messages (and stray messages of other kinds).
// Checked: every call settles, with a value or a ZsError, and nothing throws
// out of the framework.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ZsError } from '../../lib/errors.js';
import { Client } from '../../lib/framework/client.js';
import { Server } from '../../lib/framework/server.js';
import { DataFrame } from '../../lib/protocol/dataframe.js';
import {
  MessageKind as K,
  encodeBigBegin,
  encodeBufferBegin,
  encodeConsole,
  encodeCredit,
  encodeError,
  encodeIdBytes,
  encodeIdText,
  encodeReplyFrame,
  encodeStream,
  nameBytes,
} from '../../lib/protocol/messages.js';
import { MemoryNetwork, MemoryTransport } from '../../lib/transport/memory.js';
import type { FrameBatch, PeerId } from '../../lib/transport/types.js';
import { fuzzLoopAsync, mutate, type Rng } from './mutate.js';

const tick = () => new Promise((r) => setImmediate(r));

async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Catches what escapes the framework while `fn` runs. */
async function noEscapes(fn: () => Promise<void>): Promise<void> {
  const escaped: unknown[] = [];
  const onError = (err: unknown) => escaped.push(err);
  process.on('uncaughtException', onError);
  process.on('unhandledRejection', onError);
  try {
    await fn();
    await new Promise((r) => setTimeout(r, 20));
  } finally {
    process.off('uncaughtException', onError);
    process.off('unhandledRejection', onError);
  }
  assert.deepEqual(escaped, [], 'errors escaped the framework');
}

type Message = [kind: number, payload: Uint8Array];

/** Valid messages of every request kind, copied out of the shared encoder buffer. */
function requestSeeds(): Message[] {
  const copy = (b: Uint8Array) => Uint8Array.from(b);
  const df = new DataFrame().writeInt32(40).writeInt32(2);
  const seeds: Message[] = [
    [K.Console, copy(encodeConsole(1, nameBytes('echo'), 'hello'))],
    [K.Stream, copy(encodeStream(2, nameBytes('add'), df))],
    [K.DirectConsole, copy(encodeConsole(-1, nameBytes('note'), 'fire and forget'))],
    [K.DirectStream, copy(encodeStream(-1, nameBytes('noteFrame'), df))],
    [K.Buffer, copy(encodeBufferBegin(3, 1, nameBytes('blob'), 10, Buffer.from('01234')))],
    [K.BufferMore, copy(encodeIdBytes(3, Buffer.from('56789')))],
    [K.Buffer, copy(encodeBufferBegin(4, 0, nameBytes('blob'), 3, Buffer.from('abc')))],
    [K.BigBegin, copy(encodeBigBegin(5, nameBytes('up'), 8n, new DataFrame().writeString('info')))],
    [K.BigChunk, copy(encodeIdBytes(5, Buffer.from('12345678')))],
    [K.BigCredit, copy(encodeCredit(5, 65536))],
    [K.BigAbort, copy(encodeIdText(5, 'changed my mind'))],
    [K.Reply, copy(encodeReplyFrame(6, df))],
    [K.Error, copy(encodeError(7, 'ZS_X', 'no'))],
  ];
  return seeds;
}

function mutateMessage(rng: Rng, seeds: Message[]): Message {
  const [kind, payload] = rng.pick(seeds);
  const k = rng.below(8) === 0 ? 8 + rng.below(14) : kind; // now and then a kind the payload was not made for
  return [k, rng.below(6) === 0 ? payload : mutate(rng, payload, seeds.map((s) => s[1]))];
}

/** The ids a request message carries (bytes 0-3 of every kind with an id). */
function requestId(kind: number, payload: Uint8Array): number | undefined {
  if (kind === K.DirectConsole || kind === K.DirectStream || payload.length < 4) return undefined;
  return Buffer.from(payload.buffer, payload.byteOffset, payload.length).readUInt32LE(0);
}

describe('framework messages fuzz loop', () => {
  it('a server answers, ignores or closes on mutated messages of every kind, and keeps serving', async () => {
    const server = new Server({ quiet: true });
    server.console('echo', (s) => s);
    server.stream('add', (df) => new DataFrame().writeInt32(df.readInt32() + df.readInt32()));
    server.directConsole('note', () => {});
    server.directStream('noteFrame', () => {});
    server.buffer('blob', (b) => b);
    server.bigStream('up', async (s) => {
      for await (const _chunk of s);
      return new DataFrame().writeString('done');
    });
    const network = new MemoryNetwork();
    const ep = await server.listen(new MemoryTransport({ network }), { host: 'fuzz', port: 1 });
    const raw = new MemoryTransport({ network });
    const answers = new Map<PeerId, { kind: number; payload: Buffer }[]>();
    raw.on('frames', (b: FrameBatch) => {
      for (let i = 0; i < b.count; i++) {
        const list = answers.get(b.peers[i]!) ?? [];
        list.push({ kind: b.kinds[i]!, payload: Buffer.from(b.data.subarray(b.offsets[i]!, b.offsets[i]! + b.lengths[i]!)) });
        answers.set(b.peers[i]!, list);
      }
    });
    const seeds = requestSeeds();
    let checked = 0;
    let peakGrowth = 0;
    try {
      await noEscapes(async () => {
        const ran = await fuzzLoopAsync({ count: 400, ms: 6000, seed: 20261210 }, async (rng) => {
          const base = process.memoryUsage().arrayBuffers;
          const peer = await raw.connect(ep.address);
          const sent: Message[] = [];
          for (let n = 1 + rng.below(6); n > 0; n--) {
            const m = rng.below(4) === 0 ? rng.pick(seeds) : mutateMessage(rng, seeds);
            sent.push(m);
            try {
              raw.send(peer, m[0], 0, m[1]);
            } catch {
              break; // the server closed this connection after a violation
            }
          }
          for (let t = 0; t < 4; t++) await tick();
          const ids = new Set(sent.map(([k, p]) => requestId(k, p)));
          for (const a of answers.get(peer) ?? []) {
            checked++;
            assert.ok(a.kind === K.Reply || a.kind === K.Error || a.kind === K.BigCredit, `server sent kind ${a.kind}`);
            assert.ok(a.payload.length >= 4, 'answer without an id');
            assert.ok(ids.has(a.payload.readUInt32LE(0)), `answer for id ${a.payload.readUInt32LE(0)}, which the peer never used`);
            if (a.kind === K.Error) assert.ok(a.payload.length >= 5 && 5 + a.payload[4]! <= a.payload.length, 'malformed Error answer');
            if (a.kind === K.BigCredit) assert.equal(a.payload.length, 8);
          }
          answers.delete(peer);
          peakGrowth = Math.max(peakGrowth, process.memoryUsage().arrayBuffers - base);
          try {
            raw.close(peer, true);
          } catch {
            // already closed by the server
          }
        });
        assert.ok(ran >= 50, `only ${ran} iterations ran`);
        assert.ok(peakGrowth < 32 << 20, `Buffer memory grew by ${peakGrowth} bytes in one iteration`);
        assert.ok(checked >= ran / 4, `only ${checked} answers in ${ran} iterations: the loop did not reach the handlers`);
        await until(() => server.stats().online === 0, 2000, 'every raw peer to be gone from the server');
        assert.ok(server.stats().protocolErrors > 0, 'no mutated message was a violation: the loop did not reach the checks');

        // An honest client is served.
        const client = new Client({ transport: new MemoryTransport({ network }), host: 'fuzz', port: 1 });
        await client.connect();
        assert.equal(await client.callConsole('echo', 'still here', { timeout: 2000 }), 'still here');
        const sum = await client.call('add', new DataFrame().writeInt32(40).writeInt32(2), { timeout: 2000 });
        assert.equal(sum.readInt32(), 42);
        await client.close();
      });
    } finally {
      await server.close();
      await raw.shutdown();
    }
  });

  it('a client settles every call, with a value or a ZsError, whatever answers it gets', async () => {
    const network = new MemoryNetwork();
    const rawServer = new MemoryTransport({ network });
    await rawServer.listen({ host: 'fuzz-server', port: 2 });
    const seeds = requestSeeds();
    let rng: Rng | undefined;
    // Answers every request with a mutated Reply or Error for its id, sometimes with stray messages too.
    rawServer.on('frames', (b: FrameBatch) => {
      for (let i = 0; i < b.count; i++) {
        const kind = b.kinds[i]!;
        const off = b.offsets[i]!;
        if (b.lengths[i]! < 4 || !rng) continue;
        const id = b.data.readUInt32LE(off);
        const good = rng.below(2) === 0 ? encodeReplyFrame(id, new DataFrame().writeString('x')) : encodeError(id, 'ZS_FUZZ', 'fuzzed');
        const answer = rng.below(4) === 0 ? Uint8Array.from(good) : mutate(rng, good, seeds.map((s) => s[1]));
        try {
          rawServer.send(b.peers[i]!, rng.below(5) === 0 ? rng.pick([K.Reply, K.Error, 8 + rng.below(14)]) : rng.below(2) === 0 ? K.Reply : K.Error, 0, answer);
          if (rng.below(8) === 0) {
            const [k, p] = mutateMessage(rng, seeds);
            rawServer.send(b.peers[i]!, k, 0, p);
          }
          if (kind === K.BigBegin) rawServer.send(b.peers[i]!, K.BigCredit, 0, Uint8Array.from(encodeCredit(id, 1 << 20)));
        } catch {
          // the client closed the connection
        }
      }
    });
    let settled = 0;
    let failed = 0;
    try {
      await noEscapes(async () => {
        const ran = await fuzzLoopAsync({ count: 150, ms: 4000, seed: 20261211 }, async (r) => {
          rng = r;
          const client = new Client({ transport: new MemoryTransport({ network }), host: 'fuzz-server', port: 2, quiet: true });
          await client.connect();
          const calls: Promise<unknown>[] = [];
          const opts = { timeout: 300 };
          for (let n = 1 + r.below(4); n > 0; n--) {
            switch (r.below(4)) {
              case 0: calls.push(client.callConsole('c', 'text', opts) as Promise<string>); break;
              case 1: calls.push(client.call('s', new DataFrame().writeByte(1), opts) as Promise<DataFrame>); break;
              case 2: calls.push(client.callBuffer('b', Buffer.from('buffer'), opts) as Promise<Buffer>); break;
              default: calls.push(client.sendBigStream('g', Buffer.from('big stream body'), opts) as Promise<DataFrame>);
            }
          }
          const results = await Promise.allSettled(calls);
          for (const res of results) {
            settled++;
            if (res.status === 'rejected') {
              failed++;
              assert.ok(res.reason instanceof ZsError, `a call failed with ${String(res.reason)}, not a ZsError`);
            }
          }
          await client.close();
        });
        assert.ok(ran >= 30, `only ${ran} iterations ran`);
        assert.ok(failed > 0 && failed < settled, `${failed} of ${settled} calls failed: the loop did not reach both outcomes`);
      });
    } finally {
      await rawServer.shutdown();
    }
  });
});
