/**
 * Cross-process room fan-out: messages delivered per second to N peers in one room, spread over
 * 4 server processes, zserver (Server + cluster on NATS, native TCP) against socket.io with its
 * Redis adapter (@socket.io/redis-adapter on Debian's redis-server), in the same run.
 *
 *   node --import tsx bench/rooms.ts            20,000 peers, 200 messages
 *   node --import tsx bench/rooms.ts --quick    2,000 peers, 50 messages (checks that it works)
 *   options: --peers N --messages M --procs P --size BYTES
 *
 * Each side: P server processes (every peer joins room "bench" on connect) and P client
 * processes holding N/P connections each (framework Clients / socket.io-client sockets: both decode each message and call a handler), spread over the servers and over loopback source
 * addresses 127.0.0.2-127.0.0.201 (so no process needs more than N/P + a few descriptors).
 * Server process 0 sends M messages to the room; the time runs from that command until every
 * client process has counted all N*M messages (or 300 s; 60 s with --quick). zserver: one NATS message per room
 * message reaches each other process, which fans it out to its members with one encode. socket.io:
 * the Redis adapter publishes each emit once; every other process encodes and writes it per socket.
 *
 * Needs nats-server and redis-server (Debian: `apt-get install -y nats-server redis-server`).
 */
import { fork, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createServer as createHttpServer } from 'node:http';
import { createServer as createNetServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { formatNumber, printTable, quick, writeResults } from './_lib.js';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

const PEERS = arg('peers', quick ? 2000 : 20_000);
const MESSAGES = arg('messages', quick ? 50 : 200);
const PROCS = arg('procs', 4);
const SIZE = arg('size', 32);
const ROOM = 'bench';
// Long enough for the slower side to deliver everything at the full size on 2 cores.
const DEADLINE_MS = quick ? 60_000 : 300_000;

type Msg = Record<string, unknown> & { op: string };

const send = (m: Msg): void => void process.send!(m);

function nextMessage(child: ChildProcess, op: string, ms = 120_000): Promise<Msg> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => done(new Error(`no '${op}' from child within ${ms} ms`)), ms);
    const onMsg = (m: Msg): void => {
      if (m.op === op) done(undefined, m);
    };
    const onExit = (code: number | null): void => done(new Error(`child exited (${code}) before '${op}'`));
    function done(err?: Error, m?: Msg): void {
      clearTimeout(timer);
      child.off('message', onMsg);
      child.off('exit', onExit);
      if (err) reject(err);
      else resolve(m!);
    }
    child.on('message', onMsg);
    child.once('exit', onExit);
  });
}

// ---------------------------------------------------------------- children

async function zsServer(natsUrl: string, index: number): Promise<void> {
  const { Server } = await import('../lib/framework/server.js');
  const { createTransport } = await import('../lib/transport/factory.js');
  const server = new Server({ quiet: true });
  await server.useCluster({ nats: natsUrl, node: `bench-${index}`, group: 'rooms-bench' });
  server.on('connect', (peer) => peer.join(ROOM));
  const ep = await server.listen(await createTransport('native'), { host: '127.0.0.1', port: 0 });
  await server.cluster.flush();
  send({ op: 'ready', port: ep.address.port });
  process.on('message', (m: Msg) => {
    if (m.op === 'count') send({ op: 'count', count: server.room(ROOM).count });
    else if (m.op === 'publish') {
      const text = 'x'.repeat(SIZE);
      for (let i = 0; i < MESSAGES; i++) server.room(ROOM).sendConsole('m', text);
      send({ op: 'published' });
    } else if (m.op === 'stats') send({ op: 'stats', stats: server.cluster.stats(), skipped: server.stats().broadcastSkipped });
  });
}

async function zsClient(ports: number[], count: number, index: number): Promise<void> {
  const { createTransport } = await import('../lib/transport/factory.js');
  const { Client } = await import('../lib/framework/client.js');
  // One native transport shared by every Client of this process; each Client decodes the
  // message and calls its handler, as an application would (socket.io's clients do the same).
  const t = await createTransport('native');
  let received = 0;
  let expected = Infinity;
  let waiter: (() => void) | null = null;
  await connectAll(count, index, (i, localAddress) => {
    const client = new Client({ transport: t, host: '127.0.0.1', port: ports[i % ports.length]!, localAddress, quiet: true, connectTimeout: 30_000 });
    client.directConsole('m', () => {
      received++;
      if (received >= expected && waiter) waiter();
    });
    return client.connect();
  });
  send({ op: 'ready' });
  process.on('message', (m: Msg) => {
    if (m.op === 'expect') waitFor(m, () => received, (e, w) => ((expected = e), (waiter = w)));
  });
}

async function ioServer(redisUrl: string): Promise<void> {
  const { Server } = await import('socket.io');
  const { createAdapter } = await import('@socket.io/redis-adapter');
  const { createClient } = await import('redis');
  // The publisher's event loop is busy writing to its own sockets for seconds at the full size;
  // the client's 5 s default command timeout would fail the PUBLISHes queued meanwhile.
  const pub = createClient({ url: redisUrl, commandOptions: { timeout: DEADLINE_MS } } as never);
  const sub = pub.duplicate();
  await Promise.all([pub.connect(), sub.connect()]);
  const http = createHttpServer();
  const io = new Server(http, { transports: ['websocket'], adapter: createAdapter(pub, sub) });
  io.on('connection', (socket) => void socket.join(ROOM));
  http.listen(0, '127.0.0.1');
  await once(http, 'listening');
  send({ op: 'ready', port: (http.address() as { port: number }).port });
  process.on('message', (m: Msg) => {
    if (m.op === 'count') send({ op: 'count', count: io.of('/').adapter.rooms.get(ROOM)?.size ?? 0 });
    else if (m.op === 'publish') {
      const text = 'x'.repeat(SIZE);
      for (let i = 0; i < MESSAGES; i++) io.to(ROOM).emit('m', text);
      send({ op: 'published' });
    } else if (m.op === 'stats') send({ op: 'stats' });
  });
}

async function ioClient(ports: number[], count: number, index: number): Promise<void> {
  const { io } = await import('socket.io-client');
  let received = 0;
  let expected = Infinity;
  let waiter: (() => void) | null = null;
  await connectAll(count, index, (i, localAddress) => {
    const socket = io(`ws://127.0.0.1:${ports[i % ports.length]}`, { transports: ['websocket'], forceNew: true, reconnection: false, localAddress } as never);
    socket.on('m', () => {
      received++;
      if (received >= expected && waiter) waiter();
    });
    return new Promise<void>((resolve, reject) => {
      socket.once('connect', () => resolve());
      socket.once('connect_error', reject);
    });
  });
  send({ op: 'ready' });
  process.on('message', (m: Msg) => {
    if (m.op === 'expect') waitFor(m, () => received, (e, w) => ((expected = e), (waiter = w)));
  });
}

/** Opens `count` connections, 200 at a time, from source addresses 127.0.0.2-127.0.0.201. */
async function connectAll(count: number, index: number, open: (i: number, localAddress: string) => Promise<unknown>): Promise<void> {
  for (let at = 0; at < count; at += 200) {
    const batch: Promise<unknown>[] = [];
    for (let i = at; i < Math.min(count, at + 200); i++) batch.push(open(i, `127.0.0.${2 + ((i + index * 50) % 200)}`));
    await Promise.all(batch);
  }
}

/** Answers 'expect' once `total` messages were counted (or at the deadline, with what came). */
function waitFor(m: Msg, received: () => number, arm: (expected: number, waiter: () => void) => void): void {
  const total = Number(m.total);
  let finished = false;
  const finish = (): void => {
    if (finished) return;
    finished = true;
    clearTimeout(timer);
    send({ op: 'done', at: Date.now(), received: received() });
  };
  const timer = setTimeout(finish, DEADLINE_MS);
  arm(total, finish);
  if (received() >= total) finish();
}

// ---------------------------------------------------------------- parent

const children = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of children) c.kill('SIGKILL');
});

function child(role: string, args: (string | number)[]): ChildProcess {
  const c = fork(fileURLToPath(import.meta.url), ['--role', role, ...args.map(String), ...process.argv.slice(2)], {
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  children.add(c);
  c.once('exit', () => children.delete(c));
  return c;
}

async function stop(c: ChildProcess): Promise<void> {
  if (c.exitCode !== null || c.signalCode !== null) return;
  const exited = once(c, 'exit');
  c.kill('SIGKILL');
  await exited;
}

async function freePort(): Promise<number> {
  const s = createNetServer();
  s.listen(0, '127.0.0.1');
  await once(s, 'listening');
  const port = (s.address() as { port: number }).port;
  s.close();
  await once(s, 'close');
  return port;
}

function need(bin: string, pkg: string): void {
  const r = spawnSync(bin, ['--version'], { encoding: 'utf8' });
  if (r.error || r.status !== 0) {
    console.error(`bench/rooms: ${bin} is not installed: run \`apt-get install -y ${pkg}\` (Debian/Ubuntu)`);
    process.exit(2);
  }
}

/** Starts `bin args` and resolves once its output matches `ready`. */
async function daemon(bin: string, args: string[], ready: RegExp): Promise<ChildProcess> {
  const c = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(c);
  c.once('exit', () => children.delete(c));
  let log = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${bin} did not start:\n${log}`)), 10_000);
    const on = (d: Buffer): void => {
      log += d.toString();
      if (ready.test(log)) {
        clearTimeout(timer);
        resolve();
      }
    };
    c.stdout!.on('data', on);
    c.stderr!.on('data', on);
  });
  return c;
}

interface Result {
  stack: string;
  peers: number;
  messages: number;
  delivered: number;
  seconds: number;
  perSecond: number;
  connectSeconds: number;
}

async function side(stack: 'zserver' | 'socket.io', busUrl: string): Promise<Result> {
  const serverRole = stack === 'zserver' ? 'zs-server' : 'io-server';
  const clientRole = stack === 'zserver' ? 'zs-client' : 'io-client';
  const servers = Array.from({ length: PROCS }, (_, i) => child(serverRole, [busUrl, i]));
  const clients: ChildProcess[] = [];
  try {
    const ports = (await Promise.all(servers.map((s) => nextMessage(s, 'ready')))).map((m) => Number(m.port));
    const t0 = Date.now();
    for (let i = 0; i < PROCS; i++) {
      const share = Math.floor(PEERS / PROCS) + (i < PEERS % PROCS ? 1 : 0);
      clients.push(child(clientRole, [ports.join(','), share, i]));
    }
    await Promise.all(clients.map((c) => nextMessage(c, 'ready', 300_000)));
    // Every server has seen its peers join.
    for (;;) {
      const counts = await Promise.all(servers.map((s) => (s.send({ op: 'count' }), nextMessage(s, 'count'))));
      if (counts.reduce((a, m) => a + Number(m.count), 0) >= PEERS) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    const connectSeconds = (Date.now() - t0) / 1000;
    const dones = clients.map((c, i) => {
      const share = Math.floor(PEERS / PROCS) + (i < PEERS % PROCS ? 1 : 0);
      const p = nextMessage(c, 'done', DEADLINE_MS + 10_000);
      c.send({ op: 'expect', total: share * MESSAGES });
      return p;
    });
    const start = Date.now();
    servers[0]!.send({ op: 'publish' });
    const results = await Promise.all(dones);
    const end = Math.max(...results.map((m) => Number(m.at)));
    const delivered = results.reduce((a, m) => a + Number(m.received), 0);
    const seconds = (end - start) / 1000;
    return { stack, peers: PEERS, messages: MESSAGES, delivered, seconds, perSecond: delivered / seconds, connectSeconds };
  } finally {
    await Promise.all([...clients, ...servers].map(stop));
  }
}

async function main(): Promise<void> {
  need('nats-server', 'nats-server');
  need('redis-server', 'redis-server');
  const natsPort = await freePort();
  const redisPort = await freePort();
  const nats = await daemon('nats-server', ['-a', '127.0.0.1', '-p', String(natsPort)], /Server is ready/);
  const redis = await daemon('redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], /Ready to accept connections/);
  try {
    console.log(`bench/rooms: ${PEERS} peers in one room over ${PROCS} server processes, ${MESSAGES} messages of ${SIZE} bytes`);
    const zs = await side('zserver', `nats://127.0.0.1:${natsPort}`);
    const io = await side('socket.io', `redis://127.0.0.1:${redisPort}`);
    const rows = [zs, io].map((r) => ({
      stack: r.stack,
      peers: String(r.peers),
      messages: String(r.messages),
      'delivered': `${r.delivered}/${r.peers * r.messages}`,
      'seconds': r.seconds.toFixed(2),
      'delivered/s': formatNumber(r.perSecond),
      'connect s': r.connectSeconds.toFixed(1),
    }));
    printTable('room fan-out across processes (messages delivered per second at the clients)', rows);
    const ratio = zs.perSecond / io.perSecond;
    console.log(`zserver / socket.io+redis: ${ratio.toFixed(1)}x`);
    writeResults('rooms', [zs, io], { ratio, procs: PROCS, size: SIZE });
  } finally {
    await Promise.all([nats, redis].map(stop));
  }
}

const role = process.argv.indexOf('--role');
if (role < 0) {
  await main();
} else {
  const [r, a, b, c] = process.argv.slice(role + 1);
  if (r === 'zs-server') await zsServer(a!, Number(b));
  else if (r === 'io-server') await ioServer(a!);
  else {
    const ports = a!.split(',').map(Number);
    if (r === 'zs-client') await zsClient(ports, Number(b), Number(c));
    else await ioClient(ports, Number(b), Number(c));
  }
  process.on('disconnect', () => process.exit(0));
}
