/**
 * A stress-runner client process in rpc mode, on zserver's own Client: opens
 * its share of the framework connections (through the secure channel when the
 * runner gives a pin), joins each to its room (with rooms), makes M calls on
 * each one after another (`stress.ping`, or `stress.add` with its answer
 * checked), and answers the runner's presence / broadcast / roomcast steps
 * (protocol.ts). All its
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
import { DataFrame } from '../protocol/dataframe.js';
import { ROOMCAST_ROOM, TICK } from './app.js';
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
  /** Got the tick of the current round. */
  ticked: boolean;
  /** A member of room r0 (the room stress.roomcast sends to). */
  inRoomcastRoom: boolean;
}

/** The tick text's seq of each round: what stress.broadcast and stress.roomcast are called with. */
const ROUND_SEQ = { broadcast: '1', roomcast: ROOMCAST_ROOM } as const;

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
  /** The ticks expected now: from stress.broadcast (every connection) or stress.roomcast (members of r0). */
  round: keyof typeof ROUND_SEQ = 'broadcast';
  /** Ticks of the roomcast round on connections outside r0. */
  outside = 0;
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
    const rooms = this.setup.rooms ?? 0;
    const room = rooms > 0 ? `r${((this.setup.offset ?? 0) + i) % rooms}` : undefined;
    const conn: Conn = { client, open: false, ticked: false, inRoomcastRoom: room === ROOMCAST_ROOM };
    client.directConsole(TICK, (text) => {
      const { seq } = JSON.parse(text) as { seq: string };
      // A roomcast tick may come before the runner's {tick-round}: it starts the round too.
      if (seq === ROUND_SEQ.roomcast && this.round === 'broadcast') this.startRoomcastRound();
      // A late tick of an earlier round is not one of this round's.
      if (seq !== ROUND_SEQ[this.round]) return;
      if (this.round === 'roomcast' && !conn.inRoomcastRoom) {
        this.outside++;
        return;
      }
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
      if (conn.open && !conn.ticked && this.expects(conn)) this.lostUnticked++;
      conn.open = false;
    });
    await client.connect();
    conn.open = true;
    this.conns.push(conn);
    if (room !== undefined) {
      try {
        await client.callConsole('stress.join', room);
      } catch (err) {
        this.count(`join:${errorKind(err)}`, err);
      }
    }
  }

  /** Whether connection c is to get the tick of the current round. */
  expects(c: Conn): boolean {
    return this.round === 'broadcast' || c.inRoomcastRoom;
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
              if (this.setup.call === 'stream') {
                // Operands that differ per call, so a mixed-up answer shows.
                const a = (this.setup.index << 20) + m;
                const b = this.calls;
                const answer = await c.client.call('stress.add', new DataFrame().writeInt32(a).writeInt32(b));
                if (answer.count !== 1 || answer.readInt32() !== ((a + b) | 0)) this.count('wrong-answer');
              } else {
                const answer = await c.client.callConsole('stress.ping', this.text);
                if (answer.length !== this.text.length) this.count('wrong-size');
              }
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

  /** Starts the roomcast round: ticks are now expected on members of r0 only. */
  startRoomcastRound(): void {
    if (this.round === 'roomcast') return;
    clearInterval(this.tickProgress);
    this.round = 'roomcast';
    this.ticks = 0;
    this.lostUnticked = 0;
    this.outside = 0;
    this.lastTickAt = 0;
    this.tickReported = false;
    this.tickProgress = undefined;
    for (const c of this.conns) c.ticked = false;
    this.maybeReportTicks(); // a client with no member of r0 has nothing to wait for
  }

  async broadcast(command: 'stress.broadcast' | 'stress.roomcast'): Promise<void> {
    const c = this.first();
    const sentAt = wallMs();
    try {
      if (!c) throw new Error('no open connection');
      const seq = command === 'stress.broadcast' ? ROUND_SEQ.broadcast : ROUND_SEQ.roomcast;
      const { reached } = JSON.parse(await c.client.callConsole(command, seq)) as { reached: number };
      say({ type: 'broadcasted', sentAt, answeredAt: wallMs(), reached });
    } catch (err) {
      say({ type: 'broadcasted', sentAt, answeredAt: wallMs(), reached: -1, error: (err as Error).message });
    }
  }

  /** Reports the ticks once every open connection got one (or at once when `now`). */
  maybeReportTicks(now = false): void {
    if (this.tickReported) return;
    const of = (this.round === 'broadcast' ? this.conns.length : this.conns.filter((c) => c.inRoomcastRoom).length) - this.lostUnticked;
    if (!now && this.ticks < of) return;
    this.tickReported = true;
    clearInterval(this.tickProgress);
    say({ type: 'ticked', got: this.ticks, of, lastAt: this.lastTickAt, ...(this.round === 'roomcast' ? { outside: this.outside } : {}) });
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
  else if (m.type === 'broadcast') void c.broadcast('stress.broadcast');
  else if (m.type === 'tick-round') c.startRoomcastRound();
  else if (m.type === 'roomcast') void c.broadcast('stress.roomcast');
  else if (m.type === 'tick-report') c.maybeReportTicks(true);
  else if (m.type === 'close') {
    void c.closeAll().then(() => {
      say({ type: 'closed' });
      process.exit(0);
    });
  }
});
process.on('disconnect', () => process.exit(0));
