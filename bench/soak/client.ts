/**
 * A client process of bench/soak.ts: its share of the connections, from its
 * own loopback source address, doing the soak's mixed traffic until told to
 * stop, and counting every call.
 *
 * - honest connections: framework Clients (one shared transport) that call
 *   echo, add and md5 at random, each with a timeout, and now and then send a
 *   big stream to 'upload'; they count the server's 'tick' pushes;
 * - churn: a few honest connections a second are closed and opened again;
 * - slow readers: raw sockets that send 32 KiB echo requests and never read;
 * - hostile peers: raw sockets that send garbage bytes, and connect again
 *   after the server closes them.
 *
 * Every call ends in exactly one of: answered (with the right value), wrong
 * (answered with a wrong value), failed with a typed error (a ZsError code;
 * timeouts and closed connections included), or lost (never settled, or
 * failed without a code). IPC: setup in; 'ports' (the source ports of slow
 * and hostile peers, so the parent can match the server's close reasons),
 * 'stats' every 2 s and 'final' after { type: 'stop' } out.
 */
import { randomBytes } from 'node:crypto';
import { Client } from '../../lib/framework/client.js';
import { DataFrame } from '../../lib/protocol/dataframe.js';
import { createTransport, type TransportName } from '../../lib/transport/factory.js';
import { consoleFrame, drop, rawConnect, sleep, type RawPeer } from '../attack/wire.js';

export interface SoakClientSetup {
  index: number;
  transport: Exclude<TransportName, 'memory'>;
  host: string;
  /** Ports of the servers; connection i goes to ports[i % ports.length]. */
  ports: number[];
  localAddress: string;
  honest: number;
  slow: number;
  hostile: number;
  /** Calls per honest connection per minute. */
  callsPerMinute: number;
  /** One honest connection in this many also sends a big stream every bigEveryMs. */
  bigEvery: number;
  bigEveryMs: number;
  bigBytes: number;
  /** Honest connections closed and reopened per second (this process). */
  churnPerSecond: number;
  timeoutMs: number;
}

export interface SoakCounts {
  sent: number;
  answered: number;
  wrong: number;
  /** Failed with a typed error, by code. */
  failed: Record<string, number>;
  /** Failed without a code (counted as lost). */
  untyped: number;
  inFlight: number;
  bigSent: number;
  bigAnswered: number;
  pushes: number;
  connects: number;
  connectFailures: Record<string, number>;
  reconnects: number;
  honestOpen: number;
  slowOpen: number;
  slowSentMiB: number;
  /** Slow readers whose own send buffer is full (1 MiB unsent): the server stopped reading them. */
  slowHeld: number;
  hostileOpen: number;
  hostileConnects: number;
  /** How the slow and hostile peers' sockets closed, seen from here. */
  slowClosed: Record<string, number>;
  hostileClosed: Record<string, number>;
}

export type SoakClientMessage =
  | { type: 'ports'; list: [string, number, 'slow' | 'hostile'][] }
  | { type: 'stats'; counts: SoakCounts }
  | { type: 'final'; counts: SoakCounts }
  | { type: 'failed'; why: string };

const say = (m: SoakClientMessage) => process.send?.(m);

const c: SoakCounts = {
  sent: 0,
  answered: 0,
  wrong: 0,
  failed: {},
  untyped: 0,
  inFlight: 0,
  bigSent: 0,
  bigAnswered: 0,
  pushes: 0,
  connects: 0,
  connectFailures: {},
  reconnects: 0,
  honestOpen: 0,
  slowOpen: 0,
  slowSentMiB: 0,
  slowHeld: 0,
  hostileOpen: 0,
  hostileConnects: 0,
  slowClosed: {},
  hostileClosed: {},
};

const bump = (m: Record<string, number>, k: string) => (m[k] = (m[k] ?? 0) + 1);

async function main(s: SoakClientSetup): Promise<void> {
  const transport = await createTransport(s.transport);
  let stopping = false;
  const clients: (Client | undefined)[] = new Array(s.honest).fill(undefined);

  const open = async (i: number): Promise<void> => {
    const client = new Client({
      transport,
      host: s.host,
      port: s.ports[i % s.ports.length]!,
      localAddress: s.localAddress,
      quiet: true,
      connectTimeout: 10_000,
      requestTimeout: s.timeoutMs,
    });
    client.directConsole('tick', () => void c.pushes++);
    try {
      await client.connect();
      c.connects++;
      clients[i] = client;
    } catch (err) {
      bump(c.connectFailures, (err as { code?: string }).code ?? 'untyped');
      clients[i] = undefined;
    }
  };

  // Connect everything, 200 at a time.
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(200, s.honest) }, async () => {
      while (next < s.honest && !stopping) await open(next++);
    }),
  );

  // One call, counted from send to settle.
  const call = (client: Client): void => {
    const r = Math.random();
    c.sent++;
    c.inFlight++;
    let p: Promise<boolean>;
    if (r < 0.6) {
      const text = `soak ${c.sent}`;
      p = client.callConsole('echo', text, { timeout: s.timeoutMs }).then((v) => v === text);
    } else if (r < 0.9) {
      const a = (Math.random() * 1e6) | 0;
      p = client.call('add', new DataFrame().writeInt32(a).writeInt32(7), { timeout: s.timeoutMs }).then((df) => df.readInt32() === a + 7);
    } else {
      p = client.callBuffer('md5', randomBytes(256), { timeout: s.timeoutMs }).then((d) => d.length === 16);
    }
    settle(p);
  };
  const settle = (p: Promise<boolean>, big = false) => {
    p.then(
      (ok) => {
        if (ok) {
          c.answered++;
          if (big) c.bigAnswered++;
        } else c.wrong++;
      },
      (err: unknown) => {
        const code = (err as { code?: string }).code;
        if (typeof code === 'string' && code.length > 0) bump(c.failed, code);
        else c.untyped++;
      },
    ).finally(() => c.inFlight--);
  };

  // Calls: every 100 ms, each connection calls with the probability that gives callsPerMinute.
  const perTick = s.callsPerMinute / 600;
  const caller = setInterval(() => {
    if (stopping) return;
    for (const client of clients) if (client && client.connected && Math.random() < perTick) call(client);
  }, 100);

  // Big streams: every bigEveryMs, one connection in bigEvery sends bigBytes.
  const bigData = Buffer.alloc(s.bigBytes, 0x5a);
  const bigger = setInterval(() => {
    if (stopping) return;
    for (let i = 0; i < clients.length; i += s.bigEvery) {
      const client = clients[i];
      if (!client || !client.connected) continue;
      c.sent++;
      c.bigSent++;
      c.inFlight++;
      settle(client.sendBigStream('upload', bigData, { timeout: s.timeoutMs }).then((df) => df.readUInt64() === BigInt(s.bigBytes)), true);
    }
  }, s.bigEveryMs);

  // Churn: close a few connections a second and open them again.
  const churner = setInterval(() => {
    if (stopping || s.honest === 0) return;
    for (let k = 0; k < s.churnPerSecond; k++) {
      const i = (Math.random() * s.honest) | 0;
      const old = clients[i];
      clients[i] = undefined;
      c.reconnects++;
      void (old ? old.close().catch(() => undefined) : Promise.resolve()).then(() => (stopping ? undefined : open(i)));
    }
  }, 1000);

  // Slow readers: 32 KiB echo requests every 500 ms while the kernel takes them; never read.
  const slow: RawPeer[] = [];
  const text = 'y'.repeat(32 * 1024);
  for (let i = 0; i < s.slow; i++) {
    try {
      slow.push(await rawConnect({ host: s.host, port: s.ports[i % s.ports.length]!, localAddress: s.localAddress, read: false }));
    } catch (err) {
      bump(c.connectFailures, `slow:${(err as { code?: string }).code ?? 'error'}`);
    }
  }
  say({ type: 'ports', list: slow.map((p) => [s.localAddress, p.localPort, 'slow']) });
  let slowId = 1;
  const slowWriter = setInterval(() => {
    if (stopping) return;
    for (const p of slow) {
      // Our own buffer is bounded too: above 1 MiB unsent, the server is holding us back; wait.
      if (p.closedHow === undefined && p.socket.writableLength < 1024 * 1024) {
        p.socket.write(consoleFrame(slowId++, 'echo', text));
        c.slowSentMiB += 32 / 1024;
      }
    }
  }, 500);

  // Hostile peers: garbage every second; connect again 1 s after being closed.
  const hostile: (RawPeer | undefined)[] = new Array(s.hostile).fill(undefined);
  const hostileOpen = async (i: number) => {
    try {
      const p = await rawConnect({ host: s.host, port: s.ports[i % s.ports.length]!, localAddress: s.localAddress, read: true });
      c.hostileConnects++;
      hostile[i] = p;
      say({ type: 'ports', list: [[s.localAddress, p.localPort, 'hostile']] });
      void p.closed.then((how) => {
        if (how !== 'destroyed') bump(c.hostileClosed, how);
        hostile[i] = undefined;
        if (!stopping) setTimeout(() => void hostileOpen(i), 1000);
      });
    } catch (err) {
      bump(c.connectFailures, `hostile:${(err as { code?: string }).code ?? 'error'}`);
      if (!stopping) setTimeout(() => void hostileOpen(i), 1000);
    }
  };
  for (let i = 0; i < s.hostile; i++) void hostileOpen(i);
  const hostileWriter = setInterval(() => {
    if (stopping) return;
    for (const p of hostile) if (p && p.closedHow === undefined) p.socket.write(randomBytes(64));
  }, 1000);

  const snapshot = (): SoakCounts => {
    c.honestOpen = clients.filter((x) => x?.connected).length;
    c.slowOpen = slow.filter((p) => p.closedHow === undefined && !p.socket.destroyed).length;
    c.slowHeld = slow.filter((p) => p.closedHow === undefined && p.socket.writableLength >= 1024 * 1024).length;
    c.hostileOpen = hostile.filter((p) => p && p.closedHow === undefined).length;
    return structuredClone(c);
  };
  const reporter = setInterval(() => say({ type: 'stats', counts: snapshot() }), 2000);

  process.on('message', (m: { type: string }) => {
    if (m.type !== 'stop' || stopping) return;
    stopping = true;
    for (const t of [caller, bigger, churner, slowWriter, hostileWriter]) clearInterval(t);
    void (async () => {
      // Every call must settle: answered, or failed with its timeout at the latest.
      const until = performance.now() + s.timeoutMs + 5000;
      while (c.inFlight > 0 && performance.now() < until) await sleep(100);
      clearInterval(reporter);
      for (const p of slow) {
        // A slow reader the server closed shows it only on write (we never read): try one.
        if (p.closedHow === undefined) p.socket.write(Buffer.alloc(0));
      }
      await sleep(200);
      for (const p of slow) if (p.closedHow !== undefined) bump(c.slowClosed, p.closedHow);
      say({ type: 'final', counts: snapshot() });
      for (const p of slow) drop(p);
      for (const p of hostile) if (p) drop(p);
      await Promise.all(clients.map((x) => x?.close().catch(() => undefined)));
      await transport.shutdown().catch(() => undefined);
      process.exit(0);
    })();
  });
}

process.once('message', (s: SoakClientSetup) => {
  main(s).catch((err: unknown) => {
    say({ type: 'failed', why: (err as Error).stack ?? String(err) });
    process.exit(1);
  });
});
process.on('disconnect', () => process.exit(0));
