/**
 * `zserver serve ... --workers N`: a supervised group of N worker processes, each a full
 * framework Server with the app (serve.ts run with --group-worker i), all listening on the same
 * ports, shared in one of two ways (#sharing):
 *
 * - 'socket' (the default where the native addon is built): the supervisor opens the listening
 *   sockets itself (NativeTcpTransport.listenSocket), one per place (slot) and port, bound to
 *   the same port with SO_REUSEPORT on Linux so that the kernel spreads new connections over
 *   the slots' queues (elsewhere all slots share one socket). The worker of a slot inherits its
 *   sockets (fd 4, and 5 for the web port) and accepts on them (--listen-fd: native and node-net
 *   endpoints alike). The sockets belong to the supervisor, not to a worker: in a rolling
 *   restart the replacement accepts on the same socket as the worker it replaces, which stops
 *   accepting (Server.drain) and closes only its copy, so no connection waiting in a queue is
 *   ever reset (docs/operations.md, "Rolling restart"). A slot given up closes its sockets, so
 *   the kernel stops choosing them.
 * - 'cluster' (no native addon, Windows, or a Node-based web endpoint, ws or uws, which cannot
 *   accept on an inherited socket): node:cluster workers; the primary accepts and hands out
 *   connections, and gives one a draining worker refuses to another. Native endpoints beside a
 *   Node-based web endpoint bind their own SO_REUSEPORT sockets per worker.
 *
 * Either way each worker is a child with an IPC channel (fork), on which it reports
 * {type: 'listening', port, wsPort}.
 *
 *   supervisor ── fork ──> worker 0  (learns the ports when 0 was asked, unless 'socket' knows them)
 *              ── fork ──> worker 1..N-1 on worker 0's ports
 *              ── spawn ─> nats-server (when no --nats URL was given and the binary exists)
 *
 * Supervision: a worker that exits on its own after it listened is restarted after a backoff
 * (100 ms doubling to 5 s); one that crashes more than --max-restarts times within
 * --restart-window ms is given up (logged), and the group stops with exit code 1 once none is
 * left. A worker that fails before it ever listened (a broken app) stops the group at once.
 * SIGTERM/SIGINT drain every worker (each runs Server.drain() within --drain-deadline) and stop
 * the group; a worker still running 3 s after the deadline is SIGKILLed; every child is reaped.
 * SIGHUP restarts the workers one at a time (rollingRestart()): start the replacement, wait until
 * it listens, then drain the old one.
 */
import { fork, type ChildProcess } from 'node:child_process';
import cluster from 'node:cluster';
import { lookup } from 'node:dns/promises';
import { once } from 'node:events';
import { closeSync } from 'node:fs';
import { createServer, isIP } from 'node:net';
import { transportAvailable } from '../transport/factory.js';
import { answerMetrics } from '../metrics/group.js';
import { startLocalNats, type LocalNats } from './nats-local.js';
import { DEFAULT_DRAIN_DEADLINE, type ServeArgs } from './serve-config.js';

/** What a worker tells the supervisor once its endpoints listen. */
export interface WorkerListening {
  type: 'listening';
  worker: number;
  pid: number;
  port: number;
  wsPort: number | null;
}

/** Hooks of a ServeGroup. */
export interface ServeGroupHooks {
  /**
   * A worker process took place `index` (at start, after a crash, in a rolling restart): for
   * per-worker work over its IPC channel, such as gathering its metrics.
   */
  worker?: (index: number, child: ChildProcess) => void;
}

/** One place in the group: its current process and its recent crashes. */
interface Slot {
  index: number;
  child: ChildProcess | null;
  /** When this slot's worker crashed, ms, within the restart window. */
  crashes: number[];
  givenUp: boolean;
  /** 'socket' sharing: the slot's listening sockets, which every worker of the slot inherits. */
  fds: { tcp: number; ws: number | null } | null;
}

const KILL_GRACE = 3000;

/** How the workers share the ports; see the file comment. */
type Sharing = 'socket' | 'cluster';

/** The descriptors a worker inherits in 'socket' sharing: after stdin, stdout, stderr and the IPC channel. */
const LISTEN_FD = 4;
const WS_LISTEN_FD = 5;

/** A port free on `host` now (bound and released). */
async function freePort(host: string): Promise<number> {
  const srv = createServer().listen(0, host);
  await once(srv, 'listening');
  const port = (srv.address() as { port: number }).port;
  srv.close();
  await once(srv, 'close');
  return port;
}

/** A supervised group of serve workers; see the file comment. */
export class ServeGroup {
  readonly #opts: ServeArgs;
  /** The user's arguments, given again to every worker (the workers parse the same config). */
  readonly #args: string[];
  readonly #slots: Slot[] = [];
  readonly #log: (line: string) => void;
  #sharing: Sharing = 'cluster';
  #nats: LocalNats | undefined;
  #natsUrl: string | undefined;
  #port = 0;
  #wsPort: number | null = null;
  #stopping = false;
  #rolling: Promise<void> | null = null;
  /** Children retiring (drained by a rolling restart or the stop): their exit is not a crash. */
  readonly #retiring = new Set<ChildProcess>();
  #failed = false;
  #stopped: () => void = () => {};
  readonly #done: Promise<void>;
  readonly #hooks: ServeGroupHooks;

  constructor(opts: ServeArgs, args: string[], log: (line: string) => void, hooks: ServeGroupHooks = {}) {
    this.#hooks = hooks;
    this.#opts = opts;
    this.#args = args;
    this.#log = log;
    this.#done = new Promise((resolve) => (this.#stopped = resolve));
  }

  /** The worker processes now running (for stats over their IPC channels). */
  get children(): ChildProcess[] {
    return this.#slots.flatMap((s) => (s.child ? [s.child] : []));
  }

  /** The shared framework port and WebSocket port, once started. */
  get ports(): { port: number; wsPort: number | null } {
    return { port: this.#port, wsPort: this.#wsPort };
  }

  /** How the workers share the ports ('socket' or 'cluster'; see the file comment), once started. */
  get sharing(): Sharing {
    return this.#sharing;
  }

  /** The NATS URL given to the workers (undefined: no bus). */
  get natsUrl(): string | undefined {
    return this.#natsUrl;
  }

  /** Starts the bus (if asked) and the workers; rejects (after stopping what started) when a worker fails to start. */
  async start(): Promise<void> {
    const n = this.#opts.workers ?? 1;
    // One worker has no one to share presence with: a local bus only from two up.
    if (this.#opts.nats === undefined && n > 1) {
      this.#nats = await startLocalNats(this.#log);
      this.#natsUrl = this.#nats?.url;
      if (this.#nats) this.#log(`started a local nats-server at ${this.#natsUrl} for the group's bus`);
    } else this.#natsUrl = this.#opts.nats ?? undefined;
    this.#port = this.#opts.port;
    this.#wsPort = this.#opts.wsPort;
    for (let i = 0; i < n; i++) this.#slots.push({ index: i, child: null, crashes: [], givenUp: false, fds: null });
    this.#sharing = await this.#chooseSharing();
    if (this.#sharing === 'socket') {
      try {
        await this.#openSockets();
      } catch (err) {
        await this.stop();
        throw err;
      }
    }
    if (this.#sharing === 'cluster') {
      // node:cluster shares a listening handle by the port asked for: port 0 in worker 0 and
      // the port it got in worker 1 would be two handles. So pick the ports here first.
      if (this.#port === 0) this.#port = await freePort(this.#opts.host);
      if (this.#wsPort === 0) this.#wsPort = await freePort(this.#opts.host);
    }
    try {
      // The first worker settles the ports (0 picks them); the others share them.
      for (const slot of this.#slots) {
        const { child, ready } = this.#spawn(slot.index);
        slot.child = child;
        this.#hooks.worker?.(slot.index, child);
        const m = await ready;
        // Supervised from the moment it listens: it may crash while the others start.
        this.#supervise(slot, child);
        if (slot.index === 0) {
          this.#port = m.port;
          this.#wsPort = m.wsPort;
        }
      }
    } catch (err) {
      await this.stop();
      throw err;
    }
  }

  /** See the file comment: 'socket' wherever the native addon can open the sockets and every endpoint can take one. */
  async #chooseSharing(): Promise<Sharing> {
    const o = this.#opts;
    const nodeWeb = o.wsPort !== null && (o.wsTransport === 'ws' || o.wsTransport === 'uws');
    if (process.platform === 'win32' || nodeWeb) return 'cluster';
    return (await transportAvailable('native')) ? 'socket' : 'cluster';
  }

  /**
   * 'socket' sharing: opens each slot's listening sockets (the first learns the port when 0 was
   * asked; on Linux the others join it with SO_REUSEPORT, elsewhere every slot gets the first).
   */
  async #openSockets(): Promise<void> {
    for (const slot of this.#slots) await this.#openSlot(slot);
  }

  /** 'socket' sharing: gives `slot` its listening sockets (again, after it was given up). */
  async #openSlot(slot: Slot): Promise<void> {
    const { NativeTcpTransport } = await import('../transport/native-tcp.js');
    const reusePort = process.platform === 'linux';
    const first = this.#slots.find((s) => s.fds !== null);
    if (!reusePort && first !== undefined) {
      slot.fds = first.fds;
      return;
    }
    const host = isIP(this.#opts.host) ? this.#opts.host : (await lookup(this.#opts.host)).address;
    const open = (port: number): { fd: number; port: number } => NativeTcpTransport.listenSocket({ host, port }, { reusePort });
    const tcp = open(this.#port);
    this.#port = tcp.port;
    slot.fds = { tcp: tcp.fd, ws: null };
    if (this.#wsPort !== null) {
      const ws = open(this.#wsPort);
      this.#wsPort = ws.port;
      slot.fds.ws = ws.fd;
    }
  }

  /** Closes the listening sockets of `slots` (each descriptor once; slots may share them). */
  #closeSockets(slots: Slot[]): void {
    const fds = new Set<number>();
    for (const slot of slots) {
      if (slot.fds === null) continue;
      fds.add(slot.fds.tcp);
      if (slot.fds.ws !== null) fds.add(slot.fds.ws);
      slot.fds = null;
    }
    // Off Linux the slots share one socket: it stays while any slot still holds it.
    for (const s of this.#slots) {
      if (s.fds === null) continue;
      fds.delete(s.fds.tcp);
      if (s.fds.ws !== null) fds.delete(s.fds.ws);
    }
    for (const fd of fds) closeSync(fd);
  }

  #workerArgs(index: number): string[] {
    const out = ['serve', ...this.#args, '--group-worker', String(index), '--port', String(this.#port)];
    const fds = this.#slots[index]?.fds ?? null;
    if (fds !== null) {
      out.push('--listen-fd', String(LISTEN_FD));
      if (fds.ws !== null) out.push('--ws-listen-fd', String(WS_LISTEN_FD));
    }
    out.push(...(this.#wsPort === null ? ['--no-web'] : ['--ws-port', String(this.#wsPort)]));
    out.push(...(this.#natsUrl === undefined ? ['--no-nats'] : ['--nats', this.#natsUrl]));
    return out;
  }

  /** Forks worker `index`; `ready` resolves on its 'listening' message, rejects if it exits first. */
  #spawn(index: number): { child: ChildProcess; ready: Promise<WorkerListening> } {
    const args = this.#workerArgs(index);
    let child: ChildProcess;
    if (this.#sharing === 'cluster') {
      cluster.setupPrimary({ exec: process.argv[1]!, args, execArgv: process.execArgv });
      child = cluster.fork().process;
    } else {
      // 'socket': the slot's listening sockets become the child's fds 4 (and 5), after the IPC channel.
      const own = this.#slots[index]?.fds ?? null;
      const fds = own === null ? [] : [own.tcp, ...(own.ws === null ? [] : [own.ws])];
      child = fork(process.argv[1]!, args, { execArgv: process.execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc', ...fds] });
    }
    const ready = new Promise<WorkerListening>((resolve, reject) => {
      const onMessage = (m: unknown): void => {
        if (typeof m === 'object' && m !== null && (m as { type?: unknown }).type === 'listening') {
          child.off('message', onMessage);
          child.off('exit', onExit);
          resolve(m as WorkerListening);
        }
      };
      const onExit = (code: number | null, signal: string | null): void => {
        child.off('message', onMessage);
        reject(new Error(`worker ${index} exited (${signal ?? `code ${code}`}) before it listened; see its error above`));
      };
      child.on('message', onMessage);
      child.once('exit', onExit);
    });
    return { child, ready };
  }

  /** Watches `child` of `slot`: an exit that nobody asked for is a crash, restarted with backoff. */
  #supervise(slot: Slot, child: ChildProcess): void {
    child.once('exit', (code, signal) => {
      if (this.#retiring.delete(child) || this.#stopping) return;
      if (slot.child !== child) return;
      slot.child = null;
      const now = Date.now();
      const window = this.#opts.restartWindow ?? 60_000;
      const max = this.#opts.maxRestarts ?? 5;
      slot.crashes = slot.crashes.filter((t) => now - t < window);
      slot.crashes.push(now);
      this.#log(`worker ${slot.index} (pid ${child.pid}) exited (${signal ?? `code ${code}`}); crash ${slot.crashes.length} within ${window} ms`);
      if (slot.crashes.length > max) {
        slot.givenUp = true;
        // Its sockets close, so the kernel stops queueing connections where nobody accepts.
        this.#closeSockets([slot]);
        this.#log(`giving worker ${slot.index} up: more than ${max} crashes within ${window} ms (--max-restarts, --restart-window)`);
        if (this.#slots.every((s) => s.givenUp)) {
          this.#failed = true;
          this.#log('no worker left: stopping the group');
          void this.stop();
        }
        return;
      }
      const delay = Math.min(5000, 100 * 2 ** (slot.crashes.length - 1));
      this.#log(`restarting worker ${slot.index} in ${delay} ms`);
      setTimeout(() => void this.#restart(slot), delay);
    });
  }

  async #restart(slot: Slot): Promise<void> {
    if (this.#stopping) return;
    const { child, ready } = this.#spawn(slot.index);
    slot.child = child;
    this.#hooks.worker?.(slot.index, child);
    this.#supervise(slot, child);
    try {
      const m = await ready;
      this.#log(`worker ${slot.index} restarted (pid ${m.pid})`);
    } catch {
      // Its exit went through #supervise: counted as a crash there.
    }
  }

  /** Drains `child` (SIGTERM: the worker runs Server.drain()) and resolves once it has exited; SIGKILL past the deadline. */
  async #retire(child: ChildProcess): Promise<void> {
    if (child.exitCode !== null || child.signalCode !== null) return;
    this.#retiring.add(child);
    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    const limit = (this.#opts.drainDeadline ?? DEFAULT_DRAIN_DEADLINE) + KILL_GRACE;
    const timer = setTimeout(() => {
      this.#log(`worker pid ${child.pid} did not exit within ${limit} ms of SIGTERM: SIGKILL`);
      child.kill('SIGKILL');
    }, limit);
    await exited;
    clearTimeout(timer);
  }

  /**
   * Restarts the workers one at a time: for each, start its replacement, wait until it listens
   * on the shared ports, then drain the old one. Calls of clients with reconnect on are not
   * lost (docs/operations.md, "Rolling restart"). A second call while one runs returns it.
   */
  rollingRestart(): Promise<void> {
    this.#rolling ??= (async () => {
      this.#log('rolling restart: one worker at a time');
      for (const slot of this.#slots) {
        if (this.#stopping) break;
        const old = slot.child;
        if (this.#sharing === 'socket' && slot.fds === null) await this.#openSlot(slot); // a slot given up
        const { child, ready } = this.#spawn(slot.index);
        try {
          const m = await ready;
          if (this.#stopping) {
            // stop() began while the replacement started: it drains the old ones, this one here.
            await this.#retire(child);
            break;
          }
          slot.child = child;
          this.#hooks.worker?.(slot.index, child);
          slot.givenUp = false;
          slot.crashes = [];
          this.#supervise(slot, child);
          this.#log(`worker ${slot.index}: replacement pid ${m.pid} listens; draining pid ${old?.pid ?? '(none)'}`);
        } catch (err) {
          this.#log(`rolling restart stopped: ${(err as Error).message}; the old worker ${slot.index} keeps serving`);
          break;
        }
        if (old) await this.#retire(old);
      }
      this.#log('rolling restart done');
    })().finally(() => {
      this.#rolling = null;
    });
    return this.#rolling;
  }

  /** Drains and stops every worker, then the local nats-server; resolves once all are reaped. */
  async stop(): Promise<void> {
    if (this.#stopping) return this.#done;
    this.#stopping = true;
    await Promise.all(this.#slots.map((s) => (s.child ? this.#retire(s.child) : undefined)));
    // Every worker is gone: the sockets close with the group (queued connections are reset).
    this.#closeSockets(this.#slots);
    await this.#nats?.stop();
    this.#stopped();
  }

  /** Resolves to the exit code once the group has stopped: 0, or 1 when workers were given up. */
  async finished(): Promise<number> {
    await this.#done;
    return this.#failed ? 1 : 0;
  }
}

/** Runs `zserver serve ... --workers N` until SIGTERM/SIGINT; SIGHUP rolls the workers; resolves to the exit code. */
export async function runServeGroup(opts: ServeArgs, args: string[]): Promise<number> {
  const log = (line: string): void => void process.stdout.write(`zserver serve: ${line}\n`);
  // Each worker's metrics rows, gathered when one of them is scraped (docs/metrics.md).
  const metrics = answerMetrics();
  const group = new ServeGroup(opts, args, log, { worker: (i, child) => metrics.add(String(i), child) });
  const onStop = (): void => {
    log('draining the group');
    void group.stop();
  };
  const onHup = (): void => void group.rollingRestart();
  process.on('SIGTERM', onStop);
  process.on('SIGINT', onStop);
  process.on('SIGHUP', onHup);
  try {
    await group.start();
  } catch (err) {
    log(`the group did not start: ${(err as Error).message}`);
    return 1;
  }
  const { port, wsPort } = group.ports;
  log(
    `group of ${opts.workers} workers (pids ${group.children.map((c) => c.pid).join(' ')}) on ${opts.host}:${port}` +
      (wsPort === null ? '' : `, WebSocket and web page on :${wsPort}`) +
      `; bus: ${group.natsUrl ?? 'none (presence and broadcast stay per process)'}`,
  );
  log(
    group.sharing === 'socket'
      ? "ports shared through the supervisor's listening sockets, one per worker place (SO_REUSEPORT on Linux), inherited by each place's workers"
      : 'ports shared by node:cluster',
  );
  log('SIGTERM/Ctrl-C drains and stops the group; SIGHUP restarts the workers one at a time');
  const code = await group.finished();
  process.off('SIGTERM', onStop);
  process.off('SIGINT', onStop);
  process.off('SIGHUP', onHup);
  metrics.close();
  log('group stopped');
  return code;
}
