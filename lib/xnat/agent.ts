/**
 * XnatAgent: the private side of XNAT (docs/xnat.md). It dials out to an XnatServer through the
 * secure channel (pinning the server's identity), authenticates (auth.ts), declares the public
 * ports it serves, opens a P2PVM tunnel over the same connection and listens there on one
 * (address, public port) entry per mapping. Each virtual connection the server opens to such an
 * entry is joined (StreamRelay, relay.ts) to a new raw TCP connection to the mapping's local
 * service. When the connection to the server is lost, every local connection is reset and the
 * agent dials again with backoff; a refusal by the server (wrong key or token, a port it does not
 * offer) stops it instead, because trying again would not help.
 *
 * Each session listens on a fresh random address (fd00::/8), so a server never confuses a new
 * session of an agent with its old one, nor one agent with another.
 */
import { EventEmitter } from 'node:events';
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { SecureChannel } from '../channel/index.js';
import { ConnectionClosedError, HandshakeError, RemoteError, XnatRefusedError } from '../errors.js';
import { Client } from '../framework/client.js';
import { P2pvmTunnel } from '../p2pvm/index.js';
import { NodeNetTransport } from '../transport/node-net.js';
import type { PeerId, PeerInfo, Transport } from '../transport/types.js';
import { loadAgentKey, signChallenge, type AgentKey } from './auth.js';
import { checkEndpoint, checkInt, checkMappings, type XnatAgentOptions, type XnatMapping } from './options.js';
import { StreamRelay, type RelayCounters } from './relay.js';

/** Events of an XnatAgent. */
export interface XnatAgentEvents {
  /** Connected, authenticated and in service (again). */
  serving: [name: string];
  /** The session ended (connection lost or failed); the agent retries after `delay` ms. */
  down: [error: Error, delay: number];
  /** The server refused this agent; the agent stopped. */
  refused: [error: XnatRefusedError];
}

/** Counters of an agent. */
export interface XnatAgentStats extends RelayCounters {
  /** Sessions (connections to the server that reached service). */
  sessions: number;
  /** Virtual connections whose local service could not be reached. */
  localFailures: number;
}

const HEX64 = /^[0-9a-f]{64}$/;
/** Silence from the server after which the agent redials (the server pings every 30 s). */
const SERVER_SILENCE_MS = 95_000;

/** A random unique-local IPv6 address (fd00::/8) for one session's listen entries. */
function sessionAddress(): string {
  const b = randomBytes(16);
  b[0] = 0xfd;
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(b.readUInt16BE(i).toString(16));
  return groups.join(':');
}

/** See the file comment. */
export class XnatAgent extends EventEmitter<XnatAgentEvents> {
  readonly #options: XnatAgentOptions;
  readonly #key: AgentKey | undefined;
  readonly #mappings: XnatMapping[];
  readonly #byPort = new Map<number, XnatMapping>();
  readonly #connectTimeout: number;
  readonly #stats: XnatAgentStats = { open: 0, bytesIn: 0, bytesOut: 0, sessions: 0, localFailures: 0 };
  #stopped = false;
  #running: Promise<void> | undefined;
  /** Ends the current session (set while one runs). */
  #endSession: ((err: Error) => void) | undefined;
  #sleep: { timer: NodeJS.Timeout; wake: () => void } | undefined;
  #firstServing: { resolve: () => void; reject: (e: Error) => void } | undefined;

  constructor(options: XnatAgentOptions) {
    super();
    if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object');
    checkEndpoint(options.server, 'options.server', false);
    if (typeof options.pin !== 'string' || !HEX64.test(options.pin.toLowerCase())) {
      throw new TypeError(`options.pin must be the server's fingerprint, 64 hex digits (zserver keygen and zserver xnat server print it), got ${String(options.pin)}`);
    }
    if ((options.key === undefined) === (options.token === undefined)) throw new TypeError('give exactly one of options.key (Ed25519 private key) or options.token');
    this.#key = options.key !== undefined ? loadAgentKey(options.key) : undefined;
    this.#mappings = checkMappings(options.mappings);
    for (const m of this.#mappings) this.#byPort.set(m.publicPort, m);
    this.#connectTimeout = checkInt(options.connectTimeout ?? 10_000, 'options.connectTimeout', 1, 2 ** 31 - 1);
    this.#options = options;
  }

  /** The fingerprint of this agent's key (to list in the server's config), or undefined with a token. */
  get fingerprint(): string | undefined {
    return this.#key?.fingerprint;
  }

  /**
   * Starts the agent: resolves once it serves for the first time; rejects with XnatRefusedError
   * when the server refuses it (the agent then stops). Connection failures do not reject: the
   * agent keeps dialling with backoff ('down' events) until stop().
   */
  start(): Promise<void> {
    if (this.#running) throw new TypeError('the agent was started already');
    const first = new Promise<void>((resolve, reject) => (this.#firstServing = { resolve, reject }));
    this.#running = this.#loop();
    return first;
  }

  /** Stops the agent: the current session ends (local connections reset) and no new one starts. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#endSession?.(new ConnectionClosedError('the agent was stopped'));
    if (this.#sleep) {
      clearTimeout(this.#sleep.timer);
      this.#sleep.wake();
    }
    await this.#running;
  }

  /** Counters of local connections and sessions. */
  stats(): XnatAgentStats {
    return { ...this.#stats };
  }

  #log(level: 'info' | 'warn' | 'error', message: string): void {
    if (this.#options.log) this.#options.log(level, message);
    else if (!this.#options.quiet && level !== 'info') process.stderr.write(`xnat agent: ${message}\n`);
  }

  async #loop(): Promise<void> {
    const r = this.#options.reconnect ?? {};
    const initial = checkInt(r.initialDelay ?? 250, 'reconnect.initialDelay', 1, 2 ** 31 - 1);
    const max = checkInt(r.maxDelay ?? 30_000, 'reconnect.maxDelay', initial, 2 ** 31 - 1);
    const factor = r.factor ?? 2;
    let delay = initial;
    while (!this.#stopped) {
      let served = false;
      const err = await this.#session(() => {
        served = true;
      });
      if (this.#stopped) break;
      if (err instanceof XnatRefusedError) {
        this.#stopped = true;
        this.#log('error', err.message);
        this.emit('refused', err);
        this.#firstServing?.reject(err);
        this.#firstServing = undefined;
        break;
      }
      if (served) delay = initial;
      const wait = Math.round(delay * (0.8 + 0.4 * Math.random()));
      this.#log('warn', `${err.message}; reconnecting in ${wait} ms`);
      this.emit('down', err, wait);
      await new Promise<void>((wake) => {
        const timer = setTimeout(wake, wait);
        this.#sleep = { timer, wake };
      });
      this.#sleep = undefined;
      delay = Math.min(max, delay * factor);
    }
    this.#firstServing?.reject(new ConnectionClosedError('the agent was stopped before it served'));
    this.#firstServing = undefined;
  }

  /** One connection to the server, from dial to loss; resolves to why it ended. */
  async #session(onServing: () => void): Promise<Error> {
    const make = this.#options.transport ?? (() => new NodeNetTransport());
    const net = make('server');
    const local = make('local');
    const secure = new SecureChannel(net, { pin: this.#options.pin.toLowerCase() });
    const client = new Client({
      transport: secure,
      host: this.#options.server.host,
      port: this.#options.server.port,
      reconnect: false,
      quiet: true,
      connectTimeout: this.#connectTimeout,
      // The server pings an agent every 30 s: hearing nothing for 95 s means the server or the
      // network is gone without a FIN or RST (a dropped route, a NAT entry expired), so redial.
      idleTimeout: SERVER_SILENCE_MS,
    });
    let relay: StreamRelay | undefined;
    let tunnel: P2pvmTunnel | undefined;
    // This session's own resolver: events of an old session's objects must not end a newer one.
    let endThis: (err: Error) => void = () => {};
    const ended = new Promise<Error>((resolve) => (endThis = resolve));
    this.#endSession = endThis;
    client.on('disconnect', (_reason, detail) => endThis(new ConnectionClosedError(`connection to the server lost: ${detail}`)));
    const stopped = () => {
      if (this.#stopped) throw new ConnectionClosedError('the agent was stopped');
    };
    try {
      const peer = await client.connect();
      stopped();
      const phys = peer.transportPeer;
      const { challenge } = JSON.parse(await client.callConsole('xnat.hello', '')) as { challenge: string };
      const serverFp = secure.remoteFingerprint(phys);
      if (serverFp === undefined) throw new HandshakeError('the secure channel did not report the server fingerprint');
      const address = sessionAddress();
      const auth = this.#key
        ? { key: this.#key.publicKey.toString('base64'), signature: signChallenge(this.#key, Buffer.from(challenge, 'hex'), serverFp).toString('base64') }
        : { token: this.#options.token };
      const name = this.#options.name ?? hostname();
      await client.callConsole('xnat.register', JSON.stringify({ name, ...auth, address, ports: this.#mappings.map((m) => m.publicPort) }));
      stopped();
      tunnel = await P2pvmTunnel.open(secure, phys, this.#options.p2pvm ?? {});
      relay = new StreamRelay(local, tunnel, { idleTimeout: 0, closesTunnel: false });
      const t = tunnel;
      const rl = relay;
      t.on('open', (v, info) => this.#virtualOpen(t, local, rl, v, info));
      for (const m of this.#mappings) await t.listen({ host: address, port: m.publicPort });
      // The echo round trip makes sure the listen entries reached the server before serve.
      await t.ping(this.#connectTimeout);
      await client.callConsole('xnat.serve', '');
      void t.closed().then((c) => endThis(new ConnectionClosedError(`tunnel closed: ${c.detail}`)));
      stopped();
      this.#stats.sessions++;
      onServing();
      this.#log('info', `serving public port(s) ${this.#mappings.map((m) => m.publicPort).join(', ')} as ${name}`);
      this.emit('serving', name);
      this.#firstServing?.resolve();
      this.#firstServing = undefined;
      return await ended;
    } catch (err) {
      if (err instanceof RemoteError && err.remoteCode === 'ZS_XNAT_REFUSED') return new XnatRefusedError(`the server refused this agent: ${err.message}`);
      return err instanceof Error ? err : new Error(String(err));
    } finally {
      this.#endSession = undefined;
      relay?.dispose();
      await local.shutdown();
      await client.close().catch(() => {});
      await tunnel?.shutdown();
      await secure.shutdown();
    }
  }

  /** The server opened a virtual connection for a public client: connect it to the local service. */
  #virtualOpen(tunnel: P2pvmTunnel, local: Transport, relay: StreamRelay, v: PeerId, info: PeerInfo): void {
    if (!info.accepted) return;
    const m = this.#byPort.get(info.localPort);
    if (m === undefined) {
      tunnel.close(v, true);
      return;
    }
    const pending = relay.beginFromTunnel(v, this.#stats);
    const hwm = this.#options.highWaterMark ?? 1024 * 1024;
    local
      .connect(
        { host: m.host, port: m.port },
        // The queue to the service holds at most highWaterMark plus one P2PVM window in flight.
        { raw: true, timeout: this.#connectTimeout, highWaterMark: hwm, maxSendQueue: hwm + 8 * 1024 * 1024 },
      )
      .then(
        (r) => relay.attachRaw(pending, r),
        (err: Error) => {
          this.#stats.localFailures++;
          this.#log('warn', `local service ${m.host}:${m.port} (public port ${m.publicPort}): ${err.message}`);
          relay.fail(pending);
        },
      );
  }
}
