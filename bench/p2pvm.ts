/**
 * bench/p2pvm.ts — P2PVM at scale.
 *
 * (a) Many virtual connections: `--count` (default 1,000,000; 100,000 with --quick) opened by
 *     `--clients` client processes (default 4), one physical connection and one tunnel each, to
 *     one server process; each completes one echo round trip, then all close. Prints the time to
 *     open, round trips/s, the RSS of server and clients, and bytes of state per virtual
 *     connection, with a progress bar. The physical transport is picked by name (`--transport
 *     node-net|native-tcp`, loaded from lib/transport/); `--in-process` runs the same load over
 *     MemoryTransport in one process instead. `--framework` replaces the echo with the command
 *     framework's console command (lib/framework, when built).
 * (b) Throughput of one big stream over one virtual connection against the bare physical
 *     connection (the socket transport, or MemoryTransport with --in-process or when no socket
 *     transport is built), for several fragment sizes.
 *
 *   node --import tsx bench/p2pvm.ts [--quick] [--in-process] [--count N] [--clients N]
 *                                    [--transport node-net] [--framework] [--only a|b]
 */
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { P2pvmHost, P2pvmTunnel, VconnTable } from '../lib/p2pvm/index.js';
import { MemoryNetwork, MemoryTransport } from '../lib/transport/memory.js';
import type { PeerId, Transport } from '../lib/transport/types.js';
import { median, printTable, quick, writeResults } from './_lib.js';
import { ClientLoad, ConsoleLoad, loadFramework, progressBar, serveEcho, serveFrameworkEcho, type FrameworkModule } from './_p2pvm-load.js';
import { memoryPhysical, socketPhysical, streamThroughput } from './_p2pvm-stream.js';

const argv = process.argv.slice(2);
const arg = (name: string, fallback: string) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 && argv[i + 1] !== undefined ? argv[i + 1]! : fallback;
};
const COUNT = Number(arg('count', quick ? '100000' : '1000000'));
const CLIENTS = Number(arg('clients', '4'));
const TRANSPORT = arg('transport', 'node-net');
const ONLY = arg('only', '');
const LISTEN = { host: '::1', port: 7000 };
const TOKEN = 'bench-token';
const mb = (n: number) => Math.round(n / 2 ** 20);

/** Loads a socket transport by name; null (with the reason) when it is not built on this branch. */
async function loadTransport(name: string): Promise<{ make: () => Transport } | { missing: string }> {
  const file = { 'node-net': 'node-net.js', 'native-tcp': 'native-tcp.js' }[name];
  const cls = { 'node-net': 'NodeNetTransport', 'native-tcp': 'NativeTcpTransport' }[name];
  if (!file || !cls) return { missing: `unknown transport "${name}" (node-net or native-tcp)` };
  try {
    const mod = (await import(`../lib/transport/${file}`)) as Record<string, new () => Transport>;
    const C = mod[cls];
    if (typeof C !== 'function') return { missing: `lib/transport/${file} does not export ${cls}` };
    return { make: () => new C() };
  } catch (err) {
    return { missing: `lib/transport/${file} is not built on this branch (${(err as Error).message.split('\n')[0]})` };
  }
}

const FRAMEWORK = argv.includes('--framework');
type Load = ClientLoad;
const makeLoad = (fw: FrameworkModule | null, tunnel: P2pvmTunnel, count: number): Load =>
  fw ? new ConsoleLoad(tunnel, count) : new ClientLoad(tunnel, count);
/**
 * The server's round-trip handler: the framework's console command with --framework, else the raw
 * echo. Returns how many framework peers are online (the vconns count for the raw echo).
 */
async function serve(fw: FrameworkModule | null, host: P2pvmHost): Promise<() => number> {
  if (fw) {
    const server = await serveFrameworkEcho(fw, host, LISTEN);
    return () => server.count;
  }
  serveEcho(host);
  await host.listen(LISTEN);
  return () => host.stats().vconns;
}

// ---- (a) in one process ------------------------------------------------------------------------

async function inProcess(): Promise<Record<string, string | number>[]> {
  const network = new MemoryNetwork();
  const server = new MemoryTransport({ network });
  const at = await server.listen({ host: '127.0.0.1', port: 0 });
  const host = new P2pvmHost(server, { accept: (t) => t.toString() === TOKEN });
  const fw = FRAMEWORK ? await loadFramework() : null;
  await serve(fw, host);
  const loads: Load[] = [];
  const per = Math.ceil(COUNT / CLIENTS);
  for (let c = 0; c < CLIENTS; c++) {
    const t = new MemoryTransport({ network });
    const peer = await t.connect(at);
    const tunnel = await P2pvmTunnel.open(t, peer, { token: TOKEN });
    while (tunnel.remoteListeners().length === 0) await new Promise((r) => setImmediate(r));
    loads.push(makeLoad(fw, tunnel, Math.min(per, COUNT - c * per)));
  }
  global.gc?.();
  const memBefore = process.memoryUsage();
  const sum = (f: (l: Load) => number) => loads.reduce((s, l) => s + f(l), 0);
  const bar = setInterval(() => progressBar('open', sum((l) => l.progress.opened), COUNT), 200);
  let t0 = performance.now();
  await Promise.all(loads.map((l) => l.open(LISTEN)));
  const openMs = performance.now() - t0;
  clearInterval(bar);
  progressBar('open', sum((l) => l.progress.opened), COUNT);
  global.gc?.();
  const memOpen = process.memoryUsage();
  const bar2 = setInterval(() => progressBar('echo', sum((l) => l.progress.echoed), COUNT), 200);
  t0 = performance.now();
  await Promise.all(loads.map((l) => l.roundTrips()));
  const rtMs = performance.now() - t0;
  clearInterval(bar2);
  progressBar('echo', sum((l) => l.progress.echoed), COUNT);
  const peakRss = process.memoryUsage().rss;
  const hostStats = host.stats();
  t0 = performance.now();
  for (const l of loads) l.closeAll();
  while (host.stats().vconns > 0 || loads.some((l) => l.tunnel.stats().vconns > 0)) await new Promise((r) => setTimeout(r, 5));
  const closeMs = performance.now() - t0;
  process.stderr.write('\n');
  const errors = sum((l) => l.progress.errors);
  const live = (m: NodeJS.MemoryUsage) => m.heapUsed + m.external;
  const rows = [
    {
      mode: `in-process, ${CLIENTS} tunnels${fw ? ', framework console' : ''}`,
      vconns: sum((l) => l.progress.opened),
      'open s': openMs / 1000,
      'opens/s': COUNT / (openMs / 1000),
      'round trips/s': COUNT / (rtMs / 1000),
      'close s': closeMs / 1000,
      'RSS MB (both sides)': mb(peakRss),
      'server table B/vconn': hostStats.stateBytes / Math.max(1, hostStats.vconns),
      'slot B': VconnTable.bytesPerSlot,
      'heap+ext B/vconn (both sides)': (live(memOpen) - live(memBefore)) / COUNT,
      errors,
    },
  ];
  printTable(`P2PVM (a): ${COUNT.toLocaleString('en-US')} virtual connections, one echo round trip each`, rows);
  for (const l of loads) await l.tunnel.shutdown();
  await host.shutdown();
  await server.shutdown();
  return rows;
}

// ---- (a) across processes ----------------------------------------------------------------------

interface ChildMessage {
  type: 'ready' | 'progress' | 'phase' | 'rss' | 'error';
  port?: number;
  opened?: number;
  echoed?: number;
  errors?: number;
  phase?: string;
  rss?: number;
  heap?: number;
  peakRss?: number;
  online?: number;
  stateBytes?: number;
  vconns?: number;
  message?: string;
}

async function child(role: string): Promise<void> {
  const loaded = await loadTransport(TRANSPORT);
  if ('missing' in loaded) {
    process.send!({ type: 'error', message: loaded.missing });
    return;
  }
  const transport = loaded.make();
  const send = (m: ChildMessage) => process.send!(m);
  if (role === 'server') {
    const at = await transport.listen({ host: '127.0.0.1', port: 0 });
    const host = new P2pvmHost(transport, { accept: (t) => t.toString() === TOKEN });
    const online = await serve(FRAMEWORK ? await loadFramework() : null, host);
    process.on('message', (m: { type: string }) => {
      if (m.type === 'rss') {
        global.gc?.();
        const s = host.stats();
        send({ type: 'rss', rss: process.memoryUsage().rss, peakRss: process.resourceUsage().maxRSS * 1024, heap: process.memoryUsage().heapUsed, stateBytes: s.stateBytes, vconns: s.vconns, online: online() });
      }
      if (m.type === 'exit') void host.shutdown().then(() => transport.shutdown()).then(() => process.exit(0));
    });
    global.gc?.();
    send({ type: 'ready', port: at.port, heap: process.memoryUsage().heapUsed });
    return;
  }
  const port = Number(arg('port', '0'));
  const count = Number(arg('share', '0'));
  const peer: PeerId = await transport.connect({ host: '127.0.0.1', port });
  const tunnel = await P2pvmTunnel.open(transport, peer, { token: TOKEN });
  while (tunnel.remoteListeners().length === 0) await new Promise((r) => setImmediate(r));
  const load = makeLoad(FRAMEWORK ? await loadFramework() : null, tunnel, count);
  const timer = setInterval(() => send({ type: 'progress', ...load.progress }), 200);
  process.on('message', async (m: { type: string }) => {
    if (m.type === 'open') {
      await load.open(LISTEN);
      send({ type: 'phase', phase: 'opened', ...load.progress });
    } else if (m.type === 'echo') {
      await load.roundTrips();
      send({ type: 'phase', phase: 'echoed', ...load.progress });
    } else if (m.type === 'rss') {
      send({ type: 'rss', rss: process.memoryUsage().rss });
    } else if (m.type === 'close') {
      load.closeAll();
      while (tunnel.stats().vconns > 0) await new Promise((r) => setTimeout(r, 5));
      send({ type: 'phase', phase: 'closed', ...load.progress });
    } else if (m.type === 'exit') {
      clearInterval(timer);
      await tunnel.shutdown();
      await transport.shutdown();
      process.exit(0);
    }
  });
  send({ type: 'ready' });
}

async function multiProcess(): Promise<Record<string, string | number>[] | null> {
  const loaded = await loadTransport(TRANSPORT);
  if ('missing' in loaded) {
    console.log(`socket transport: ${loaded.missing}; running --in-process instead`);
    return null;
  }
  const self = fileURLToPath(import.meta.url);
  const spawn = (args: string[]) => fork(self, [...args, '--transport', TRANSPORT, ...(FRAMEWORK ? ['--framework'] : [])], { execArgv: ['--import', 'tsx', '--expose-gc', '--max-old-space-size=4096'] });
  const next = (p: ReturnType<typeof fork>, type: ChildMessage['type'], phase?: string) =>
    new Promise<ChildMessage>((resolve, reject) => {
      const on = (m: ChildMessage) => {
        if (m.type === 'error') reject(new Error(m.message));
        if (m.type === type && (phase === undefined || m.phase === phase)) {
          p.off('message', on);
          resolve(m);
        }
      };
      p.on('message', on);
    });
  const server = spawn(['--role', 'server']);
  const children = [server];
  try {
    const { port, heap: heapIdle } = await next(server, 'ready');
    const per = Math.ceil(COUNT / CLIENTS);
    const clients = Array.from({ length: CLIENTS }, (_, c) => spawn(['--role', 'client', '--port', String(port), '--share', String(Math.min(per, COUNT - c * per))]));
    children.push(...clients);
    await Promise.all(clients.map((c) => next(c, 'ready')));
    const last = clients.map(() => ({ opened: 0, echoed: 0, errors: 0 }));
    clients.forEach((c, k) => c.on('message', (m: ChildMessage) => m.type === 'progress' && (last[k] = { opened: m.opened!, echoed: m.echoed!, errors: m.errors! })));
    const total = (f: (x: { opened: number; echoed: number }) => number) => last.reduce((s, x) => s + f(x), 0);
    const phase = async (cmd: string, done: string, label: string, f: (x: { opened: number; echoed: number }) => number) => {
      const bar = setInterval(() => progressBar(label, total(f), COUNT), 200);
      const t0 = performance.now();
      const results = await Promise.all(clients.map((c) => (c.send({ type: cmd }), next(c, 'phase', done))));
      clearInterval(bar);
      results.forEach((m, k) => (last[k] = { opened: m.opened!, echoed: m.echoed!, errors: m.errors! }));
      progressBar(label, total(f), COUNT);
      process.stderr.write('\n');
      return performance.now() - t0;
    };
    const openMs = await phase('open', 'opened', 'open', (x) => x.opened);
    const rtMs = await phase('echo', 'echoed', 'echo', (x) => x.echoed);
    server.send({ type: 'rss' });
    const srv = await next(server, 'rss');
    const clientRss = await Promise.all(clients.map((c) => (c.send({ type: 'rss' }), next(c, 'rss'))));
    const closeMs = await phase('close', 'closed', 'close', (x) => x.opened);
    const vconns = total((x) => x.opened);
    const rows = [
      {
        mode: `${CLIENTS} client processes, ${TRANSPORT}${FRAMEWORK ? ', framework console' : ''}`,
        vconns,
        'total s': (openMs + rtMs + closeMs) / 1000,
        'open s': openMs / 1000,
        'opens/s': COUNT / (openMs / 1000),
        'round trips/s': COUNT / (rtMs / 1000),
        'close s': closeMs / 1000,
        'server RSS MB': mb(srv.rss!),
        'server peak RSS MB': mb(srv.peakRss!),
        'server peers online': srv.online!,
        'server heap B/vconn': (srv.heap! - heapIdle!) / Math.max(1, vconns),
        'client RSS MB (median)': mb(median(clientRss.map((m) => m.rss!))),
        'server table B/vconn': srv.stateBytes! / Math.max(1, srv.vconns!),
        errors: last.reduce((s, x) => s + x.errors, 0),
      },
    ];
    printTable(`P2PVM (a): ${COUNT.toLocaleString('en-US')} virtual connections, one ${FRAMEWORK ? 'framework console' : 'echo'} round trip each`, rows);
    return rows;
  } finally {
    for (const c of children) c.send?.({ type: 'exit' });
    await Promise.all(children.map((c) => (c.exitCode !== null ? null : new Promise((r) => { const t = setTimeout(() => c.kill(), 10_000); c.once('exit', () => { clearTimeout(t); r(null); }); }))));
  }
}

// ---- main --------------------------------------------------------------------------------------

const role = arg('role', '');
if (role) {
  await child(role);
} else {
  const results: Record<string, unknown> = {};
  if (ONLY !== 'b') {
    const rows = (!argv.includes('--in-process') && (await multiProcess())) || (await inProcess());
    results.a = rows;
  }
  if (ONLY !== 'a') {
    const loaded = argv.includes('--in-process') ? null : await loadTransport(TRANSPORT);
    const rows = await streamThroughput(loaded && 'make' in loaded ? socketPhysical(TRANSPORT, loaded.make) : memoryPhysical);
    results.b = rows;
  }
  // --only a / --only b write files of their own, so running the two parts one after the other keeps both.
  const name = ONLY === '' ? 'p2pvm' : `p2pvm-${ONLY}`;
  writeResults(name, [...((results.a as unknown[]) ?? []), ...((results.b as unknown[]) ?? [])], { count: COUNT, clients: CLIENTS });
}
