/**
 * The stress runner behind `zserver stress` and bench/stress.ts: starts a
 * group of echo server processes (unless told to use one already running),
 * spreads N connections over several client processes, each with its own
 * loopback source address (127.0.0.2, 127.0.0.3, ...), and walks them through
 * three phases together: connect all, exchange M messages per connection,
 * close all. It draws a progress bar on stderr and returns a report: connect
 * time, messages per second, round-trip percentiles, errors by kind, and the
 * servers' memory before, during (all connected, idle) and after.
 *
 * Mode rpc drives the command framework instead: the servers run a framework
 * Server with the stress app (app.ts, rpc-server.ts), optionally under the
 * secure channel; the clients (the compiled client with --mode rpc, or
 * rpc-client.ts on zserver's Client, which the secure channel and rooms need)
 * make M calls per connection (`stress.ping`, or with call 'stream' the stream
 * command `stress.add`, each answer checked); then one client asks
 * stress.presence and stress.broadcast, and every client reports when the
 * broadcast's tick reached each of its connections. With rooms K, connection
 * g joins room r<g mod K> after connecting, and after the broadcast one client
 * calls stress.roomcast: the tick must reach every member of r0 and no one else. Memory per connection is taken per
 * server process (proc.ts, memoryPerConnection).
 *
 * Every child is forked with an IPC channel; children exit when the channel
 * closes, and the runner kills and reaps them on success, failure, and
 * SIGINT/SIGTERM.
 */
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { randomBytes } from 'node:crypto';
import { cpuMsOf, fdCountOf, memoryPerConnection, rssOf, type ServerGrowth } from './proc.js';
import { addCounts, quantile, HISTOGRAM_BUCKETS, type ClientSetup, type StressCall, type FromChild, type MemorySample, type ServerSetup, type StressMode, type ToChild, type TransportName } from './protocol.js';

/** Settings of one stress run. */
export interface StressOptions {
  /** Connections in all (default 1000). */
  connections?: number;
  /** Messages each connection sends, one after another, each echoed (default 10). */
  messages?: number;
  /** Payload bytes per message (default 64). */
  size?: number;
  /** Client processes (default: enough for at most 15,000 connections each, at least 2). */
  clients?: number;
  /** Server processes to start (default: at most 15,000 connections each, at least 1). Ignored with `target`. */
  serverProcs?: number;
  /** Transport of the started servers (default 'node-net'). */
  transport?: TransportName;
  /** Use a server already running instead: host and one or more ports. */
  target?: { host: string; ports: number[] };
  /** With `target`: process ids of the server processes, whose RSS (/proc/<pid>/status) is then reported. */
  serverPids?: number[];
  /** Connects in flight per client process (default 1000). */
  window?: number;
  /** Give up on the whole run after this long, in ms (default 120,000, plus 0.2 ms per connection, 3 ms with `secure`). */
  timeout?: number;
  /** Draw the progress bar on stderr (default true when stderr is a terminal or this is set). */
  progress?: boolean;
  /**
   * Path of a compiled client program to use instead of the Node client
   * processes (bench/loadgen/stress-client.cc, built by bench/stress.ts). It
   * speaks the same protocol as JSON lines on stdin/stdout.
   */
  clientProgram?: string;
  /**
   * 'echo' (default): frame echo on a transport. 'rpc': framework calls to the stress app
   * (app.ts); started servers then run native TCP, and `messages` is the calls per connection
   * (default 1).
   */
  mode?: StressMode;
  /** rpc mode: connect through the secure channel (Node client processes; started servers get a fresh identity). */
  secure?: boolean;
  /** rpc mode with `secure` and `target`: the server's fingerprint to pin (default: accept any server). */
  pin?: string;
  /** rpc mode: how long to wait for the broadcast's tick to reach every client, in ms (default 30,000). */
  tickTimeout?: number;
  /** rpc mode: each call is 'console' (`stress.ping`, default) or 'stream' (`stress.add`, answer checked). */
  call?: StressCall;
  /** rpc mode: rooms K (default 0: none); connection g joins `r<g mod K>`, then stress.roomcast is timed (Node client processes). */
  rooms?: number;
}

/** How one fan-out (stress.broadcast or stress.roomcast) went. */
export interface FanOutReport {
  /** Peers the server sent the tick to (-1 when the call failed). */
  sent: number;
  /** Connections that got the tick, of those open (and in the room, for a roomcast). */
  ticked: number;
  tickOf: number;
  /** From the call leaving its client to the last tick arriving, in ms (NaN when none arrived). */
  ms: number;
  /** From the call leaving its client to its answer, in ms: the server's send loop is in it. */
  answerMs: number;
}

/** The servers' memory at one point: sums over the server processes. */
export interface MemoryPoint {
  rss: number;
  heapUsed: number;
  external: number;
  peers: number;
}

/** What a stress run measured. */
export interface StressReport {
  connections: number;
  connected: number;
  messagesPerConnection: number;
  clients: number;
  servers: number;
  transport: string;
  /** Wall time until the last connection of the slowest client was open, in ms. */
  connectMs: number;
  messages: number;
  exchangeMs: number;
  messagesPerSecond: number;
  p50us: number;
  p99us: number;
  errors: Record<string, number>;
  /**
   * CPU time (user + system, all threads) the server and client processes spent
   * during the connect phase, in ms; with a busy machine the connect time swings,
   * the CPU per connection much less. Servers count only when the runner knows
   * their process ids.
   */
  connectCpu: { serverMs: number; clientMs: number; serverUsPerConnection: number; clientUsPerConnection: number };
  /** CPU time of the servers and the clients during the exchange phase, in ms. */
  exchangeCpu: { serverMs: number; clientMs: number };
  /** Server memory, when the runner started the servers. */
  memory?: { before: MemoryPoint; during: MemoryPoint; afterExchange: MemoryPoint; after: MemoryPoint; bytesPerIdleConnection: number };
  /**
   * Each server process's RSS (VmRSS, /proc) when listening and with all connections open,
   * and its connections then (its open-peer count, or for --server-pids its growth in open
   * descriptors); bytesPerConnection is the sum of the growths over the sum of the connections.
   */
  perServer?: { servers: ServerGrowth[]; bytesPerConnection: number; perProcess: number[] };
  /** Server CPU (user + system) per connection over connect and exchange, in µs. */
  serverCpuUsPerConnection?: number;
  mode: StressMode;
  secure: boolean;
  /** rpc mode: what stress.presence and stress.broadcast answered, and when the tick arrived. */
  rpc?: {
    /** The online count the server reported (-1 when the call failed). */
    presence: number;
    /** Peers the server sent the tick to (-1 when the call failed). */
    broadcastSent: number;
    /** Connections that got the tick, of those open. */
    ticked: number;
    tickOf: number;
    /** From the broadcast call leaving its client to the last tick arriving, in ms (NaN when none arrived). */
    broadcastMs: number;
    /** From the broadcast call leaving its client to its answer, in ms: the server's send loop is in it. */
    broadcastAnswerMs: number;
    /** With rooms: stress.roomcast to r0 (`sent`: the members of r0 over the group), and the ticks on connections outside r0. */
    roomcast?: FanOutReport & { outside: number };
  };
  /** rpc mode: the call each connection made. */
  call?: StressCall;
  /** rpc mode: rooms K (0: none). */
  rooms?: number;
}

const PER_PROCESS = 15_000;
/** Loopback source addresses the clients share out: 127.0.0.2 to 127.0.0.251. */
const SOURCE_ADDRESSES = 250;

interface Child {
  proc: ChildProcess;
  send(m: ClientSetup | ServerSetup | ToChild): void;
  label: string;
  /** Messages not yet taken by a waiter. */
  inbox: FromChild[];
  /** A phase waiting for a message of one type (or 'unavailable'). */
  waiter: { type: FromChild['type']; resolve: (m: FromChild) => void } | undefined;
  progress: number;
  exited: boolean;
  /** Exited and its output read to the end: nothing more will come. */
  finished: boolean;
}

const workerUrl = (name: string) => new URL(`./${name}${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url);
const workerExecArgv = () => (import.meta.url.endsWith('.ts') ? ['--import', 'tsx'] : []);

/** Runs one stress test; see the file comment. Rejects when a phase fails or the run times out. */
export async function runStress(options: StressOptions = {}): Promise<StressReport> {
  const connections = positive(options.connections ?? 1000, 'connections');
  const messages = nonNegative(options.messages ?? 10, 'messages');
  const size = nonNegative(options.size ?? 64, 'size');
  const clients = positive(options.clients ?? Math.max(2, Math.ceil(connections / PER_PROCESS)), 'clients');
  const mode = options.mode ?? 'echo';
  if (mode !== 'echo' && mode !== 'rpc') throw new RangeError(`mode must be 'echo' or 'rpc', got ${String(mode)}`);
  const secure = options.secure === true;
  if (secure && mode !== 'rpc') throw new RangeError('secure needs mode rpc');
  const rpc = mode === 'rpc';
  const call = options.call ?? 'console';
  if (call !== 'console' && call !== 'stream') throw new RangeError(`call must be 'console' or 'stream', got ${String(call)}`);
  if (call !== 'console' && !rpc) throw new RangeError('call stream needs mode rpc');
  const rooms = options.rooms ?? 0;
  if (!Number.isInteger(rooms) || rooms < 0 || rooms > 10_000) throw new RangeError(`rooms must be an integer from 0 to 10,000, got ${String(rooms)}`);
  if (rooms > 0 && !rpc) throw new RangeError('rooms needs mode rpc');
  // The compiled client makes plain console and stream calls; the secure channel and rooms take the Node client.
  const nodeClient = secure || rooms > 0 || !options.clientProgram;
  const transport = rpc ? 'native' : (options.transport ?? 'node-net');
  if (transport !== 'node-net' && transport !== 'native') {
    throw new RangeError(`transport must be 'node-net' or 'native', got ${String(transport)}`);
  }
  const serverProcs = options.target ? 0 : positive(options.serverProcs ?? Math.max(1, Math.ceil(connections / PER_PROCESS)), 'serverProcs');
  if (Math.ceil(connections / clients) > 19_000) throw new RangeError(`clients must be at least ${Math.ceil(connections / 19_000)} for ${connections} connections (20,000 descriptors per process)`);
  if (clients > SOURCE_ADDRESSES) throw new RangeError(`clients must be at most 250 (one loopback source address each), got ${clients}`);
  const timeout = positive(options.timeout ?? Math.round(120_000 + connections * (secure ? 3 : 0.2)), 'timeout');
  const bar = new ProgressBar(options.progress ?? process.stderr.isTTY === true);
  const children: Child[] = [];
  const stop = () => {
    for (const c of children) if (!c.exited) c.proc.kill('SIGKILL');
  };
  const onSignal = (signal: NodeJS.Signals) => {
    stop();
    bar.clear();
    // Reap the children before dying of the signal, so none is left as a zombie for an init
    // that may not reap (as in some containers); then die of the signal as the user asked.
    const reaped = children.map((c) => (c.exited ? undefined : new Promise((r) => c.proc.once('exit', r))));
    const giveUp = setTimeout(() => process.kill(process.pid, signal), 3000);
    void Promise.all(reaped).then(() => {
      clearTimeout(giveUp);
      process.kill(process.pid, signal);
    });
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  process.once('exit', stop);
  const deadline = setTimeout(() => {
    for (const c of children) c.proc.kill('SIGKILL');
  }, timeout);
  try {
    const attach = (proc: ChildProcess, label: string, send: Child['send']): Child => {
      const child: Child = { proc, send, label, inbox: [], waiter: undefined, progress: 0, exited: false, finished: false };
      const onMessage = (m: FromChild) => {
        if (m.type === 'progress') {
          child.progress = m.done;
          return;
        }
        const w = child.waiter;
        if (w && (m.type === w.type || m.type === 'unavailable')) {
          child.waiter = undefined;
          w.resolve(m);
        } else child.inbox.push(m);
      };
      if (proc.stdout) createInterface({ input: proc.stdout }).on('line', (line) => onMessage(JSON.parse(line) as FromChild));
      else proc.on('message', onMessage);
      proc.on('exit', () => {
        child.exited = true;
      });
      // 'close' comes after the child's stdout was read to the end: a last line
      // it wrote just before exiting ("closed") is delivered first, not lost.
      proc.on('close', (code, signal) => {
        child.exited = true;
        child.finished = true;
        const w = child.waiter;
        child.waiter = undefined;
        w?.resolve({ type: 'unavailable', reason: `${label} exited (${signal ?? code})` });
      });
      children.push(child);
      return child;
    };
    const spawnChild = (name: string, label: string, setup: ClientSetup | ServerSetup): Child => {
      if (setup.role === 'client' && options.clientProgram && !nodeClient) {
        const args = ['--host', setup.host, '--ports', setup.ports.join(','), '--source', setup.sourceAddresses.join(','), '--conns', String(setup.connections),
          '--messages', String(setup.messages), '--size', String(setup.size), '--index', String(setup.index), '--window', String(setup.window), '--mode', mode,
          ...(call === 'stream' ? ['--call', 'stream'] : [])];
        const proc = spawn(options.clientProgram, args, { stdio: ['pipe', 'pipe', 'inherit'] });
        proc.stdin!.on('error', () => undefined); // the child may exit before reading its last command
        return attach(proc, label, (m) => {
          if ('type' in m) proc.stdin!.write(`${m.type}\n`);
        });
      }
      // rpc servers collect garbage before each memory sample, and keep a fixed young generation
      // (V8 grows and shrinks it by tens of MiB with the allocation rate: at 15,000 connections a
      // process that moved single processes' figures between -83 and 890 bytes per connection in
      // one run, and between 717 and 746 with it fixed), so samples compare like with like.
      const execArgv = name === 'rpc-server' ? [...workerExecArgv(), '--expose-gc', '--min-semi-space-size=16', '--max-semi-space-size=16'] : workerExecArgv();
      const proc = fork(workerUrl(name), [], { execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'], serialization: 'advanced' });
      // A child that already exited (a timed-out run kills them) cannot take a message; its exit
      // is reported through 'exit'. Without the callback, Node 24 raises the closed channel as an
      // uncaught error after the run.
      const child = attach(proc, label, (m) => {
        if (proc.connected) proc.send(m, () => undefined);
      });
      child.send(setup);
      return child;
    };
    // The first waiting message of `type` (or 'unavailable'): in rpc mode a client's 'ticked' may
    // come before the 'broadcasted' the runner asked for.
    const next = (c: Child, type: FromChild['type']): Promise<FromChild> => {
      const i = c.inbox.findIndex((m) => m.type === type || m.type === 'unavailable');
      if (i >= 0) return Promise.resolve(c.inbox.splice(i, 1)[0]!);
      if (c.finished) return Promise.resolve({ type: 'unavailable', reason: `${c.label} has exited` });
      return new Promise((resolve) => (c.waiter = { type, resolve }));
    };
    const expect = async <T extends FromChild['type']>(c: Child, type: T): Promise<Extract<FromChild, { type: T }>> => {
      const m = await next(c, type);
      if (m.type === type) return m as Extract<FromChild, { type: T }>;
      throw new Error(m.type === 'unavailable' ? m.reason : `${c.label}: expected '${type}', got '${m.type}'`);
    };
    const send = (c: Child, m: ToChild) => c.send(m);

    // Servers.
    const host = options.target?.host ?? '127.0.0.1';
    let ports = options.target?.ports ?? [];
    let pin = options.pin;
    const servers: Child[] = [];
    if (!options.target) {
      const reusePort = transport === 'native';
      let sharedPort = 0;
      const secureSeed = secure ? randomBytes(32).toString('hex') : undefined;
      for (let i = 0; i < serverProcs; i++) {
        const s = spawnChild(rpc ? 'rpc-server' : 'server', `server ${i}`, { role: 'server', transport, host, port: sharedPort, reusePort, mode, ...(secureSeed ? { secureSeed } : {}) });
        servers.push(s);
        const ready = await expect(s, 'ready');
        if (ready.fingerprint !== undefined) pin = ready.fingerprint;
        if (reusePort) sharedPort = ready.port;
        if (!ports.includes(ready.port)) ports = [...ports, ready.port];
      }
    }
    const pids = options.target ? (options.serverPids ?? []) : [];
    const measured = servers.length > 0 || pids.length > 0;
    const memory = async (): Promise<MemoryPoint> => {
      const point: MemoryPoint = { rss: 0, heapUsed: 0, external: 0, peers: 0 };
      for (const pid of pids) point.rss += rssOf(pid);
      for (const s of servers) {
        send(s, { type: 'memory' });
        const { sample } = await expect(s, 'memory');
        addMemory(point, sample);
      }
      return point;
    };
    /** RSS and descriptors of each pid, with the online count of the servers we started. */
    const perProcess = async (list: number[]) => {
      const peers = new Map<number, number>();
      for (const s of servers) {
        send(s, { type: 'memory' });
        peers.set(s.proc.pid!, (await expect(s, 'memory')).sample.peers);
      }
      return list.map((pid) => ({ rss: rssOf(pid), fds: fdCountOf(pid), peers: peers.get(pid) }));
    };
    /**
     * Samples until every process's RSS holds still (two samples 500 ms apart within 1 MiB),
     * at most 10 s: a process that just started keeps giving back its start-up memory for
     * seconds (V8's memory reducer), so a sample taken at once made the last-started servers
     * look bigger listening than connected (-1,539 bytes per connection in a 200,000 run).
     */
    const settled = async (list: number[]) => {
      let sample = await perProcess(list);
      for (const end = Date.now() + 10_000; Date.now() < end; ) {
        await sleep(500);
        const again = await perProcess(list);
        const still = again.every((a, i) => Math.abs(a.rss - sample[i]!.rss) <= 2 ** 20);
        sample = again;
        if (still) break;
      }
      return sample;
    };
    // Per-process samples (rpc mode): RSS from /proc, connections from the peer count (our
    // servers) or the growth in open descriptors (--server-pids).
    const growthPids = [...servers.map((s) => s.proc.pid!), ...pids];
    const listening = rpc ? await settled(growthPids) : [];
    const before = measured ? await memory() : undefined;

    // Clients.
    const share = (i: number) => Math.floor(connections / clients) + (i < connections % clients ? 1 : 0);
    // Client i binds 127.0.0.(2+i); a compiled client also spreads over its share of 127.0.0.2-251.
    const block = Math.floor(SOURCE_ADDRESSES / clients);
    const clientProcs = Array.from({ length: clients }, (_, i) =>
      spawnChild(rpc && nodeClient ? 'rpc-client' : 'client', `client ${i}`, {
        role: 'client',
        index: i,
        host,
        ports,
        sourceAddress: `127.0.0.${2 + i}`,
        sourceAddresses: Array.from({ length: block }, (_, j) => `127.0.0.${2 + i + j * clients}`),
        connections: share(i),
        offset: Array.from({ length: i }, (_, j) => share(j)).reduce((a, b) => a + b, 0),
        messages,
        size,
        // Secure: at most 64 handshakes in flight per client process, well under a server's
        // maxHandshakes (256 by default, docs/limits.md) even against a serve group.
        window: options.window ?? (secure ? 64 : options.clientProgram ? 2000 : 1000),
        connectTimeout: 10_000,
        mode,
        ...(rpc ? { call, rooms } : {}),
        ...(secure ? { secure: pin === undefined ? {} : { pin } } : {}),
      }),
    );
    await Promise.all(clientProcs.map((c) => expect(c, 'ready')));

    const errors: Record<string, number> = {};
    const progress = (phase: string, total: number) => {
      const timer = setInterval(() => bar.draw(phase, clientProcs.reduce((a, c) => a + c.progress, 0), total), 100);
      return () => clearInterval(timer);
    };

    const serverPids = [...pids, ...servers.map((s) => s.proc.pid!)];
    const clientPids = clientProcs.map((c) => c.proc.pid!);
    const cpuBefore = [cpuMsOf(serverPids), cpuMsOf(clientPids)] as const;
    let stopBar = progress('connect', connections);
    clientProcs.forEach((c) => send(c, { type: 'connect' }));
    const connectedReports = await Promise.all(clientProcs.map((c) => expect(c, 'connected')));
    const serverCpuMs = cpuMsOf(serverPids) - cpuBefore[0];
    const clientCpuMs = cpuMsOf(clientPids) - cpuBefore[1];
    stopBar();
    const connected = connectedReports.reduce((a, r) => a + r.ok, 0);
    bar.draw('connect', connected, connections);
    bar.done();
    for (const r of connectedReports) addCounts(errors, r.errors);
    const connectMs = Math.max(...connectedReports.map((r) => r.ms));

    await sleep(500); // let the servers settle before sampling idle memory
    let during = measured ? await memory() : undefined;
    // Every connection the clients saw open must also be open in the servers (accepted, and
    // through the handshake) before the "all connected" sample; wait a little if not.
    for (const end = Date.now() + 5000; rpc && during && servers.length > 0 && during.peers < connected && Date.now() < end; ) {
      await sleep(200);
      during = await memory();
    }
    const connectedSample = rpc ? await settled(growthPids) : [];

    clientProcs.forEach((c) => (c.progress = 0));
    stopBar = progress('exchange', connected * messages);
    const exchangeCpuBefore = [cpuMsOf(serverPids), cpuMsOf(clientPids)] as const;
    const t0 = performance.now();
    clientProcs.forEach((c) => send(c, { type: 'exchange' }));
    const exchanged = await Promise.all(clientProcs.map((c) => expect(c, 'exchanged')));
    const exchangeMs = performance.now() - t0;
    const exchangeCpu = { serverMs: cpuMsOf(serverPids) - exchangeCpuBefore[0], clientMs: cpuMsOf(clientPids) - exchangeCpuBefore[1] };
    stopBar();
    const total = exchanged.reduce((a, r) => a + r.messages, 0);
    bar.draw('exchange', total, connected * messages);
    bar.done();
    const histogram = new Array<number>(HISTOGRAM_BUCKETS).fill(0);
    for (const r of exchanged) {
      r.histogram.forEach((v, i) => (histogram[i]! += v));
      addCounts(errors, r.errors);
    }
    if (total < connected * messages) errors['missing-replies'] = connected * messages - total;
    const afterExchange = measured ? await memory() : undefined;

    let rpcReport: StressReport['rpc'];
    if (rpc) {
      const asker = clientProcs[0]!;
      send(asker, { type: 'presence' });
      const presence = await expect(asker, 'presence');
      if (presence.error !== undefined) errors['presence-failed'] = 1;
      /** One fan-out: `step` ('broadcast' or 'roomcast') through the asker, then every client's ticks. */
      const fanOut = async (step: 'broadcast' | 'roomcast') => {
        clientProcs.forEach((c) => (c.progress = 0));
        send(asker, { type: step });
        const sent = await expect(asker, 'broadcasted');
        if (sent.error !== undefined) errors[`${step}-failed`] = 1;
        // Clients report their ticks when each of their connections (in r0, for a roomcast) has
        // one. Stop waiting sooner once the ticks counted (progress) reach what the server sent,
        // since a server that reaches only its own process's peers leaves the others waiting for nothing.
        const tickTimeout = options.tickTimeout ?? 30_000;
        const tickEnd = Date.now() + tickTimeout;
        const allTicked = Promise.all(clientProcs.map((c) => expect(c, 'ticked')));
        let reported = false;
        void allTicked.then(() => (reported = true), () => (reported = true));
        stopBar = progress(step, Math.max(0, sent.reached));
        while (!reported && Date.now() < tickEnd && !(sent.reached >= 0 && clientProcs.reduce((a, c) => a + c.progress, 0) >= sent.reached)) await sleep(100);
        stopBar();
        bar.done();
        if (!reported) clientProcs.forEach((c) => send(c, { type: 'tick-report' }));
        const ticked = await allTicked;
        const got = ticked.reduce((a, t) => a + t.got, 0);
        const of = ticked.reduce((a, t) => a + t.of, 0);
        if (got < of) errors[`${step}-missed`] = of - got;
        const outside = ticked.reduce((a, t) => a + (t.outside ?? 0), 0);
        const lastAt = Math.max(...ticked.filter((t) => t.got > 0).map((t) => t.lastAt));
        const report: FanOutReport = { sent: sent.reached, ticked: got, tickOf: of, ms: got > 0 ? lastAt - sent.sentAt : NaN, answerMs: sent.answeredAt - sent.sentAt };
        return { report, outside };
      };
      const { report: b } = await fanOut('broadcast');
      rpcReport = { presence: presence.online, broadcastSent: b.sent, ticked: b.ticked, tickOf: b.tickOf, broadcastMs: b.ms, broadcastAnswerMs: b.answerMs };
      if (rooms > 0) {
        // The app paces stress.roomcast on its own clock (broadcastInterval), so it may follow the broadcast at once.
        clientProcs.forEach((c) => send(c, { type: 'tick-round' }));
        const { report: r, outside } = await fanOut('roomcast');
        if (outside > 0) errors['tick-outside-room'] = outside;
        rpcReport.roomcast = { ...r, outside };
      }
    }

    clientProcs.forEach((c) => send(c, { type: 'close' }));
    await Promise.all(clientProcs.map((c) => expect(c, 'closed')));
    let after: MemoryPoint | undefined;
    if (measured) {
      const end = Date.now() + 5000;
      do {
        await sleep(200);
        after = await memory();
      } while (after.peers > 0 && Date.now() < end);
    }
    const report: StressReport = {
      connections,
      connected,
      messagesPerConnection: messages,
      clients,
      servers: servers.length,
      transport: options.target ? 'external' : transport,
      connectMs,
      messages: total,
      exchangeMs,
      messagesPerSecond: (total * 1000) / exchangeMs,
      p50us: quantile(histogram, 0.5),
      p99us: quantile(histogram, 0.99),
      errors,
      connectCpu: {
        serverMs: serverCpuMs,
        clientMs: clientCpuMs,
        serverUsPerConnection: (serverCpuMs * 1000) / Math.max(1, connected),
        clientUsPerConnection: (clientCpuMs * 1000) / Math.max(1, connected),
      },
      exchangeCpu,
      mode,
      secure,
      ...(rpc ? { call, rooms } : {}),
    };
    if (rpcReport) report.rpc = rpcReport;
    if (rpc && growthPids.length > 0) {
      const grown: ServerGrowth[] = growthPids.map((pid, i) => ({
        pid,
        listeningRss: listening[i]!.rss,
        connectedRss: connectedSample[i]!.rss,
        connections: i < servers.length ? (connectedSample[i]!.peers ?? 0) : connectedSample[i]!.fds - listening[i]!.fds,
      }));
      report.perServer = { servers: grown, ...memoryPerConnection(grown) };
      report.serverCpuUsPerConnection = ((serverCpuMs + exchangeCpu.serverMs) * 1000) / Math.max(1, connected);
    }
    if (before && during && afterExchange && after) {
      report.memory = { before, during, afterExchange, after, bytesPerIdleConnection: (during.rss - before.rss) / Math.max(1, connected) };
    }
    for (const s of servers) send(s, { type: 'close' });
    await Promise.all(children.map((c) => (c.exited ? undefined : new Promise((r) => c.proc.once('exit', r)))));
    return report;
  } finally {
    clearTimeout(deadline);
    stop();
    await Promise.all(children.map((c) => (c.exited ? undefined : new Promise((r) => c.proc.once('exit', r)))));
    bar.clear();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    process.off('exit', stop);
  }
}

function addMemory(into: MemoryPoint, s: MemorySample): void {
  into.rss += s.rss;
  into.heapUsed += s.heapUsed;
  into.external += s.external;
  into.peers += s.peers;
}

function positive(v: number, name: string): number {
  if (!Number.isInteger(v) || v < 1) throw new RangeError(`${name} must be a positive integer, got ${String(v)}`);
  return v;
}

function nonNegative(v: number, name: string): number {
  if (!Number.isInteger(v) || v < 0 || v > 65535) throw new RangeError(`${name} must be an integer from 0 to 65535, got ${String(v)}`);
  return v;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A one-line progress bar on stderr, redrawn in place. */
class ProgressBar {
  #drawn = false;
  constructor(readonly enabled: boolean) {}

  draw(phase: string, done: number, total: number): void {
    if (!this.enabled) return;
    const width = 30;
    const frac = total > 0 ? Math.min(1, done / total) : 1;
    const filled = Math.round(frac * width);
    process.stderr.write(`\r${phase.padEnd(9)} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done.toLocaleString('en-US')}/${total.toLocaleString('en-US')}  `);
    this.#drawn = true;
  }

  done(): void {
    if (this.enabled && this.#drawn) process.stderr.write('\n');
    this.#drawn = false;
  }

  clear(): void {
    if (this.enabled && this.#drawn) process.stderr.write('\n');
    this.#drawn = false;
  }
}
