/**
 * A stress-runner client process in rpc mode, on zserver's own Client: opens
 * its share of the framework connections (through the secure channel when the
 * runner gives a pin), makes M `stress.ping` calls on each one after another,
 * and answers the runner's presence / broadcast steps (protocol.ts). All its
 * Clients share one NativeTcpTransport, and take their source addresses
 * round-robin from the runner's list (the native transport binds with
 * IP_BIND_ADDRESS_NO_PORT, so the kernel picks each port at connect time).
 *
 * The compiled client (bench/loadgen/stress-client.cc --mode rpc) does the same
 * for plain connections at a fraction of the memory and CPU; this one is the
 * secure-channel client, and the one tests use without a C++ compiler.
 */
import { Client } from '../framework/client.js';
import { useFrameStages } from '../framework/pipeline.js';
import { nodeStages } from '../framework/stack.js';
import { NativeTcpTransport } from '../transport/native-tcp.js';
import { TICK } from './app.js';
import { bucketOf, HISTOGRAM_BUCKETS, type ClientSetup, type FromChild, type ToChild } from './protocol.js';

// A Node process: its Clients get the Node frame stages (the secure channel among them), as
// importing 'zserver' (lib/index.ts) would install them.
useFrameStages(nodeStages);

const say = (m: FromChild) => process.send!(m);
const wallMs = () => performance.timeOrigin + performance.now();

function errorKind(err: unknown): string {
  return (err as { code?: string }).code ?? (err as Error).name ?? 'error';
}

interface Conn {
  client: Client;
  open: boolean;
  ticked: boolean;
}

class RpcStressClient {
  readonly transport = new NativeTcpTransport();
  readonly conns: Conn[] = [];
  readonly histogram = new Array<number>(HISTOGRAM_BUCKETS).fill(0);
  readonly errors: Record<string, number> = {};
  readonly text: string;
  calls = 0;
  closing = false;
  ticks = 0;
  lastTickAt = 0;
  tickReported = false;
  /** Connections lost before their tick: not waited for. Counted, since a walk over every connection per tick made 15,000 ticks cost seconds. */
  lostUnticked = 0;
  tickProgress: ReturnType<typeof setInterval> | undefined;

  constructor(readonly setup: ClientSetup) {
    this.text = 'x'.repeat(setup.size);
    this.transport.on('error', (err) => this.count(`transport:${errorKind(err)}`, err));
  }

  /** Counts an error by kind; the first of each kind is also printed with its message, to say why. */
  count(kind: string, err?: unknown): void {
    if (this.errors[kind] === undefined && err !== undefined) process.stderr.write(`stress client ${this.setup.index}: ${kind}: ${(err as Error).message}\n`);
    this.errors[kind] = (this.errors[kind] ?? 0) + 1;
  }

  async open(i: number): Promise<void> {
    const { host, ports, sourceAddresses, secure, connectTimeout } = this.setup;
    const client = new Client({
      transport: this.transport,
      host,
      port: ports[(i + this.setup.index) % ports.length]!,
      localAddress: sourceAddresses[i % sourceAddresses.length]!,
      connectTimeout,
      quiet: true,
      ...(secure === undefined ? {} : { secure: secure.pin === undefined ? { insecureAcceptAnyServer: true } : { pin: secure.pin } }),
    });
    const conn: Conn = { client, open: false, ticked: false };
    client.directConsole(TICK, () => {
      if (!conn.ticked) {
        conn.ticked = true;
        this.ticks++;
        this.lastTickAt = wallMs();
        this.tickProgress ??= setInterval(() => say({ type: 'progress', done: this.ticks }), 100);
        this.maybeReportTicks();
      }
    });
    client.on('disconnect', (reason) => {
      if (conn.open && !this.closing) this.count(`closed:${reason}`);
      if (conn.open && !conn.ticked) this.lostUnticked++;
      conn.open = false;
    });
    await client.connect();
    conn.open = true;
    this.conns.push(conn);
  }

  async connectAll(): Promise<void> {
    const { connections, window } = this.setup;
    const started = performance.now();
    let next = 0;
    let lastReport = 0;
    const lane = async () => {
      while (next < connections) {
        const i = next++;
        try {
          await this.open(i);
        } catch (err) {
          this.count(`connect:${errorKind(err)}`, err);
        }
        if (this.conns.length - lastReport >= 200) {
          lastReport = this.conns.length;
          say({ type: 'progress', done: lastReport });
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(window, connections) }, lane));
    say({ type: 'connected', ms: performance.now() - started, ok: this.conns.length, errors: { ...this.errors } });
  }

  async exchange(): Promise<void> {
    for (const k of Object.keys(this.errors)) delete this.errors[k]; // connect errors were reported already
    const progress = setInterval(() => say({ type: 'progress', done: this.calls }), 200);
    try {
      await Promise.all(
        this.conns.map(async (c) => {
          for (let m = 0; m < this.setup.messages && c.open; m++) {
            const t0 = performance.now();
            try {
              const answer = await c.client.callConsole('stress.ping', this.text);
              if (answer.length !== this.text.length) this.count('wrong-size');
              this.histogram[bucketOf((performance.now() - t0) * 1000)]!++;
              this.calls++;
            } catch (err) {
              this.count(`call:${errorKind(err)}`, err);
            }
          }
        }),
      );
    } finally {
      clearInterval(progress);
    }
    say({ type: 'exchanged', messages: this.calls, histogram: this.histogram, errors: { ...this.errors } });
  }

  first(): Conn | undefined {
    return this.conns.find((c) => c.open);
  }

  async presence(): Promise<void> {
    const c = this.first();
    try {
      if (!c) throw new Error('no open connection');
      const { online } = JSON.parse(await c.client.callConsole('stress.presence', '')) as { online: number };
      say({ type: 'presence', online });
    } catch (err) {
      say({ type: 'presence', online: -1, error: (err as Error).message });
    }
  }

  async broadcast(): Promise<void> {
    const c = this.first();
    const sentAt = wallMs();
    try {
      if (!c) throw new Error('no open connection');
      const { reached } = JSON.parse(await c.client.callConsole('stress.broadcast', '1')) as { reached: number };
      say({ type: 'broadcasted', sentAt, answeredAt: wallMs(), reached });
    } catch (err) {
      say({ type: 'broadcasted', sentAt, answeredAt: wallMs(), reached: -1, error: (err as Error).message });
    }
  }

  /** Reports the ticks once every open connection got one (or at once when `now`). */
  maybeReportTicks(now = false): void {
    if (this.tickReported) return;
    const of = this.conns.length - this.lostUnticked;
    if (!now && this.ticks < of) return;
    this.tickReported = true;
    clearInterval(this.tickProgress);
    say({ type: 'ticked', got: this.ticks, of, lastAt: this.lastTickAt });
  }

  async closeAll(): Promise<void> {
    this.closing = true;
    await Promise.all(this.conns.map((c) => c.client.close().catch(() => undefined)));
    await this.transport.shutdown();
  }
}

let client: RpcStressClient | undefined;
process.on('message', (m: ClientSetup | ToChild) => {
  if ('role' in m) {
    client = new RpcStressClient(m);
    say({ type: 'ready', port: 0 });
    return;
  }
  const c = client!;
  if (m.type === 'connect') void c.connectAll();
  else if (m.type === 'exchange') void c.exchange();
  else if (m.type === 'presence') void c.presence();
  else if (m.type === 'broadcast') void c.broadcast();
  else if (m.type === 'tick-report') c.maybeReportTicks(true);
  else if (m.type === 'close') {
    void c.closeAll().then(() => {
      say({ type: 'closed' });
      process.exit(0);
    });
  }
});
process.on('disconnect', () => process.exit(0));
