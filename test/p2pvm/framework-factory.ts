/**
 * P2PVM in the shape of the framework test suite's TransportFactory
 * ({ name, host, create(): Transport }), so the whole framework suite runs
 * over virtual connections: `frameworkSuite(p2pvmFactory())`.
 *
 * Each create() returns a P2pvmSite: one physical MemoryTransport and one
 * P2pvmHost over it. listen() makes the host listen on the virtual endpoint
 * (and the physical transport on a memory port, recorded in the factory's
 * registry); connect() opens a tunnel from this host to the host that listens
 * on that virtual endpoint (once per host, again after it closed) and a
 * virtual connection through it. So one client transport can reach several
 * servers, and a restarted server, with one peer-id space, as the suite does.
 */
import { EventEmitter } from 'node:events';
import { ConnectError } from '../../lib/errors.js';
import { formatAddress, P2pvmHost, parseAddress, type P2pvmOptions } from '../../lib/p2pvm/index.js';
import { MemoryNetwork, MemoryTransport } from '../../lib/transport/memory.js';
import type {
  ConnectOptions,
  Endpoint,
  PeerId,
  PeerInfo,
  Transport,
  TransportEvents,
  TransportStats,
} from '../../lib/transport/types.js';

interface Registry {
  network: MemoryNetwork;
  /** Virtual endpoint ("host/port") → the physical endpoint of the host listening there. */
  hosts: Map<string, Endpoint>;
  nextPort: number;
}

const EVENTS = ['open', 'frames', 'drain', 'close', 'error'] as const;

/** One transport of the factory; see the file comment. */
class P2pvmSite extends EventEmitter<TransportEvents> implements Transport {
  readonly name = 'p2pvm';
  readonly #physical: MemoryTransport;
  readonly #host: P2pvmHost;
  #physicalAt: Promise<Endpoint> | undefined;
  /** Physical endpoint ("host:port") → the tunnel id opening or open to it. */
  readonly #tunnels = new Map<string, Promise<number>>();
  readonly #listening: string[] = [];

  constructor(
    readonly registry: Registry,
    options: P2pvmOptions,
  ) {
    super();
    this.#physical = new MemoryTransport({ network: registry.network });
    this.#host = new P2pvmHost(this.#physical, { accept: () => true, ...options });
    const forward = this.emit as (e: string, ...a: unknown[]) => boolean;
    for (const e of EVENTS) {
      // 'error' only when someone listens here: an unheard 'error' event would throw.
      this.#host.on(e, (...args: unknown[]) => void (e !== 'error' || this.listenerCount('error') > 0 ? forward.call(this, e, ...args) : 0));
    }
  }

  async listen(endpoint: Endpoint): Promise<Endpoint> {
    this.#physicalAt ??= this.#physical.listen({ host: '127.0.0.1', port: 0 });
    const at = await this.#physicalAt;
    const port = endpoint.port === 0 ? this.registry.nextPort++ : endpoint.port;
    const bound = await this.#host.listen({ host: virtualHost(endpoint.host), port });
    const key = `${bound.host}/${bound.port}`;
    this.registry.hosts.set(key, at);
    this.#listening.push(key);
    return { host: endpoint.host, port: bound.port };
  }

  async connect(endpoint: Endpoint, options?: ConnectOptions): Promise<PeerId> {
    const virtual = { host: virtualHost(endpoint.host), port: endpoint.port };
    const at = this.registry.hosts.get(`${virtual.host}/${virtual.port}`);
    if (!at) throw new ConnectError(`p2pvm test site: nothing listens on ${endpoint.host}:${endpoint.port} (connection refused)`);
    const target = `${at.host}:${at.port}`;
    const open = this.#tunnels.get(target);
    const id = open ? await open.catch(() => -1) : -1;
    if (!this.#host.tunnels().some((t) => t.id === id)) {
      const opening = this.#physical.connect(at).then((peer) => this.#host.openTunnel(peer));
      this.#tunnels.set(target, opening);
      await opening;
    }
    return this.#host.connect(virtual, options);
  }

  send(peer: PeerId, kind: number, flags: number, payload: Uint8Array): boolean {
    return this.#host.send(peer, kind, flags, payload);
  }

  close(peer: PeerId, abort?: boolean): void {
    this.#host.close(peer, abort);
  }

  getUserData(peer: PeerId): unknown {
    return this.#host.getUserData(peer);
  }

  setUserData(peer: PeerId, value: unknown): void {
    this.#host.setUserData(peer, value);
  }

  peerInfo(peer: PeerId): PeerInfo | undefined {
    return this.#host.peerInfo(peer);
  }

  stats(): TransportStats {
    return this.#host.stats();
  }

  async shutdown(): Promise<void> {
    for (const k of this.#listening) this.registry.hosts.delete(k);
    await this.#host.shutdown();
    await this.#physical.shutdown();
  }
}

/** The canonical virtual address of a host name the suite uses ('localhost' is ::1). */
function virtualHost(host: string): string {
  const bytes = parseAddress(host === 'localhost' ? '::1' : host);
  if (!bytes) throw new RangeError(`p2pvm test site: ${host} is not an address`);
  return formatAddress(bytes);
}

/** The factory; see the file comment. */
export function p2pvmFactory(options: P2pvmOptions = {}): { name: string; host: string; create(): Transport } {
  const registry: Registry = { network: new MemoryNetwork(), hosts: new Map(), nextPort: 20000 };
  return {
    name: 'P2PVM virtual connections over MemoryTransport',
    host: '::1',
    create: () => new P2pvmSite(registry, options),
  };
}
