/**
 * A stress-runner client process: opens its share of the connections from
 * its own loopback source address (each address has its own ephemeral ports,
 * so several children can open far more than 28,000 connections in all),
 * then lets every connection exchange M messages one after another and
 * records each round trip, then closes. Steps are driven by the runner
 * (protocol.ts).
 */
import { NodeNetTransport } from '../transport/node-net.js';
import type { FrameBatch, PeerId } from '../transport/types.js';
import { addCounts, bucketOf, HISTOGRAM_BUCKETS, type ClientSetup, type FromChild, type ToChild } from './protocol.js';

const say = (m: FromChild) => process.send!(m);
const KIND = 8;

function errorKind(err: unknown): string {
  const e = err as { code?: string; cause?: { code?: string } };
  return e.cause?.code ?? e.code ?? 'error';
}

class StressClient {
  readonly transport = new NodeNetTransport();
  readonly peers: PeerId[] = [];
  readonly sentAt = new Float64Array(65536);
  readonly remaining = new Uint16Array(65536);
  readonly histogram = new Array<number>(HISTOGRAM_BUCKETS).fill(0);
  readonly errors: Record<string, number> = {};
  readonly payload: Buffer;
  messagesDone = 0;
  exchanging = false;
  onAllDone: (() => void) | undefined;
  pendingPeers = 0;

  constructor(readonly setup: ClientSetup) {
    this.payload = Buffer.alloc(setup.size, 0x5a);
    this.transport.on('frames', (b) => this.#frames(b));
    this.transport.on('close', (peer, reason) => {
      if (this.exchanging && this.remaining[peer]! > 0) {
        this.#count(`closed:${reason}`);
        this.remaining[peer] = 0;
        this.#finishedPeer();
      }
    });
  }

  #count(kind: string): void {
    this.errors[kind] = (this.errors[kind] ?? 0) + 1;
  }

  async connectAll(): Promise<void> {
    const { connections, window, host, ports, sourceAddress, connectTimeout } = this.setup;
    const started = performance.now();
    let next = 0;
    let lastReport = 0;
    const lane = async () => {
      while (next < connections) {
        const i = next++;
        try {
          const port = ports[(i + this.setup.index) % ports.length]!;
          this.peers.push(await this.transport.connect({ host, port }, { localAddress: sourceAddress, timeout: connectTimeout }));
        } catch (err) {
          this.#count(`connect:${errorKind(err)}`);
        }
        const done = this.peers.length;
        if (done - lastReport >= 500) {
          lastReport = done;
          say({ type: 'progress', done });
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(window, connections) }, lane));
    say({ type: 'connected', ms: performance.now() - started, ok: this.peers.length, errors: { ...this.errors } });
  }

  exchange(): Promise<void> {
    // Connect errors were reported with 'connected'; from here on count only the exchange's.
    for (const k of Object.keys(this.errors)) delete this.errors[k];
    this.exchanging = true;
    const m = this.setup.messages;
    this.pendingPeers = this.peers.length;
    if (this.pendingPeers === 0 || m === 0) return Promise.resolve();
    const done = new Promise<void>((resolve) => (this.onAllDone = resolve));
    const now = performance.now();
    for (const p of this.peers) {
      this.remaining[p] = m;
      this.sentAt[p] = now;
      this.transport.send(p, KIND, 0, this.payload);
    }
    const progress = setInterval(() => say({ type: 'progress', done: this.messagesDone }), 200);
    return done.finally(() => clearInterval(progress));
  }

  #frames(b: FrameBatch): void {
    const now = performance.now();
    for (let i = 0; i < b.count; i++) {
      const p = b.peers[i]!;
      if (this.remaining[p] === 0) {
        this.#count('unexpected-frame');
        continue;
      }
      if (b.lengths[i] !== this.setup.size) this.#count('wrong-size');
      this.histogram[bucketOf((now - this.sentAt[p]!) * 1000)]!++;
      this.messagesDone++;
      if (--this.remaining[p]! > 0) {
        this.sentAt[p] = now;
        this.transport.send(p, KIND, 0, this.payload);
      } else {
        this.#finishedPeer();
      }
    }
  }

  #finishedPeer(): void {
    if (--this.pendingPeers === 0) this.onAllDone?.();
  }
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
      const errors: Record<string, number> = {};
      addCounts(errors, client!.errors);
      say({ type: 'exchanged', messages: client!.messagesDone, histogram: client!.histogram, errors });
    });
  } else if (m.type === 'close') {
    for (const p of client!.peers) client!.transport.close(p);
    void client!.transport.shutdown().then(() => {
      say({ type: 'closed' });
      process.exit(0);
    });
  }
});
process.on('disconnect', () => process.exit(0));
