/**
 * The load logic of bench/p2pvm.ts part (a), shared by the in-process mode
 * and the client/server child processes: open many virtual connections over
 * one tunnel with a bounded number of connects in flight, do one echo round
 * trip on each, then close them all. The echo is a frame of kind 8 with an
 * 8-byte payload, sent back unchanged by the server (the framework's console
 * command replaces it with --framework once the framework is merged).
 */
import type { P2pvmEndpoint } from '../lib/p2pvm/index.js';
import type { Endpoint, FrameBatch, Transport } from '../lib/transport/types.js';

export const ECHO_KIND = 8;
const PAYLOAD = Buffer.from('zs-p2pvm');

/** Echoes every frame back where it came from (the server side of the round trip). */
export function serveEcho(t: Transport): void {
  t.on('frames', (b: FrameBatch) => {
    for (let i = 0; i < b.count; i++) {
      t.send(b.peers[i]!, b.kinds[i]!, b.flags[i]!, b.data.subarray(b.offsets[i]!, b.offsets[i]! + b.lengths[i]!));
    }
  });
}

export interface LoadProgress {
  opened: number;
  echoed: number;
  closed: number;
  errors: number;
}

/** One client tunnel's share of the load; see the file comment. */
export class ClientLoad {
  readonly progress: LoadProgress = { opened: 0, echoed: 0, closed: 0, errors: 0 };
  readonly peers: Int32Array;
  #echoWaiter: (() => void) | undefined;
  #expectEchoes = 0;

  constructor(
    readonly tunnel: P2pvmEndpoint,
    readonly count: number,
    readonly concurrency = 20_000,
  ) {
    this.peers = new Int32Array(count).fill(-1);
    tunnel.on('frames', (b: FrameBatch) => {
      this.progress.echoed += b.count;
      if (this.#echoWaiter && this.progress.echoed >= this.#expectEchoes) this.#echoWaiter();
    });
    tunnel.on('close', (_p, reason) => {
      if (reason !== 'local') this.progress.errors++;
    });
  }

  /** Opens all connections, at most `concurrency` connects in flight. */
  open(at: Endpoint): Promise<void> {
    return new Promise((resolve) => {
      let started = 0;
      let inFlight = 0;
      const settle = () => {
        inFlight--;
        if (started < this.count) launch();
        else if (inFlight === 0) resolve();
      };
      const launch = () => {
        while (inFlight < this.concurrency && started < this.count) {
          const k = started++;
          inFlight++;
          this.tunnel.connect(at, { timeout: 60_000 }).then(
            (peer) => {
              this.peers[k] = peer;
              this.progress.opened++;
              settle();
            },
            () => {
              this.progress.errors++;
              settle();
            },
          );
        }
      };
      if (this.count === 0) resolve();
      else launch();
    });
  }

  /** One echo round trip on every open connection, `window` of them outstanding at a time. */
  async roundTrips(window = 50_000): Promise<void> {
    for (let from = 0; from < this.count; from += window) {
      const to = Math.min(this.count, from + window);
      this.#expectEchoes = this.progress.echoed;
      for (let k = from; k < to; k++) {
        if (this.peers[k]! < 0) continue;
        this.tunnel.send(this.peers[k]!, ECHO_KIND, 0, PAYLOAD);
        this.#expectEchoes++;
      }
      await new Promise<void>((resolve) => {
        this.#echoWaiter = resolve;
        if (this.progress.echoed >= this.#expectEchoes) resolve();
      });
      this.#echoWaiter = undefined;
    }
  }

  /** Closes every connection this load opened. */
  closeAll(): void {
    for (let k = 0; k < this.count; k++) {
      if (this.peers[k]! >= 0) {
        this.tunnel.close(this.peers[k]!);
        this.progress.closed++;
      }
    }
  }
}

/** Prints a one-line progress bar to stderr (overwritten in place). */
export function progressBar(label: string, done: number, total: number): void {
  const width = 30;
  const filled = total > 0 ? Math.round((done / total) * width) : width;
  process.stderr.write(`\r${label.padEnd(10)} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done.toLocaleString('en-US')}/${total.toLocaleString('en-US')}   `);
}

/** The parts of lib/framework the --framework mode uses (its console command). */
export interface FrameworkModule {
  Server: new (options: { quiet?: boolean }) => {
    console(name: string, handler: (text: string) => string): void;
    listen(transport: Transport, at: Endpoint): Promise<unknown>;
  };
  Client: new (options: { transport: Transport; host: string; port: number; quiet?: boolean }) => {
    connect(): Promise<unknown>;
    callConsole(name: string, text: string): Promise<string>;
    close(): Promise<void>;
  };
}

/** Loads lib/framework when this build has it; prints why not and returns null otherwise. */
export async function loadFramework(): Promise<FrameworkModule | null> {
  try {
    const mod = (await import('../lib/framework/index.js' as string)) as Partial<FrameworkModule>;
    if (typeof mod.Server === 'function' && typeof mod.Client === 'function') return mod as FrameworkModule;
    console.log('framework found, but lib/framework/index.js does not export Server and Client');
  } catch {
    console.log('framework not built on this branch');
  }
  return null;
}

/** The server side with the framework: a console command 'echo' on the P2PVM endpoint. */
export async function serveFrameworkEcho(fw: FrameworkModule, t: Transport, at: Endpoint): Promise<void> {
  const server = new fw.Server({ quiet: true });
  server.console('echo', (text) => text);
  await server.listen(t, at);
}

/** ClientLoad's work through the framework: one Client per virtual connection, one console call each. */
export class FrameworkLoad {
  readonly progress: LoadProgress = { opened: 0, echoed: 0, closed: 0, errors: 0 };
  readonly #clients: (InstanceType<FrameworkModule['Client']> | undefined)[];

  constructor(
    readonly fw: FrameworkModule,
    readonly tunnel: P2pvmEndpoint,
    readonly count: number,
    readonly concurrency = 20_000,
  ) {
    this.#clients = new Array(count);
  }

  async #each(fn: (k: number) => Promise<void>): Promise<void> {
    let next = 0;
    const worker = async () => {
      while (next < this.count) {
        const k = next++;
        await fn(k).catch(() => void this.progress.errors++);
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.concurrency, this.count) }, worker));
  }

  open(at: Endpoint): Promise<void> {
    return this.#each(async (k) => {
      const c = new this.fw.Client({ transport: this.tunnel, host: at.host, port: at.port, quiet: true });
      await c.connect();
      this.#clients[k] = c;
      this.progress.opened++;
    });
  }

  roundTrips(): Promise<void> {
    return this.#each(async (k) => {
      const c = this.#clients[k];
      if (!c) return;
      if ((await c.callConsole('echo', 'zs-p2pvm')) !== 'zs-p2pvm') throw new Error('wrong echo');
      this.progress.echoed++;
    });
  }

  closeAll(): void {
    for (const c of this.#clients) {
      if (!c) continue;
      void c.close().catch(() => void this.progress.errors++);
      this.progress.closed++;
    }
  }
}
