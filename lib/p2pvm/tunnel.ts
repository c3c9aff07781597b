/**
 * The two faces of a P2PVM endpoint (endpoint.ts):
 *
 * - P2pvmTunnel: one tunnel this side opens over an established physical
 *   peer, with a token the other side judges. A program that dials a server
 *   opens one and then listens/connects on it like on any Transport.
 * - P2pvmHost: accepts tunnels from many physical peers of one transport (a
 *   server process serving several client processes), each judged by an
 *   `accept(token, peer)` policy. All tunnels' virtual connections share one
 *   peer-id space, so the framework serves them as one endpoint.
 */
import { describe } from '../bytes.js';
import { ConnectionClosedError } from '../errors.js';
import type { CloseReason, ConnectOptions, Endpoint, PeerId, Transport } from '../transport/types.js';
import { P2pvmEndpoint } from './endpoint.js';
import { P2pvmCore, type LinkParams, type TunnelLink } from './core.js';
import type { P2pvmOptions } from './options.js';
import { Packet } from './wire.js';

/** How a tunnel ended. */
export interface TunnelClose {
  reason: CloseReason;
  detail: string;
}

/** Options of P2pvmTunnel.open(). */
export interface P2pvmTunnelOptions extends P2pvmOptions {
  /** Bytes (or UTF-8 text) the other side's accept policy judges; at most 4096 bytes. */
  token?: Uint8Array | string;
}

const MAX_TOKEN = 4096;
const NO_TOKEN = Buffer.alloc(0);

function checkPeer(peer: unknown): void {
  if (typeof peer !== 'number' || !Number.isInteger(peer) || peer < 0) {
    throw new RangeError(`peer must be a peer id (a non-negative integer), got ${describe(peer)}`);
  }
}

function tokenBytes(token: unknown): Buffer {
  if (token === undefined) return NO_TOKEN;
  const b = typeof token === 'string' ? Buffer.from(token) : token instanceof Uint8Array ? Buffer.from(token) : null;
  if (!b) throw new TypeError(`options.token must be a string or Uint8Array, got ${describe(token)}`);
  if (b.length > MAX_TOKEN) throw new RangeError(`options.token must be at most ${MAX_TOKEN} bytes, got ${b.length}`);
  return b;
}

/** One tunnel over one physical peer, opened by this side. See the file comment. */
export class P2pvmTunnel extends P2pvmEndpoint {
  readonly #core: P2pvmCore;
  #link: TunnelLink | undefined;
  #ready: Promise<void> = Promise.resolve();
  #closed: TunnelClose | undefined;
  #closedWaiters: ((c: TunnelClose) => void)[] = [];

  private constructor(transport: Transport, options: P2pvmOptions) {
    const core = new P2pvmCore(transport, options, false);
    super(core);
    this.#core = core;
    // A closed tunnel settles closed().
    core.face = { onHello: (link) => link.fail('unexpected HELLO'), onLinkClosed: (_link, reason, detail) => this.#linkClosed(reason, detail) };
  }

  /**
   * Opens a tunnel over `peer` of `transport` (an established connection):
   * sends HELLO with the token and resolves once the other side sent WELCOME.
   * Rejects with ConnectError when it refused, TimeoutError after handshakeTimeout.
   */
  static async open(transport: Transport, peer: PeerId, options: P2pvmTunnelOptions = {}): Promise<P2pvmTunnel> {
    checkPeer(peer);
    const tunnel = P2pvmTunnel.attach(transport, peer, options);
    await tunnel.ready();
    return tunnel;
  }

  /**
   * Returns a tunnel at once, over a peer that may still be connecting: the
   * handshake starts when `peer` resolves, ready() settles when the tunnel is
   * open (or failed), and connect() waits for it. For code that must hand out
   * a Transport synchronously, such as a test suite's transport factory.
   */
  static attach(transport: Transport, peer: PeerId | Promise<PeerId>, options: P2pvmTunnelOptions = {}): P2pvmTunnel {
    const token = tokenBytes(options.token);
    if (!(peer instanceof Promise)) checkPeer(peer);
    const { token: _omit, ...rest } = options;
    const tunnel = new P2pvmTunnel(transport, rest);
    tunnel.#ready = Promise.resolve(peer).then((p) => tunnel.#handshake(p, token));
    tunnel.#ready.catch(() => {}); // reported through ready() and connect()
    return tunnel;
  }

  #handshake(peer: PeerId, token: Buffer): Promise<void> {
    const { link, opened } = this.#core.startTunnel(peer, token);
    this.#link = link;
    return opened;
  }

  /** Settles once the handshake completed (or failed: ConnectError, TimeoutError). */
  ready(): Promise<void> {
    return this.#ready;
  }

  /** As Transport.connect(); on a tunnel still in its handshake, waits for it first. */
  override connect(endpoint: Endpoint, options?: ConnectOptions): Promise<PeerId> {
    if (this.#link?.phase === 'open' || this.#closed) return super.connect(endpoint, options);
    return this.#ready.then(() => super.connect(endpoint, options));
  }

  /** True until the tunnel closed. */
  get isOpen(): boolean {
    return this.#closed === undefined;
  }

  /** Resolves once the tunnel closed, with the reason its virtual connections were closed with. */
  closed(): Promise<TunnelClose> {
    if (this.#closed) return Promise.resolve(this.#closed);
    return new Promise((resolve) => this.#closedWaiters.push(resolve));
  }

  /** Echo round trip over the tunnel, in ms. */
  ping(timeout = 10_000): Promise<number> {
    if (!this.#link || this.#closed) return Promise.reject(new ConnectionClosedError('p2pvm: the tunnel is closed'));
    return this.#link.echo(timeout);
  }

  #linkClosed(reason: CloseReason, detail: string): void {
    this.#closed = { reason, detail };
    for (const w of this.#closedWaiters.splice(0)) w(this.#closed);
  }
}

/** Decides whether to accept a tunnel: sees the HELLO token and the physical peer. */
export type TunnelPolicy = (token: Buffer, peer: PeerId) => boolean | Promise<boolean>;

/** Options of new P2pvmHost(). */
export interface P2pvmHostOptions extends P2pvmOptions {
  /** Required: accept (true) or refuse (false) a tunnel. */
  accept: TunnelPolicy;
  /** Called when a tunnel opened (id as used by tunnelOf(), ping(), closeTunnel()). */
  onTunnel?: (id: number, peer: PeerId) => void;
  /** Called when a tunnel closed. */
  onTunnelClose?: (id: number, peer: PeerId, close: TunnelClose) => void;
}

/** Accepts tunnels from every physical peer of one transport. See the file comment. */
export class P2pvmHost extends P2pvmEndpoint {
  readonly #core: P2pvmCore;
  readonly #policy: TunnelPolicy;
  readonly #onTunnel: P2pvmHostOptions['onTunnel'];
  readonly #onTunnelClose: P2pvmHostOptions['onTunnelClose'];

  constructor(transport: Transport, options: P2pvmHostOptions) {
    if (typeof options !== 'object' || options === null || typeof options.accept !== 'function') {
      throw new TypeError(`options.accept must be a function (token, peer) => boolean, got ${describe(options?.accept)}`);
    }
    const { accept, onTunnel, onTunnelClose, ...rest } = options;
    const core = new P2pvmCore(transport, rest, true);
    super(core);
    this.#core = core;
    core.face = {
      onHello: (link, params, token) => this.#hello(link, params, token),
      onLinkClosed: (link, reason, detail, wasOpen) => {
        if (wasOpen) this.#onTunnelClose?.(link.index, link.physPeer, { reason, detail });
      },
    };
    this.#policy = accept;
    this.#onTunnel = onTunnel;
    this.#onTunnelClose = onTunnelClose;
  }

  /**
   * Opens a tunnel from this side over `peer` of the host's transport (an established connection
   * to another P2PVM host), like P2pvmTunnel.open(); resolves to the tunnel id. Its virtual
   * connections share this host's peer-id space, and connect() finds the other side's listen table.
   */
  async openTunnel(peer: PeerId, options: { token?: Uint8Array | string } = {}): Promise<number> {
    checkPeer(peer);
    const { link, opened } = this.#core.startTunnel(peer, tokenBytes(options.token));
    await opened;
    this.#onTunnel?.(link.index, link.physPeer);
    return link.index;
  }

  /** Open tunnels: id and physical peer. */
  tunnels(): { id: number; peer: PeerId }[] {
    const out: { id: number; peer: PeerId }[] = [];
    for (const l of this.#core.links) if (l?.phase === 'open') out.push({ id: l.index, peer: l.physPeer });
    return out;
  }

  /** The tunnel id a virtual connection rides, or -1. */
  tunnelOf(peer: PeerId): number {
    return this.peerInfo(peer) ? this.#core.table.tunnel[peer]! : -1;
  }

  /** Echo round trip over one tunnel, in ms. */
  ping(id: number, timeout = 10_000): Promise<number> {
    const link = this.#core.links[id];
    if (!link) return Promise.reject(new ConnectionClosedError(`p2pvm: no tunnel ${describe(id)}`));
    return link.echo(timeout);
  }

  /** Says goodbye on one tunnel and closes its virtual connections with reason 'local'. */
  closeTunnel(id: number): void {
    const link = this.#core.links[id];
    if (!link) return;
    if (link.phase === 'open') {
      link.writeBye();
      link.flushOut();
    }
    this.#core.closeLink(link, 'local', 'the tunnel was closed by this side');
  }

  /** A HELLO arrived: the accept policy decides. */
  #hello(link: TunnelLink, params: LinkParams, token: Buffer): void {
    link.phase = 'accepting';
    const decide = (ok: unknown) => {
      if (link.phase !== 'accepting') return;
      if (ok === true) {
        link.writeHandshake(Packet.Welcome, this.#core.ownParams, NO_TOKEN);
        this.#core.linkOpened(link, params);
        this.#onTunnel?.(link.index, link.physPeer);
      } else {
        link.writeText(Packet.Reject, 'the tunnel was not accepted');
        link.flushOut();
        this.#core.closeLink(link, 'auth', 'the accept policy refused the tunnel');
      }
    };
    let verdict: boolean | Promise<boolean>;
    try {
      verdict = this.#policy(token, link.physPeer);
    } catch {
      return decide(false);
    }
    if (verdict instanceof Promise) verdict.then(decide, () => decide(false));
    else decide(verdict);
  }
}
