/**
 * The attacks of issue 13, each bounded in count and in time (at most 15 s of
 * attack at 'full' scale, a few seconds at 'small'), each against the server
 * of bench/attack/server.ts. Every attack returns its offending raw peers
 * (run.ts reads how they were closed) and, where closing is not the point,
 * whether the attacker was held back.
 */
import WebSocket from 'ws';
import { encodeBigBegin, encodeBufferBegin, encodeConsole, encodeIdBytes, nameBytes } from '../../lib/protocol/messages.js';
import { DataFrame } from '../../lib/protocol/dataframe.js';
import type { Attack, AttackContext, AttackOutcome } from './run.js';
import { bombFrame, consoleFrame, frame, frameHead, rawConnect, sleep, WIRE_COMPRESSED, writeWait, type RawPeer } from './wire.js';

const KiB = 1024;
const MiB = 1024 * 1024;

const pick = <T>(ctx: AttackContext, full: T, small: T): T => (ctx.scale === 'full' ? full : small);

/** Opens `n` raw connections, `window` at a time; connections that fail are counted, not thrown. */
async function openMany(ctx: AttackContext, n: number, o: { read: boolean; localAddress?: string; window?: number; deadline: number }): Promise<{ peers: RawPeer[]; failed: number }> {
  const peers: RawPeer[] = [];
  let failed = 0;
  let next = 0;
  const worker = async () => {
    while (next < n && performance.now() < o.deadline && !ctx.gone()) {
      next++;
      try {
        peers.push(await rawConnect({ host: ctx.host, port: ctx.port, read: o.read, localAddress: o.localAddress ?? '127.0.0.1', timeout: 3000 }));
      } catch {
        failed++;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(n, o.window ?? 100) }, worker));
  return { peers, failed };
}

const flushed = (p: RawPeer) => p.socket.bytesWritten - p.socket.writableLength;

/** (a) A client that sends 64 KiB echo requests and never reads the replies. */
const neverReads: Attack = {
  id: 'a',
  title: 'never-reading client, 64 KiB echo requests',
  async run(ctx): Promise<AttackOutcome> {
    const seconds = pick(ctx, 6, 3);
    const peer = await rawConnect({ host: ctx.host, port: ctx.port, read: false });
    const text = 'x'.repeat(64 * KiB);
    const end = performance.now() + seconds * 1000;
    const marks: { t: number; bytes: number }[] = [];
    let id = 1;
    let sent = 0;
    while (performance.now() < end && !ctx.gone() && sent < 200_000) {
      if (!(await writeWait(peer, consoleFrame(id++, 'echo', text), 250))) {
        if (peer.closedHow !== undefined) break;
      } else sent++;
      marks.push({ t: performance.now(), bytes: flushed(peer) });
    }
    // Held back: in the last 1.5 s the server took in less than 2 MiB of our requests.
    const last = marks.at(-1);
    const from = marks.find((m) => last !== undefined && m.t >= last.t - 1500);
    const recent = last && from ? last.bytes - from.bytes : 0;
    return {
      offenders: [peer],
      heldBack: last !== undefined && last.t - marks[0]!.t > 1500 && recent < 2 * MiB,
      note: `${sent} requests, ${(flushed(peer) / MiB).toFixed(0)} MiB taken by the server, ${(recent / MiB).toFixed(1)} MiB in the last 1.5 s`,
    };
  },
};

/** (b) 1000:1 zlib bombs to `echo`, on an endpoint that never enabled compression. */
const zlibBombs: Attack = {
  id: 'b',
  title: '1000:1 zlib bombs to echo (compression not enabled)',
  async run(ctx): Promise<AttackOutcome> {
    const budget = pick(ctx, 1.8 * MiB, 200 * KiB);
    const seconds = pick(ctx, 8, 4);
    const bomb = bombFrame(1, MiB - 64 * KiB);
    const peer = await rawConnect({ host: ctx.host, port: ctx.port, read: true });
    const end = performance.now() + seconds * 1000;
    let sent = 0;
    // Every bomb carries request id 1: a fresh id would mean compressing 1 MiB again per frame, and the server answers each anyway.
    while (sent < budget && performance.now() < end && !ctx.gone()) {
      if (!(await writeWait(peer, bomb, 500)) && peer.closedHow !== undefined) break;
      sent += bomb.length;
    }
    await sleep(500);
    const ratio = (MiB - 64 * KiB) / bomb.length;
    return {
      offenders: [peer],
      note: `${Math.round(sent / KiB)} KiB of bombs (${Math.round(ratio)}:1, ${Math.round(sent / bomb.length)} frames), ${peer.frames.count(18)} replies read`,
    };
  },
};

/** (c) Connections that declare a big frame and then send one byte a second. */
function slowloris(id: string, declared: number, title: string): Attack {
  return {
    id,
    title,
    listen: { frameTimeout: 4000 },
    async run(ctx): Promise<AttackOutcome> {
      const n = pick(ctx, 200, 20);
      const seconds = pick(ctx, 10, 6);
      const deadline = performance.now() + seconds * 1000;
      const { peers, failed } = await openMany(ctx, n, { read: true, deadline });
      for (const p of peers) p.socket.write(frameHead(8, declared));
      // Until the deadline, or until the server has closed every one of them.
      while (performance.now() < deadline && !ctx.gone() && peers.some((p) => p.closedHow === undefined)) {
        await sleep(1000);
        for (const p of peers) if (p.closedHow === undefined) p.socket.write(Buffer.from([0x61]));
      }
      return { offenders: peers, note: `${peers.length} connections (${failed} failed to connect), each declared ${declared} bytes, 1 byte/s for ${seconds} s; server frameTimeout set to 4 s` };
    },
  };
}

/** (d) Many connections that never send anything. */
const idle: Attack = {
  id: 'd',
  title: 'idle connections that never send',
  listen: { idleTimeout: 4000, keepaliveInterval: 1500 },
  async run(ctx): Promise<AttackOutcome> {
    const n = pick(ctx, 2000, 100);
    const seconds = pick(ctx, 10, 7);
    const deadline = performance.now() + seconds * 1000;
    const { peers, failed } = await openMany(ctx, n, { read: true, deadline, window: 200 });
    while (performance.now() < deadline && !ctx.gone() && peers.some((p) => p.closedHow === undefined)) await sleep(250);
    return { offenders: peers, note: `${peers.length} idle connections (${failed} failed), held ${seconds} s at most; server idleTimeout set to 4 s, keepalive 1.5 s` };
  },
};

/** (e) A connection flood from one address, against a per-IP cap of 256. */
const flood: Attack = {
  id: 'e',
  title: 'connection flood from one address (per-IP cap 256)',
  listen: { maxConnectionsPerIp: 256 },
  async run(ctx): Promise<AttackOutcome> {
    const n = pick(ctx, 5000, 600);
    const seconds = pick(ctx, 10, 6);
    const deadline = performance.now() + seconds * 1000;
    const { peers, failed } = await openMany(ctx, n, { read: true, localAddress: '127.0.0.3', deadline, window: 200 });
    await sleep(1000);
    const open = peers.filter((p) => p.closedHow === undefined).length;
    // Held back: at most the cap (and a few in the middle of closing) stay open; the rest were refused.
    return {
      offenders: peers,
      heldBack: open <= 256 + 8 && failed + peers.length >= n,
      note: `${peers.length} connected (${failed} failed to connect), ${open} still open after 1 s`,
    };
  },
};

/** (f) 20,000 open big streams on one connection, and unfinished complete buffers. */
const openStreams: Attack = {
  id: 'f',
  title: '20,000 open big streams + unfinished complete buffers',
  async run(ctx): Promise<AttackOutcome> {
    const streams = pick(ctx, 20_000, 2000);
    const buffers = pick(ctx, 64, 8);
    // 64 × 1.46 MiB stays under today's 128 MiB per-peer ceiling on partial buffers (which closes the peer):
    // what is measured is whether buffers and streams below it are held forever.
    const perBuffer = pick(ctx, 25 * 60 * KiB, 1 * MiB);
    const seconds = pick(ctx, 12, 6);
    const deadline = performance.now() + seconds * 1000;
    const peer = await rawConnect({ host: ctx.host, port: ctx.port, read: true });
    const upload = nameBytes('upload');
    const info = new DataFrame();
    let id = 1;
    for (let i = 0; i < streams && performance.now() < deadline && !ctx.gone(); i++) {
      if (!(await writeWait(peer, frame(14, Buffer.from(encodeBigBegin(id++, upload, 1n << 30n, info))), 1000)) && peer.closedHow !== undefined) break;
    }
    const md5 = nameBytes('md5');
    const chunk = Buffer.alloc(60 * KiB, 7);
    const first = id;
    for (let b = 0; b < buffers && performance.now() < deadline && !ctx.gone(); b++) {
      await writeWait(peer, frame(12, Buffer.from(encodeBufferBegin(id++, 1, md5, 64 * MiB - 1, chunk))), 1000);
    }
    for (let sent = chunk.length; sent < perBuffer && performance.now() < deadline && !ctx.gone() && peer.closedHow === undefined; sent += chunk.length) {
      for (let b = first; b < id; b++) await writeWait(peer, frame(13, Buffer.from(encodeIdBytes(b, chunk))), 1000);
    }
    while (performance.now() < deadline && !ctx.gone() && peer.closedHow === undefined) await sleep(250);
    const credits = peer.frames.count(16);
    const errors = peer.frames.count(19);
    return {
      offenders: [peer],
      heldBack: peer.frames.broken ? undefined : errors > 0 || credits < streams,
      note: `${first - 1} BigBegin sent: ${credits} BigCredit, ${errors} Error answers; ${id - first} buffers of 64 MiB declared, ${(perBuffer / MiB).toFixed(2)} MiB each sent`,
    };
  },
};

/** (g) The 5-byte method-none payload that declares 16 MiB, Compressed flag set. */
const noneBomb: Attack = {
  id: 'g',
  title: "5-byte method 'none' payload declaring 16 MiB",
  async run(ctx): Promise<AttackOutcome> {
    const conns = pick(ctx, 50, 10);
    const seconds = pick(ctx, 6, 3);
    const maxFrames = pick(ctx, 5000, 500);
    const deadline = performance.now() + seconds * 1000;
    const bad = frame(8, Buffer.from([0xa0, 0x80, 0x80, 0x80, 0x08]), WIRE_COMPRESSED);
    const all: RawPeer[] = [];
    let frames = 0;
    const worker = async () => {
      while (performance.now() < deadline && frames < maxFrames && !ctx.gone()) {
        let p: RawPeer;
        try {
          p = await rawConnect({ host: ctx.host, port: ctx.port, read: true, timeout: 2000 });
        } catch {
          await sleep(50);
          continue;
        }
        if (performance.now() >= deadline || frames >= maxFrames) {
          p.socket.destroy(); // connected too late to send anything: not an offender
          return;
        }
        all.push(p);
        // Send it until the server closes this connection (at most 20 times, then give up on it).
        for (let i = 0; i < 20 && p.closedHow === undefined && frames < maxFrames && performance.now() < deadline; i++) {
          p.socket.write(bad);
          frames++;
          await Promise.race([p.closed, sleep(50)]);
        }
        // Not closed yet: give the server a second more, then keep it as an offender that got away.
        if (p.closedHow === undefined) await Promise.race([p.closed, sleep(1000)]);
        if (p.closedHow === undefined) return;
      }
    };
    await Promise.all(Array.from({ length: conns }, worker));
    return { offenders: all, note: `${frames} frames over ${all.length} connections` };
  },
};

/** (h) Command names with escape bytes: is the log escaped and rate-limited? */
const escapes: Attack = {
  id: 'h',
  title: 'command names with escape bytes (log injection)',
  async run(ctx): Promise<AttackOutcome> {
    const n = pick(ctx, 5000, 500);
    const marker = 'FORGED-LINE';
    const evil = Buffer.from(`\x1b[2J\x1b[1;31mpwned\x07\r\nzserver error: ${marker} \x00\x9b`, 'latin1');
    const logBefore = ctx.serverLog().length;
    const peer = await rawConnect({ host: ctx.host, port: ctx.port, read: true });
    for (let i = 0; i < n && !ctx.gone() && peer.closedHow === undefined; i++) {
      const msg = Buffer.from(encodeConsole(-1, evil, 'hi'));
      await writeWait(peer, frame(10, msg), 1000);
      if (i % 50 === 0) await writeWait(peer, frame(8, Buffer.from(encodeConsole(i + 1, evil, 'hi'))), 1000);
    }
    await sleep(1000);
    const log = ctx.serverLog().subarray(logBefore);
    const text = log.toString('latin1');
    const raw = [...text].filter((c) => {
      const code = c.charCodeAt(0);
      return (code < 0x20 && c !== '\n') || code === 0x7f || (code >= 0x80 && code < 0xa0);
    }).length;
    const lines = text.split('\n').filter((l) => l.length > 0);
    const forged = lines.filter((l) => l.startsWith('zserver error: ' + marker)).length;
    const rateLimited = lines.length <= Math.max(100, n / 10);
    const escaped = raw === 0 && forged === 0;
    return {
      offenders: [peer],
      heldBack: rateLimited,
      check: {
        ok: escaped && rateLimited,
        what: `log: ${raw} raw control bytes, ${forged} forged lines, ${lines.length} lines for ${n} unknown direct messages`,
      },
      note: `log ${escaped ? 'escaped' : 'NOT escaped'} (${raw} raw control bytes, ${forged} forged lines); ${lines.length} log lines for ${n} messages (${rateLimited ? 'rate-limited' : 'not rate-limited'})`,
    };
  },
};

/** (i) A WebSocket upgrade with a foreign Origin. */
const foreignOrigin: Attack = {
  id: 'i',
  title: 'WebSocket upgrade with a foreign Origin',
  ws: true,
  async run(ctx): Promise<AttackOutcome> {
    if (ctx.wsPort === 0) return { offenders: [], note: `no WebSocket endpoint: ${ctx.wsError}`, check: { ok: false, what: `no WebSocket endpoint to try (${ctx.wsError})` } };
    const tries = pick(ctx, 20, 5);
    let opened = 0;
    let answered = 0;
    for (let i = 0; i < tries && !ctx.gone(); i++) {
      const ws = new WebSocket(`ws://${ctx.host}:${ctx.wsPort}/zserver`, { origin: 'http://evil.example', handshakeTimeout: 3000 });
      const result = await new Promise<'refused' | 'opened' | 'answered'>((resolve) => {
        const t = setTimeout(() => resolve('opened'), 2000);
        ws.on('open', () => {
          opened++;
          ws.send(consoleFrame(1, 'echo', 'from evil.example'));
        });
        ws.on('message', (d: Buffer) => {
          if (d.length >= 9 && (d[8]! & 63) === 18) {
            clearTimeout(t);
            resolve('answered');
          }
        });
        ws.on('error', () => {
          clearTimeout(t);
          resolve('refused');
        });
        ws.on('close', () => {
          clearTimeout(t);
          resolve('refused');
        });
      });
      if (result === 'answered') answered++;
      ws.terminate();
    }
    return {
      offenders: [],
      check: { ok: answered === 0 && opened === 0, what: `foreign Origin: ${opened}/${tries} upgrades accepted, ${answered} echo calls answered` },
      note: `${opened}/${tries} upgrades with Origin http://evil.example accepted, ${answered} echo calls answered`,
    };
  },
};

/** Every attack, in the order of issue 13's list. */
export const attacks: Attack[] = [
  neverReads,
  zlibBombs,
  slowloris('c', 16 * MiB, '200 connections declaring 16 MiB, 1 byte/s'),
  slowloris('c2', MiB - 64, '200 connections declaring just under 1 MiB, 1 byte/s'),
  idle,
  flood,
  openStreams,
  noneBomb,
  escapes,
  foreignOrigin,
];
