/**
 * A stress-runner client process: opens its share of the connections from
 * its own loopback source address, lets every connection exchange M messages
 * one after another (each echoed) recording each round trip, then closes.
 * Steps are driven by the runner (protocol.ts).
 *
 * It speaks the frames of docs/protocol.md on plain node:net sockets rather
 * than through a zserver transport, so the load does not depend on the code
 * under test. Each socket binds an explicit local port: bind() to port 0
 * makes Linux search the whole ephemeral range for every socket, which at
 * tens of thousands of sockets costs milliseconds of kernel time each (Node
 * cannot set IP_BIND_ADDRESS_NO_PORT). Ports come from a range below the
 * ephemeral one, and each child has its own source address, so they never
 * collide.
 */
import net from 'node:net';
import { DEFAULT_HEAD_TOKEN, DEFAULT_TAIL_TOKEN } from '../transport/common.js';
import { FrameDecoder, frameBytes, type FrameSink } from '../transport/frame-codec.js';
import { bucketOf, HISTOGRAM_BUCKETS, type ClientSetup, type FromChild, type ToChild } from './protocol.js';

const say = (m: FromChild) => process.send!(m);
const KIND = 8;
/** Local ports handed out from here up (below Linux's default ephemeral range, 32768+). */
const FIRST_PORT = 10_000;
const LAST_PORT = 32_767;

function errorKind(err: unknown): string {
  return (err as { code?: string }).code ?? 'error';
}

class Connection implements FrameSink<Buffer> {
  readonly decoder = new FrameDecoder<Buffer>({ headToken: DEFAULT_HEAD_TOKEN, tailToken: DEFAULT_TAIL_TOKEN, maxFrameSize: 1 << 20 }, Buffer.allocUnsafeSlow);
  sentAt = 0;
  remaining = 0;
  closed = false;
  constructor(
    readonly owner: StressClient,
    readonly socket: net.Socket,
  ) {}
  frame(_kind: number, _flags: number, _source: Buffer, _start: number, length: number): undefined {
    this.owner.reply(this, length);
    return undefined;
  }
}

class StressClient {
  readonly conns: Connection[] = [];
  readonly histogram = new Array<number>(HISTOGRAM_BUCKETS).fill(0);
  readonly errors: Record<string, number> = {};
  readonly message: Buffer;
  nextPort = FIRST_PORT;
  messagesDone = 0;
  exchanging = false;
  pending = 0;
  onAllDone: (() => void) | undefined;

  constructor(readonly setup: ClientSetup) {
    this.message = Buffer.from(frameBytes({ headToken: DEFAULT_HEAD_TOKEN, tailToken: DEFAULT_TAIL_TOKEN }, KIND, 0, Buffer.alloc(setup.size, 0x5a)).buffer);
  }

  count(kind: string): void {
    this.errors[kind] = (this.errors[kind] ?? 0) + 1;
  }

  /** Opens one connection, trying the next local port when one is taken. */
  async open(port: number): Promise<void> {
    for (let attempt = 0; attempt < 5; attempt++) {
      if (this.nextPort > LAST_PORT) throw Object.assign(new Error('out of local ports'), { code: 'NO_PORTS' });
      const localPort = this.nextPort++;
      try {
        const socket = await connectOnce(this.setup.host, port, this.setup.sourceAddress, localPort, this.setup.connectTimeout);
        const c = new Connection(this, socket);
        socket.on('data', (chunk: Buffer) => {
          const fault = c.decoder.push(chunk, c);
          if (fault) {
            this.count(`reply:${fault.reason}`);
            socket.destroy();
          }
        });
        socket.on('error', (err) => this.lost(c, `socket:${errorKind(err)}`));
        socket.on('close', () => this.lost(c, 'closed-by-server'));
        this.conns.push(c);
        return;
      } catch (err) {
        const kind = errorKind(err);
        if (kind !== 'EADDRINUSE' && kind !== 'EADDRNOTAVAIL') throw err;
      }
    }
    throw Object.assign(new Error('no free local port after 5 tries'), { code: 'EADDRINUSE' });
  }

  async connectAll(): Promise<void> {
    const { connections, window, ports } = this.setup;
    const started = performance.now();
    let next = 0;
    let lastReport = 0;
    const lane = async () => {
      while (next < connections) {
        const i = next++;
        try {
          await this.open(ports[(i + this.setup.index) % ports.length]!);
        } catch (err) {
          this.count(`connect:${errorKind(err)}`);
        }
        if (this.conns.length - lastReport >= 500) {
          lastReport = this.conns.length;
          say({ type: 'progress', done: lastReport });
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(window, connections) }, lane));
    say({ type: 'connected', ms: performance.now() - started, ok: this.conns.length, errors: { ...this.errors } });
  }

  exchange(): Promise<void> {
    for (const k of Object.keys(this.errors)) delete this.errors[k]; // connect errors were reported already
    this.exchanging = true;
    const m = this.setup.messages;
    this.pending = this.conns.length;
    if (this.pending === 0 || m === 0) return Promise.resolve();
    const done = new Promise<void>((resolve) => (this.onAllDone = resolve));
    const now = performance.now();
    for (const c of this.conns) {
      c.remaining = m;
      c.sentAt = now;
      c.socket.write(this.message);
    }
    const progress = setInterval(() => say({ type: 'progress', done: this.messagesDone }), 200);
    return done.finally(() => clearInterval(progress));
  }

  reply(c: Connection, length: number): void {
    if (c.remaining === 0) {
      this.count('unexpected-reply');
      return;
    }
    const now = performance.now();
    if (length !== this.setup.size) this.count('wrong-size');
    this.histogram[bucketOf((now - c.sentAt) * 1000)]!++;
    this.messagesDone++;
    if (--c.remaining > 0) {
      c.sentAt = now;
      c.socket.write(this.message);
    } else {
      this.finished();
    }
  }

  lost(c: Connection, kind: string): void {
    if (c.closed) return;
    c.closed = true;
    if (this.exchanging && c.remaining > 0) {
      this.count(kind);
      c.remaining = 0;
      this.finished();
    } else if (!this.exchanging) {
      this.count(kind);
    }
  }

  finished(): void {
    if (--this.pending === 0) this.onAllDone?.();
  }

  async closeAll(): Promise<void> {
    this.exchanging = false;
    const open = this.conns.filter((c) => !c.closed);
    for (const c of open) c.closed = true;
    await Promise.all(
      open.map(
        (c) =>
          new Promise<void>((resolve) => {
            c.socket.once('close', () => resolve());
            c.socket.end();
            c.socket.setTimeout(5000, () => c.socket.destroy());
          }),
      ),
    );
  }
}

function connectOnce(host: string, port: number, localAddress: string, localPort: number, timeout: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port, localAddress, localPort, noDelay: true });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(Object.assign(new Error('connect timeout'), { code: 'TIMEOUT' }));
    }, timeout);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.removeAllListeners('error');
      resolve(socket);
    });
    socket.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

let client: StressClient | undefined;
process.on('message', (m: ClientSetup | ToChild) => {
  if ('role' in m) {
    client = new StressClient(m);
    say({ type: 'ready', port: 0 });
  } else if (m.type === 'connect') {
    void client!.connectAll();
  } else if (m.type === 'exchange') {
    void client!.exchange().then(() => {
      say({ type: 'exchanged', messages: client!.messagesDone, histogram: client!.histogram, errors: { ...client!.errors } });
    });
  } else if (m.type === 'close') {
    void client!.closeAll().then(() => {
      say({ type: 'closed' });
      process.exit(0);
    });
  }
});
process.on('disconnect', () => process.exit(0));
