/**
 * The per-peer and per-server limits of the command framework (docs/limits.md,
 * "Command framework"), each reached the way a hostile or careless peer would:
 * too many slow requests, 20,000 big streams on one connection, complete
 * buffers that never finish, a request flood, a peer that never reads a
 * broadcast, escape bytes in command names, compressed frames where nobody
 * asked for compression, and compression bombs.
 */
import assert from 'node:assert/strict';
import { connect as netConnect, type Socket } from 'node:net';
import { after, describe, it } from 'node:test';
import { deflateRawSync } from 'node:zlib';
import { compress } from '../../lib/compression/index.js';
import { encodeHeader } from '../../lib/compression/header.js';
import { LimitError, RateLimitedError, RemoteError, StreamAbortedError } from '../../lib/errors.js';
import { Client } from '../../lib/framework/client.js';
import { escapeLogText, LogLimiter, peerText } from '../../lib/framework/log.js';
import type { Peer } from '../../lib/framework/peer.js';
import { Server } from '../../lib/framework/server.js';
import { DataFrame } from '../../lib/protocol/dataframe.js';
import { readU32 } from '../../lib/protocol/bytes-io.js';
import { encodeBigBegin, encodeBufferBegin, encodeConsole, encodeIdBytes, MessageKind as K, nameBytes } from '../../lib/protocol/messages.js';
import { createTransport, transportAvailable } from '../../lib/transport/factory.js';
import { MemoryTransport } from '../../lib/transport/memory.js';
import { FrameFlag, type FrameBatch, type PeerId, type Transport } from '../../lib/transport/types.js';
import { textLike } from '../compression/layer-suite.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`${what}: not met within ${ms} ms`);
    await sleep(2);
  }
}

/** A gate handlers wait on; open() lets them all finish. */
function gate() {
  let open!: () => void;
  const p = new Promise<void>((resolve) => (open = resolve));
  return { p, open };
}

/** A MemoryTransport whose pause()/resume() calls are counted (it keeps delivering, as a transport without pause would). */
class CountingMemory extends MemoryTransport {
  pauses = 0;
  resumes = 0;
  override pause(_peer: PeerId): void {
    this.pauses++;
  }
  override resume(_peer: PeerId): void {
    this.resumes++;
  }
}

/** The answers (Reply/Error) a raw connection received: id → error code, or 'reply'. */
function answers(t: Transport): Map<number, string> {
  const out = new Map<number, string>();
  t.on('frames', (b: FrameBatch) => {
    for (let i = 0; i < b.count; i++) {
      const off = b.offsets[i]!;
      const id = readU32(b.data, off);
      if (b.kinds[i] === K.Reply) out.set(id, 'reply');
      else if (b.kinds[i] === K.Error) out.set(id, b.data.toString('latin1', off + 5, off + 5 + b.data[off + 4]!));
    }
  });
  return out;
}

describe('framework limits', () => {
  it('maxConcurrentRequests: at the cap the peer is paused, the rest of the batch waits, nothing is lost', async () => {
    const server = new Server({ quiet: true, maxConcurrentRequests: 16 });
    const st = new CountingMemory();
    const g = gate();
    let active = 0;
    let maxActive = 0;
    server.stream('slow', async (df) => {
      active++;
      maxActive = Math.max(maxActive, active);
      await g.p;
      await sleep(1);
      active--;
      return new DataFrame().writeInt32(df.readInt32() * 2);
    });
    const ep = await server.listen(st, { host: 'mem', port: 0 });
    const ct = new MemoryTransport();
    const client = new Client({ transport: ct, host: 'mem', port: ep.address.port, quiet: true });
    try {
      await client.connect();
      const calls = Array.from({ length: 200 }, (_, i) => client.call('slow', new DataFrame().writeInt32(i)));
      await until(() => active === 16, '16 handlers running');
      await sleep(20);
      assert.equal(active, 16, 'no more than the cap run');
      assert.equal(st.pauses, 1, 'the peer was paused once');
      const peer = [...server.peers()][0]!;
      assert.equal(peer.activeRequests, 16);
      assert.equal(server.stats().peersPaused, 1);
      g.open();
      const results = await Promise.all(calls);
      assert.deepEqual(results.map((r) => r.readInt32()), Array.from({ length: 200 }, (_, i) => i * 2));
      assert.equal(maxActive, 16);
      await until(() => st.resumes === st.pauses, 'resumed as often as paused');
      assert.ok(st.pauses >= 1);
      assert.equal(peer.activeRequests, 0);
      // Reading again: a fresh call is answered at once.
      assert.equal((await client.call('slow', new DataFrame().writeInt32(21))).readInt32(), 42);
    } finally {
      await client.close();
      await server.close();
      await ct.shutdown();
    }
  });

  it('maxConcurrentRequests: a transport that keeps delivering after pause gets at most the cap held, then ZS_LIMIT', async () => {
    const server = new Server({ quiet: true, maxConcurrentRequests: 8 });
    const st = new CountingMemory();
    const g = gate();
    server.console('slow', async (s) => {
      await g.p;
      return s;
    });
    const ep = await server.listen(st, { host: 'mem', port: 0 });
    const ct = new MemoryTransport();
    const client = new Client({ transport: ct, host: 'mem', port: ep.address.port, quiet: true });
    try {
      await client.connect();
      const first = Array.from({ length: 20 }, (_, i) => client.callConsole('slow', `a${i}`)); // one batch: 8 run, 12 held
      await until(() => st.pauses === 1, 'paused');
      const later = Array.from({ length: 20 }, (_, i) => client.callConsole('slow', `b${i}`).catch((e: Error) => e)); // later batch
      const refused = await Promise.all(later.slice(0, 20));
      assert.ok(refused.every((r) => r instanceof LimitError && r.code === 'ZS_LIMIT' && r.remoteCode === 'ZS_LIMIT'), 'the later batch is refused: 12 already wait');
      g.open();
      assert.deepEqual(await Promise.all(first), Array.from({ length: 20 }, (_, i) => `a${i}`));
      assert.equal(server.stats().requestsRefused, 20);
    } finally {
      await client.close();
      await server.close();
      await ct.shutdown();
    }
  });

  it('maxBigStreams: 20,000 big streams opened on one connection, those beyond the cap refused with ZS_LIMIT', async () => {
    const server = new Server({ quiet: true });
    const g = gate();
    let started = 0;
    server.bigStream('sink', async (stream) => {
      started++;
      await g.p;
      for await (const _chunk of stream);
      return new DataFrame().writeInt32(stream.consumed);
    });
    const ep = await server.listen(new MemoryTransport(), { host: 'mem', port: 0 });
    const ct = new MemoryTransport();
    const client = new Client({ transport: ct, host: 'mem', port: ep.address.port, quiet: true, requestTimeout: 60_000 });
    try {
      await client.connect();
      const heapBefore = process.memoryUsage().heapUsed;
      const one = Buffer.alloc(16, 7);
      const calls = Array.from({ length: 20_000 }, () => client.sendBigStream('sink', one).catch((e: Error) => e));
      await until(() => started === 256, '256 handlers', 20_000);
      const peer: Peer = [...server.peers()][0]!;
      await until(() => server.stats().requestsRefused === 20_000 - 256, 'the rest refused', 20_000);
      assert.equal(peer.bigStreamsIn, 256);
      const heapGrowth = process.memoryUsage().heapUsed - heapBefore;
      g.open();
      const results = await Promise.all(calls);
      const ok = results.filter((r) => r instanceof DataFrame);
      const limited = results.filter((r) => r instanceof LimitError);
      assert.equal(ok.length, 256);
      assert.equal(limited.length, 20_000 - 256);
      assert.match((limited[0] as Error).message, /maxBigStreams/);
      assert.equal(peer.bigStreamsIn, 0);
      // Client and server share this heap; 20,000 pending requests and 256 streams stay far below this.
      assert.ok(heapGrowth < 200 * 1024 * 1024, `heap grew ${heapGrowth} bytes`);
    } finally {
      await client.close();
      await server.close();
      await ct.shutdown();
    }
  });

  it('maxBufferBytesPerPeer and maxBufferBytesTotal: buffers beyond the reservation are refused with ZS_LIMIT', async () => {
    const server = new Server({ quiet: true, maxBufferBytesPerPeer: 1 << 20, maxBufferBytesTotal: (1 << 20) + (1 << 19) });
    server.buffer('b', (data) => Buffer.from(String(data.length)));
    const ep = await server.listen(new MemoryTransport(), { host: 'mem', port: 0 });
    const a = new MemoryTransport();
    const b = new MemoryTransport();
    try {
      const pa = await a.connect(ep.address);
      const pb = await b.connect(ep.address);
      const ansA = answers(a);
      const ansB = answers(b);
      const nb = nameBytes('b');
      const begin = (t: Transport, p: PeerId, id: number, total: number) => t.send(p, K.Buffer, 0, encodeBufferBegin(id, 1, nb, total, Buffer.alloc(1000)));
      begin(a, pa, 1, 600_000); // reserves 600,000 of A's 1 MiB
      begin(a, pa, 2, 600_000); // would pass A's 1 MiB: refused
      begin(b, pb, 3, 600_000); // A 600,000 + B 600,000 fit the 1.5 MiB total
      begin(b, pb, 4, 400_000); // 1.6 MB would pass the total: refused
      await until(() => ansA.size === 1 && ansB.size === 1, 'two refusals');
      assert.equal(ansA.get(2), 'ZS_LIMIT');
      assert.equal(ansB.get(4), 'ZS_LIMIT');
      // The first buffer completes (its reservation comes back), and a new one fits again.
      a.send(pa, K.BufferMore, 0, encodeIdBytes(1, Buffer.alloc(599_000)));
      await until(() => ansA.get(1) === 'reply', 'buffer 1 answered');
      begin(b, pb, 5, 400_000);
      b.send(pb, K.BufferMore, 0, encodeIdBytes(5, Buffer.alloc(399_000)));
      await until(() => ansB.get(5) === 'reply', 'buffer 5 fits once buffer 1 completed');
      assert.equal(server.stats().requestsRefused, 2);
      // Closing a connection gives its reservation back.
      b.close(pb, true);
      await until(() => server.count === 1, 'B gone');
      begin(a, pa, 6, 1 << 20);
      a.send(pa, K.BufferMore, 0, encodeIdBytes(6, Buffer.alloc((1 << 20) - 1000)));
      await until(() => ansA.get(6) === 'reply', 'a whole 1 MiB buffer fits after B closed');
    } finally {
      await a.shutdown();
      await b.shutdown();
      await server.close();
    }
  });

  it('big-stream chunks a handler does not read count against maxBufferBytesPerPeer: beyond it the stream is aborted with ZS_LIMIT', async () => {
    const server = new Server({ quiet: true, maxBufferBytesPerPeer: (5 << 20) / 2, bigStreamWindow: 1 << 20 });
    const g = gate();
    server.bigStream('lazy', async (stream) => {
      await g.p;
      for await (const _chunk of stream);
      return new DataFrame().writeInt32(stream.consumed);
    });
    server.buffer('b', (data) => Buffer.from(String(data.length)));
    const ep = await server.listen(new MemoryTransport(), { host: 'mem', port: 0 });
    const ct = new MemoryTransport();
    const client = new Client({ transport: ct, host: 'mem', port: ep.address.port, quiet: true });
    try {
      await client.connect();
      // Three streams of one window each: 3 MiB would wait unread against a 2.5 MiB budget.
      const calls = [1, 2, 3].map(() => client.sendBigStream('lazy', Buffer.alloc(1 << 20, 1)).catch((e: Error) => e));
      await until(() => server.stats().requestsRefused >= 1, 'one stream aborted');
      g.open();
      const results = await Promise.all(calls);
      const limited = results.filter((r) => r instanceof LimitError);
      assert.equal(limited.length, 1, results.map(String).join(', '));
      assert.match((limited[0] as Error).message, /does not keep up/);
      assert.equal(results.filter((r) => r instanceof DataFrame && r.readInt32() === 1 << 20).length, 2);
      // Every byte came back to the budget: a buffer of the whole 2.5 MiB fits.
      const whole = await client.callBuffer('b', Buffer.alloc((5 << 20) / 2));
      assert.equal(whole.toString(), String((5 << 20) / 2));
    } finally {
      await client.close();
      await server.close();
      await ct.shutdown();
    }
  });

  it('assemblyTimeout: an unfinished complete buffer is dropped and its sender told ZS_TIMEOUT; a stalled big stream too', async () => {
    const server = new Server({ quiet: true, assemblyTimeout: 150, maxBufferBytesPerPeer: 200_000 });
    server.buffer('b', (data) => Buffer.from(String(data.length)));
    let handlerError: Error | undefined;
    server.bigStream('up', async (stream) => {
      try {
        for await (const _chunk of stream);
      } catch (err) {
        handlerError = err as Error;
        throw err;
      }
    });
    const ep = await server.listen(new MemoryTransport(), { host: 'mem', port: 0 });
    const raw = new MemoryTransport();
    const ct = new MemoryTransport();
    const client = new Client({ transport: ct, host: 'mem', port: ep.address.port, quiet: true });
    try {
      const p = await raw.connect(ep.address);
      const ans = answers(raw);
      raw.send(p, K.Buffer, 0, encodeBufferBegin(1, 1, nameBytes('b'), 150_000, Buffer.alloc(10)));
      raw.send(p, K.Buffer, 0, encodeBufferBegin(2, 1, nameBytes('b'), 150_000, Buffer.alloc(10)));
      await until(() => ans.get(2) === 'ZS_LIMIT', 'the second does not fit while the first waits');
      const t0 = Date.now();
      await until(() => ans.get(1) === 'ZS_TIMEOUT', 'the first is dropped after assemblyTimeout', 3000);
      assert.ok(Date.now() - t0 >= 100, 'not before the timeout');
      assert.equal(server.stats().assembliesExpired, 1);
      raw.send(p, K.BufferMore, 0, encodeIdBytes(1, Buffer.alloc(10))); // late bytes of a dropped buffer are ignored
      raw.send(p, K.Buffer, 0, encodeBufferBegin(3, 1, nameBytes('b'), 150_000, Buffer.alloc(10)));
      raw.send(p, K.BufferMore, 0, encodeIdBytes(3, Buffer.alloc(149_990)));
      await until(() => ans.get(3) === 'reply', 'the reservation came back');

      // A big stream whose sender stops after one chunk.
      await client.connect();
      async function* stalls() {
        yield Buffer.alloc(1000);
        await new Promise(() => {});
      }
      const err = await client.sendBigStream('up', stalls(), { size: 10_000 }).catch((e: Error) => e);
      assert.ok(err instanceof RemoteError, String(err));
      assert.equal(err.remoteCode, 'ZS_TIMEOUT');
      assert.match(err.message, /assemblyTimeout/);
      await until(() => handlerError !== undefined, 'the handler sees the stream fail');
      assert.ok(handlerError instanceof StreamAbortedError);
      assert.equal(server.stats().assembliesExpired, 2);
      assert.equal([...server.peers()].every((peer) => peer.bigStreamsIn === 0), true);
    } finally {
      await client.close();
      await raw.shutdown();
      await ct.shutdown();
      await server.close();
    }
  });

  it('requestRate: requests beyond the rate and burst are answered ZS_RATE_LIMITED; the bucket refills', async () => {
    const server = new Server({ quiet: true, requestRate: 20, requestBurst: 5 });
    server.console('echo', (s) => s);
    const ep = await server.listen(new MemoryTransport(), { host: 'mem', port: 0 });
    const ct = new MemoryTransport();
    const client = new Client({ transport: ct, host: 'mem', port: ep.address.port, quiet: true });
    try {
      await client.connect();
      const results = await Promise.all(Array.from({ length: 30 }, (_, i) => client.callConsole('echo', String(i)).catch((e: Error) => e)));
      const ok = results.filter((r) => typeof r === 'string');
      const limited = results.filter((r) => r instanceof RateLimitedError);
      assert.ok(ok.length >= 5 && ok.length <= 7, `${ok.length} within the burst (plus what refilled meanwhile)`);
      assert.equal(ok.length + limited.length, 30);
      assert.equal((limited[0] as RateLimitedError).code, 'ZS_RATE_LIMITED');
      assert.equal(server.stats().requestsRateLimited, limited.length);
      await sleep(300); // 20/s: about 6 tokens back
      assert.equal(await client.callConsole('echo', 'again'), 'again');
    } finally {
      await client.close();
      await server.close();
      await ct.shutdown();
    }
    assert.throws(() => new Server({ requestRate: -1 }), /requestRate must be an integer from 0/);
    assert.throws(() => new Server({ maxBigStreams: 0 }), /maxBigStreams must be an integer from 1/);
  });

  it('log lines escape peer-chosen text and peer-caused lines are rate-limited with a summary', async () => {
    const lines: string[] = [];
    const server = new Server({ log: (level, message) => lines.push(`${level} ${message}`) });
    const ep = await server.listen(new MemoryTransport(), { host: 'mem', port: 0 });
    const raw = new MemoryTransport();
    try {
      const p = await raw.connect(ep.address);
      const evil = '\x1b[2J\x1b]0;owned\x07\nfake line\u202e';
      raw.send(p, K.DirectConsole, 0, encodeConsole(-1, nameBytes(evil), 'x'));
      await until(() => lines.length === 1, 'one line');
      assert.ok(!/[\x00-\x1f\x7f\u202e]/.test(lines[0]!), JSON.stringify(lines[0]));
      assert.ok(lines[0]!.includes('\\x1b[2J\\x1b]0;owned\\x07\\x0afake line\\u202e'), lines[0]);
      for (let i = 0; i < 200; i++) raw.send(p, K.DirectConsole, 0, encodeConsole(-1, nameBytes(`nope${i}`), 'x'));
      await until(() => lines.some((l) => /suppressed \d+ log lines/.test(l)), 'a summary line', 3000);
      const summary = lines.find((l) => /suppressed/.test(l))!;
      const suppressed = Number(/suppressed (\d+)/.exec(summary)![1]);
      assert.equal(lines.length - 1 + suppressed, 201, 'every line written or counted');
      assert.ok(lines.length <= 22, `${lines.length} lines written`);
      assert.equal(server.stats().logLinesSuppressed, suppressed);
    } finally {
      await raw.shutdown();
      await server.close();
    }
    assert.equal(escapeLogText('a\tb\x7fc\x9b'), 'a\\x09b\\x7fc\\x9b');
    assert.equal(peerText('y'.repeat(130), 100), `${'y'.repeat(100)}…(+30 chars)`);
    const written: string[] = [];
    const limiter = new LogLimiter<'warn'>(2, 'warn', (_l, m) => written.push(m));
    for (let i = 0; i < 5; i++) limiter.line('warn', `l${i}`);
    assert.deepEqual(written, ['l0', 'l1']);
    await until(() => written.length === 3, 'the summary comes by itself when the second ends', 2000);
    assert.equal(written[2], 'suppressed 3 log lines in the last second (more than 2 a second)');
  });

  it('compression bombs: refused unread by an endpoint with compression, the loop stays responsive', async () => {
    const server = new Server({ quiet: true });
    server.console('echo', (s) => s);
    const closes: string[] = [];
    server.on('disconnect', (_peer, reason) => closes.push(reason));
    const ep = await server.listen(new MemoryTransport(), { host: 'mem', port: 0 }, { compression: {} });
    const ct = new MemoryTransport();
    const client = new Client({ transport: ct, host: 'mem', port: ep.address.port, quiet: true, compression: {} });
    const attackers = new MemoryTransport();
    let maxGap = 0;
    let last = performance.now();
    const probe = setInterval(() => {
      const now = performance.now();
      maxGap = Math.max(maxGap, now - last);
      last = now;
    }, 5);
    try {
      await client.connect();
      const rssBefore = process.memoryUsage().rss;
      // 1 MiB of zeros as zlib at level 9 behind the compression header: about 1000:1.
      const bomb = Buffer.concat([encodeHeader('zlib', 1 << 20), deflateRawSync(Buffer.alloc(1 << 20), { level: 9 })]);
      assert.ok(bomb.length * 900 < 1 << 20, `a 1000:1 bomb (${bomb.length} bytes)`);
      // At the ratio cap: text compressed about 4:1, decoding to a whole 1 MiB frame each.
      const heavy = compress(Buffer.concat([Buffer.from([4]), nameBytes('echo'), textLike((1 << 20) - 200, 9)]), 'deflate-fixed');
      const rtts: number[] = [];
      for (let round = 0; round < 20; round++) {
        const p = await attackers.connect(ep.address);
        for (let i = 0; i < 100; i++) attackers.send(p, K.Console, FrameFlag.Compressed, bomb);
        const q = await attackers.connect(ep.address);
        for (let i = 0; i < 4; i++) attackers.send(q, K.DirectConsole, FrameFlag.Compressed, heavy);
        const t0 = performance.now();
        assert.equal(await client.callConsole('echo', `r${round}`), `r${round}`);
        rtts.push(performance.now() - t0);
      }
      await until(() => closes.filter((c) => c === 'protocol').length === 20, 'every bomb connection closed with protocol');
      const stats = (ep.stack as unknown as { compressionStats(): { framesDecompressed: number; decodeFailures: number } }).compressionStats();
      assert.equal(stats.decodeFailures, 20, 'one failure per bomb connection; its later bombs were never decoded');
      const rssGrowth = process.memoryUsage().rss - rssBefore;
      process.stdout.write(`# bombs: max loop gap ${maxGap.toFixed(1)} ms, echo p100 ${Math.max(...rtts).toFixed(1)} ms, RSS +${(rssGrowth / 1048576).toFixed(1)} MiB\n`);
      assert.ok(rssGrowth < 256 * 1024 * 1024, `RSS grew ${rssGrowth} bytes`);
      // Generous for a shared 2-core machine: without the ratio cap one round alone decodes 100 MiB.
      assert.ok(maxGap < 500, `the loop stalled for ${maxGap} ms`);
    } finally {
      clearInterval(probe);
      await client.close();
      await attackers.shutdown();
      await ct.shutdown();
      await server.close();
    }
  });
});

describe('framework limits over native TCP', { skip: !(await transportAvailable('native')) && 'native transport not built' }, () => {
  const sockets: Socket[] = [];
  after(() => {
    for (const s of sockets) s.destroy();
  });

  it('broadcast skips a peer that never reads once its queue is above the high-water mark', async () => {
    const server = new Server({ quiet: true });
    const transport = await createTransport('native');
    const ep = await server.listen(transport, { host: '127.0.0.1', port: 0 });
    const ct = await createTransport('native');
    const reader = new Client({ transport: ct, host: '127.0.0.1', port: ep.address.port, quiet: true });
    let got = 0;
    reader.directConsole('news', () => void got++);
    try {
      await reader.connect();
      const stalled = netConnect(ep.address.port, '127.0.0.1');
      sockets.push(stalled);
      stalled.pause(); // never reads
      await until(() => server.count === 2, 'both connected');
      const target = [...server.peers()].find((p) => p.info.remotePort === stalled.localPort)!;
      assert.ok(target, 'the stalled socket is a peer');
      const text = 'n'.repeat(64 * 1024);
      let toStalled = 0;
      let sent = 0;
      const rounds = 400; // 25 MiB offered to each peer
      for (let i = 0; i < rounds; i++) {
        sent += server.broadcastConsole('news', text, (p) => {
          if (p === target && !p.backlogged) toStalled++;
          return true;
        });
        if (i % 8 === 7) await sleep(2);
      }
      await until(() => got === sent - toStalled, 'the reader got every broadcast sent to it', 20_000);
      const skipped = server.stats().broadcastSkipped;
      assert.ok(skipped > 0, 'the stalled peer was skipped');
      assert.ok(toStalled < rounds, `${toStalled} of ${rounds} went to the stalled peer`);
      // At most the high-water mark (1 MiB) plus what the kernel buffers took before it.
      assert.ok(toStalled * text.length < 16 * 1024 * 1024, `${toStalled * text.length} bytes queued for the stalled peer`);
      assert.ok(target.connected, 'held back, not closed: nothing passed maxSendQueue');
    } finally {
      await reader.close();
      await server.close();
      await ct.shutdown();
    }
  });

  it('maxConcurrentRequests over native TCP: 1,000 slow requests at once, never more than the cap running, none lost', async () => {
    const server = new Server({ quiet: true, maxConcurrentRequests: 32 });
    let active = 0;
    let maxActive = 0;
    server.console('slow', async (s) => {
      active++;
      maxActive = Math.max(maxActive, active);
      await sleep(2);
      active--;
      return s;
    });
    const transport = await createTransport('native');
    const ep = await server.listen(transport, { host: '127.0.0.1', port: 0 });
    const ct = await createTransport('native');
    const client = new Client({ transport: ct, host: '127.0.0.1', port: ep.address.port, quiet: true });
    try {
      await client.connect();
      const results = await Promise.all(Array.from({ length: 1000 }, (_, i) => client.callConsole('slow', `m${i}`).catch((e: Error) => e)));
      assert.ok(maxActive <= 32, `${maxActive} handlers ran at once`);
      const answered = results.filter((r, i) => r === `m${i}`).length;
      const refused = results.filter((r) => r instanceof LimitError).length;
      // Every call settled: answered, or (over a transport that cannot pause) refused with ZS_LIMIT.
      assert.equal(answered + refused, 1000);
      process.stdout.write(`# native, cap 32: ${answered} answered, ${refused} refused (transport.pause: ${typeof transport.pause === 'function'})\n`);
      if (typeof transport.pause === 'function') assert.equal(answered, 1000, 'a transport that pauses loses nothing');
      assert.ok(server.stats().peersPaused >= 1);
      assert.equal(server.stats().requestsRefused, refused);
    } finally {
      await client.close();
      await server.close();
      await ct.shutdown();
    }
  });

  it('20,000 big streams on one native connection: refused beyond maxBigStreams, server heap bounded', async () => {
    const server = new Server({ quiet: true, maxBigStreams: 300 });
    let started = 0;
    server.bigStream('hold', async () => {
      started++;
      await new Promise(() => {}); // never consumes: the worst case for the receiver
    });
    const transport = await createTransport('native');
    const ep = await server.listen(transport, { host: '127.0.0.1', port: 0 });
    const raw = await createTransport('native');
    try {
      const p = await raw.connect(ep.address);
      const ans = answers(raw);
      const heapBefore = process.memoryUsage().heapUsed;
      const nb = nameBytes('hold');
      for (let id = 1; id <= 20_000; id++) {
        raw.send(p, K.BigBegin, 0, encodeBigBegin(id, nb, 1n << 30n, new DataFrame()));
        if (id % 1000 === 0) await sleep(1);
      }
      await until(() => ans.size === 20_000 - 300, 'refusals', 30_000);
      assert.equal(started, 300);
      assert.ok([...ans.values()].every((c) => c === 'ZS_LIMIT'));
      const heapGrowth = process.memoryUsage().heapUsed - heapBefore;
      assert.ok(heapGrowth < 64 * 1024 * 1024, `heap grew ${heapGrowth} bytes for 300 open streams`);
      raw.close(p, true);
      await until(() => server.count === 0, 'closed');
    } finally {
      await raw.shutdown();
      await server.close();
    }
  });
});
