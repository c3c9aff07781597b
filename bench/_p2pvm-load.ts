/**
 * The load logic of bench/p2pvm.ts part (a), shared by the in-process mode
 * and the client/server child processes: open many virtual connections over
 * one tunnel with a bounded number of connects in flight, do one echo round
 * trip on each, then close them all. The echo is a frame of kind 8 with an
 * 8-byte payload, sent back unchanged by the server; with --framework the
 * server is the framework's Server and each round trip is its console command
 * 'echo' (ConsoleLoad).
 */
import type { P2pvmEndpoint } from '../lib/p2pvm/index.js';
import { MessageKind, encodeConsole, nameBytes } from '../lib/protocol/messages.js';
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
      for (let i = 0; i < b.count; i++) {
        if (this.check(b.kinds[i]!, b.data, b.offsets[i]!, b.lengths[i]!)) this.progress.echoed++;
        else this.progress.errors++;
      }
      if (this.#echoWaiter && this.progress.echoed + this.progress.errors >= this.#expectEchoes) this.#echoWaiter();
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
      this.#expectEchoes = this.progress.echoed + this.progress.errors;
      for (let k = from; k < to; k++) {
        if (this.peers[k]! < 0) continue;
        this.request(this.peers[k]!);
        this.#expectEchoes++;
      }
      await new Promise<void>((resolve) => {
        this.#echoWaiter = resolve;
        if (this.progress.echoed + this.progress.errors >= this.#expectEchoes) resolve();
      });
      this.#echoWaiter = undefined;
    }
  }

  /** Sends the round trip's request on `peer`: the raw echo frame. */
  protected request(peer: number): void {
    this.tunnel.send(peer, ECHO_KIND, 0, PAYLOAD);
  }

  /** Whether an answer is the right one: the echo frame, unchanged. */
  protected check(kind: number, data: Buffer, off: number, len: number): boolean {
    return kind === ECHO_KIND && len === PAYLOAD.length && data.compare(PAYLOAD, 0, PAYLOAD.length, off, off + len) === 0;
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

/** The framework's Server, as the --framework mode uses it (its console command). */
export interface FrameworkModule {
  Server: new (options: { quiet?: boolean }) => {
    readonly count: number;
    console(name: string, handler: (text: string) => string): void;
    listen(transport: Transport, at: Endpoint): Promise<unknown>;
  };
}

/** Loads lib/framework's Server; prints why not and returns null when this build lacks it. */
export async function loadFramework(): Promise<FrameworkModule | null> {
  try {
    const mod = (await import('../lib/framework/server.js' as string)) as Partial<FrameworkModule>;
    if (typeof mod.Server === 'function') return mod as FrameworkModule;
    console.log('framework found, but lib/framework/server.js does not export Server');
  } catch (err) {
    console.log(`framework not built on this branch (${(err as Error).message.split('\n')[0]})`);
  }
  return null;
}

/** The server side with the framework: the real framework Server, console command 'echo', on the P2PVM endpoint. */
export async function serveFrameworkEcho(fw: FrameworkModule, t: Transport, at: Endpoint): Promise<{ readonly count: number }> {
  const server = new fw.Server({ quiet: true });
  server.console('echo', (text) => text);
  await server.listen(t, at);
  return server;
}

const CONSOLE_ID = 1;
/** The Console request 'echo' with id 1 and text PAYLOAD, encoded per docs/protocol.md ("Messages"). */
const CONSOLE_REQUEST = Buffer.from(encodeConsole(CONSOLE_ID, nameBytes('echo'), PAYLOAD.toString('utf8')));

/**
 * ClientLoad's work as framework console round trips: each virtual connection sends one Console
 * request (kind 8, id 1, command 'echo') and expects the Reply (kind 18, id 1, the same text).
 * The client side encodes the message itself (docs/protocol.md), because a framework Client
 * object per virtual connection would measure the load generator, not the server.
 */
export class ConsoleLoad extends ClientLoad {
  protected override request(peer: number): void {
    this.tunnel.send(peer, MessageKind.Console, 0, CONSOLE_REQUEST);
  }

  protected override check(kind: number, data: Buffer, off: number, len: number): boolean {
    return (
      kind === MessageKind.Reply &&
      len === 4 + PAYLOAD.length &&
      data.readUInt32LE(off) === CONSOLE_ID &&
      data.compare(PAYLOAD, 0, PAYLOAD.length, off + 4, off + len) === 0
    );
  }
}
