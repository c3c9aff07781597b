/**
 * XnatServer: the public side of XNAT (docs/xnat.md). Agents behind NAT dial in; public clients
 * connect to the server's public ports and are carried to an agent and on to its local service.
 *
 *   public client ──TCP (raw)──▶ XnatServer ══ secure channel ══▶ XnatAgent ──TCP (raw)──▶ service
 *                                  │  one physical connection per agent:      │
 *                                  │  framework frames (control: hello,       │
 *                                  │  register, serve) and P2PVM (kind 63),   │
 *                                  │  one virtual connection per public one   │
 *
 * An agent's connection goes through the secure channel (the agent pins this server's identity),
 * then the framework commands of the control plane: `xnat.hello` gives a challenge,
 * `xnat.register` proves the agent's key (or token; auth.ts) and declares the public ports it
 * serves and the P2PVM address it listens on, then the agent opens its P2PVM tunnel over the same
 * connection (the tunnel is accepted only for registered agents) and `xnat.serve` puts it in
 * service. Each accepted public connection becomes a virtual connection to the serving agent with
 * the fewest open connections, and StreamRelay (relay.ts) moves the bytes. An agent whose
 * connection closes is out of service at once, and its public connections are reset.
 */
import { EventEmitter } from 'node:events';
import { isIPv6 } from 'node:net';
import { SecureChannel } from '../channel/index.js';
import { fingerprint } from '../channel/handshake.js';
import { ConnectionClosedError, XnatRefusedError } from '../errors.js';
import type { Peer } from '../framework/peer.js';
import { Server } from '../framework/server.js';
import { formatAddress, P2pvmHost, parseAddress } from '../p2pvm/index.js';
import { NodeNetTransport } from '../transport/node-net.js';
import type { Endpoint, PeerId, PeerInfo, Transport } from '../transport/types.js';
import { newChallenge, tokenListed, verifyChallenge } from './auth.js';
import { checkAgentEntries, checkEndpoint, checkInt, type XnatAgentEntry, type XnatServerOptions } from './options.js';
import { StreamRelay, type RelayCounters } from './relay.js';

/** Statistics of one public port. */
export interface XnatPortStats {
  port: number;
  /** Agents serving it now. */
  agents: number;
  /** Public connections open now. */
  connections: number;
  /** Public connections accepted and sent to an agent, since start. */
  accepted: number;
  /** Public connections reset because no agent served the port (or the tunnel connection failed). */
  failed: number;
  /** Bytes from public clients to agents, and back. */
  bytesIn: number;
  bytesOut: number;
}

/** Statistics of an XnatServer. */
export interface XnatServerStats {
  /** Agents in service. */
  agents: number;
  /** Agents refused (bad key, token, port or address) since start. */
  refused: number;
  ports: XnatPortStats[];
}

/** Events of an XnatServer. */
export interface XnatServerEvents {
  /** An agent is in service. */
  agent: [name: string, ports: number[]];
  /** An agent left service (its connection closed). */
  'agent-gone': [name: string, reason: string];
  /** An agent was refused; the message says why. */
  refused: [error: XnatRefusedError];
}

interface PortState extends RelayCounters {
  port: number;
  host: string;
  maxConnections: number;
  accepted: number;
  failed: number;
  agents: Set<AgentState>;
}

interface AgentState {
  name: string;
  phys: PeerId;
  address: string;
  ports: number[];
  /** Public connections this agent carries now (the balancing key). */
  open: number;
  serving: boolean;
}

/** Largest control message accepted, in characters (a register names its ports and keys). */
const MAX_CONTROL = 16 * 1024;

/** See the file comment. */
export class XnatServer extends EventEmitter<XnatServerEvents> {
  readonly #options: XnatServerOptions;
  readonly #agentsConfig: XnatAgentEntry[];
  readonly #agentNet: Transport;
  readonly #secure: SecureChannel;
  readonly #control: Server;
  readonly #host: P2pvmHost;
  readonly #public: Transport;
  readonly #relay: StreamRelay;
  /** Challenges given, by physical peer, until register. */
  readonly #challenges = new Map<PeerId, Buffer>();
  readonly #agents = new Map<PeerId, AgentState>();
  readonly #ports = new Map<number, PortState>();
  readonly #authTimers = new Map<PeerId, NodeJS.Timeout>();
  readonly #connectTimeout: number;
  readonly #authTimeout: number;
  readonly #maxAgents: number;
  #refused = 0;
  #closed = false;

  constructor(options: XnatServerOptions) {
    super();
    if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object');
    if (options.identity === undefined) throw new TypeError('options.identity is required (ServerIdentity.from(key))');
    checkEndpoint(options.listen, 'options.listen', true);
    if (!Array.isArray(options.ports) || options.ports.length === 0) throw new TypeError('options.ports must list at least one public port');
    this.#agentsConfig = checkAgentEntries(options.agents);
    this.#connectTimeout = checkInt(options.connectTimeout ?? 10_000, 'options.connectTimeout', 1, 2 ** 31 - 1);
    this.#authTimeout = checkInt(options.authTimeout ?? 10_000, 'options.authTimeout', 1, 2 ** 31 - 1);
    this.#maxAgents = checkInt(options.maxAgents ?? 256, 'options.maxAgents', 1, 65_536);
    const idleTimeout = checkInt(options.idleTimeout ?? 300_000, 'options.idleTimeout', 0, 2 ** 31 - 1);
    this.#options = options;
    const make = options.transport ?? (() => new NodeNetTransport());
    this.#agentNet = make('agents');
    this.#public = make('public');
    if (this.#public.rawStreams !== true) throw new TypeError(`the public transport (${this.#public.name}) has no raw streams`);
    this.#secure = new SecureChannel(this.#agentNet, { identity: options.identity });
    this.#control = new Server({ quiet: options.quiet ?? false, ...(options.log ? { log: options.log } : {}) });
    this.#host = new P2pvmHost(this.#secure, {
      ...options.p2pvm,
      // Only an agent that authenticated over the control plane may open its tunnel.
      accept: (_token, phys) => this.#agents.has(phys),
      onTunnelClose: (_id, phys, close) => this.#agentGone(phys, `tunnel closed: ${close.detail}`),
    });
    this.#relay = new StreamRelay(this.#public, this.#host, { idleTimeout, closesTunnel: true });
    this.#public.on('open', (peer, info) => this.#publicOpen(peer, info));
    this.#control.console('xnat.hello', (_text, peer) => this.#hello(peer));
    this.#control.console('xnat.register', (text, peer) => this.#register(text, peer));
    this.#control.console('xnat.serve', (_text, peer) => this.#serve(peer));
    this.#control.on('connect', (peer) => this.#agentConnected(peer));
    this.#control.on('disconnect', (peer, _reason, detail) => this.#agentGone(peer.transportPeer, detail));
  }

  /** Listens for agents and on every public port; resolves to the agents' endpoint. */
  async start(): Promise<Endpoint> {
    for (const [i, p] of this.#options.ports.entries()) {
      checkEndpoint({ host: p.host ?? '0.0.0.0', port: p.port }, `options.ports[${i}]`, true);
      const maxConnections = checkInt(p.maxConnections ?? 1024, `options.ports[${i}].maxConnections`, 1, 65_536);
      const bound = await this.#public.listen(
        { host: p.host ?? '0.0.0.0', port: p.port },
        {
          raw: true,
          maxConnections,
          idleTimeout: 0, // the relay times out idle pairs, counting bytes both ways
          ...(this.#options.highWaterMark !== undefined ? { highWaterMark: this.#options.highWaterMark } : {}),
        },
      );
      this.#ports.set(bound.port, { port: bound.port, host: bound.host, maxConnections, accepted: 0, failed: 0, open: 0, bytesIn: 0, bytesOut: 0, agents: new Set() });
    }
    const ep = await this.#control.listen(this.#secure, this.#options.listen);
    return ep.address;
  }

  /** The bound public ports, in the order of options.ports. */
  ports(): number[] {
    return [...this.#ports.keys()];
  }

  /** The server identity's fingerprint, which agents pin. */
  get fingerprint(): string {
    return this.#options.identity.fingerprint;
  }

  /** Counters per public port and of agents (docs/xnat.md, "Stats"). */
  stats(): XnatServerStats {
    return {
      agents: [...this.#agents.values()].filter((a) => a.serving).length,
      refused: this.#refused,
      ports: [...this.#ports.values()].map((p) => ({
        port: p.port,
        agents: p.agents.size,
        connections: p.open,
        accepted: p.accepted,
        failed: p.failed,
        bytesIn: p.bytesIn,
        bytesOut: p.bytesOut,
      })),
    };
  }

  /**
   * The framework Server of the control plane (agents are its peers): with `xnat: this` it is what
   * lib/metrics' takeSnapshot() reads for the zserver_xnat_* series (zserver xnat server --metrics).
   */
  get control(): Server {
    return this.#control;
  }

  /** The P2PVM host the tunnels ride (its stats() show queued bytes per tunnel, for monitoring). */
  get tunnels(): P2pvmHost {
    return this.#host;
  }

  /** Resets every public connection, disconnects every agent and stops listening. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const t of this.#authTimers.values()) clearTimeout(t);
    this.#authTimers.clear();
    this.#relay.dispose();
    await this.#public.shutdown();
    await this.#host.shutdown();
    await this.#control.close();
  }

  #log(level: 'info' | 'warn' | 'error', message: string): void {
    if (this.#options.log) this.#options.log(level, message);
    else if (!this.#options.quiet && level !== 'info') process.stderr.write(`xnat server: ${message}\n`);
  }

  #agentConnected(peer: Peer): void {
    const phys = peer.transportPeer;
    if (this.#control.count > this.#maxAgents) {
      this.#log('warn', `agent connection from ${peer.info.remoteAddress} refused: ${this.#maxAgents} agent connections (maxAgents) are open`);
      peer.close(true);
      return;
    }
    // An agent that does not authenticate and start serving in time is dropped: an unknown
    // client holds a connection slot for authTimeout at most.
    const timer = setTimeout(() => {
      this.#authTimers.delete(phys);
      if (this.#agents.get(phys)?.serving) return;
      this.#log('warn', `an agent connection from ${peer.info.remoteAddress} did not authenticate within ${this.#authTimeout} ms; closed`);
      peer.close(true);
    }, this.#authTimeout);
    timer.unref();
    this.#authTimers.set(phys, timer);
  }

  #hello(peer: Peer): string {
    if (this.#agents.has(peer.transportPeer)) throw new XnatRefusedError('this connection is registered already');
    const challenge = newChallenge();
    this.#challenges.set(peer.transportPeer, challenge);
    return JSON.stringify({ challenge: challenge.toString('hex') });
  }

  #refuse(peer: Peer, message: string): never {
    this.#refused++;
    const err = new XnatRefusedError(`xnat server refused the agent from ${peer.info.remoteAddress}: ${message}`);
    this.#log('warn', err.message);
    this.emit('refused', err);
    // Close once the answer is on its way: a refused agent gets no second try on this connection.
    setImmediate(() => peer.close(false));
    throw new XnatRefusedError(message);
  }

  #register(text: string, peer: Peer): string {
    const phys = peer.transportPeer;
    const challenge = this.#challenges.get(phys);
    this.#challenges.delete(phys);
    if (challenge === undefined) this.#refuse(peer, 'xnat.register came without xnat.hello first');
    if (text.length > MAX_CONTROL) this.#refuse(peer, `the register message is longer than ${MAX_CONTROL} characters`);
    let msg: { name?: unknown; key?: unknown; signature?: unknown; token?: unknown; address?: unknown; ports?: unknown };
    try {
      msg = JSON.parse(text) as typeof msg;
    } catch {
      this.#refuse(peer, 'the register message is not JSON');
    }
    let entry: XnatAgentEntry | undefined;
    if (typeof msg.key === 'string' && typeof msg.signature === 'string') {
      const key = Buffer.from(msg.key, 'base64');
      const fp = fingerprint(key);
      entry = this.#agentsConfig.find((a) => a.key === fp);
      if (entry === undefined) this.#refuse(peer, `agent key ${fp} is not listed in the server's agents`);
      if (!verifyChallenge(key, Buffer.from(msg.signature, 'base64'), challenge, this.fingerprint)) {
        this.#refuse(peer, `the signature of agent key ${fp} (${entry.name}) does not verify`);
      }
    } else if (typeof msg.token === 'string') {
      const given = msg.token;
      entry = this.#agentsConfig.find((a) => a.token !== undefined && tokenListed(given, [a.token]));
      if (entry === undefined) this.#refuse(peer, 'the agent token is not listed in the server\'s agents');
    } else {
      this.#refuse(peer, 'the agent gave neither a key and signature nor a token');
    }
    const ports = msg.ports;
    if (!Array.isArray(ports) || ports.length === 0 || ports.length > 1024 || !ports.every((p) => Number.isInteger(p))) {
      this.#refuse(peer, 'ports must be a non-empty list of public port numbers');
    }
    for (const p of ports as number[]) {
      if (!this.#ports.has(p)) this.#refuse(peer, `public port ${p} is not offered by this server (it offers ${this.ports().join(', ')})`);
      if (entry.ports !== undefined && !entry.ports.includes(p)) this.#refuse(peer, `agent ${entry.name} may not serve public port ${p}`);
    }
    const bytes = typeof msg.address === 'string' && isIPv6(msg.address) ? parseAddress(msg.address) : null;
    if (bytes === null) this.#refuse(peer, 'address must be an IPv6 address (the agent\'s P2PVM listen address)');
    // The form P2PVM reports listen entries in, so serve can find them.
    const address = formatAddress(bytes);
    for (const a of this.#agents.values()) if (a.address === address) this.#refuse(peer, `address ${address} is taken by agent ${a.name}`);
    const name = typeof msg.name === 'string' && msg.name.length <= 128 ? `${entry.name}/${msg.name}` : entry.name;
    this.#agents.set(phys, { name, phys, address, ports: [...new Set(ports as number[])], open: 0, serving: false });
    return JSON.stringify({ ok: true, name });
  }

  /** The agent's tunnel is open and its listen entries pushed: it takes public connections from now on. */
  #serve(peer: Peer): string {
    const agent = this.#agents.get(peer.transportPeer);
    if (agent === undefined) throw new XnatRefusedError('xnat.serve before a successful xnat.register');
    if (agent.serving) return JSON.stringify({ ok: true });
    const listening = new Set(this.#host.remoteListeners().map((e) => `${e.host}|${e.port}`));
    for (const p of agent.ports) {
      if (!listening.has(`${agent.address}|${p}`)) throw new XnatRefusedError(`the agent's tunnel does not listen on [${agent.address}]:${p}; open the tunnel and listen first`);
    }
    agent.serving = true;
    for (const p of agent.ports) this.#ports.get(p)!.agents.add(agent);
    clearTimeout(this.#authTimers.get(agent.phys));
    this.#authTimers.delete(agent.phys);
    this.#log('info', `agent ${agent.name} serves public port(s) ${agent.ports.join(', ')}`);
    this.emit('agent', agent.name, agent.ports);
    return JSON.stringify({ ok: true });
  }

  #agentGone(phys: PeerId, reason: string): void {
    this.#challenges.delete(phys);
    clearTimeout(this.#authTimers.get(phys));
    this.#authTimers.delete(phys);
    const agent = this.#agents.get(phys);
    if (agent === undefined) return;
    this.#agents.delete(phys);
    for (const p of agent.ports) this.#ports.get(p)?.agents.delete(agent);
    // Its virtual connections close with the tunnel (P2PVM resets them), and the relay resets
    // their public clients. Closing the physical peer makes sure the tunnel is gone too.
    try {
      this.#secure.close(phys, true);
    } catch (err) {
      if (!(err instanceof ConnectionClosedError)) throw err;
    }
    if (agent.serving) {
      this.#log('info', `agent ${agent.name} left: ${reason}`);
      this.emit('agent-gone', agent.name, reason);
    }
  }

  #publicOpen(peer: PeerId, info: PeerInfo): void {
    const port = this.#ports.get(info.localPort);
    if (port === undefined) {
      this.#public.close(peer, true);
      return;
    }
    let best: AgentState | undefined;
    for (const a of port.agents) if (best === undefined || a.open < best.open) best = a;
    if (best === undefined) {
      port.failed++;
      this.#public.close(peer, true);
      return;
    }
    const agent = best;
    port.accepted++;
    agent.open++;
    const pending = this.#relay.beginFromRaw(peer, port, () => agent.open--);
    this.#host.connect({ host: agent.address, port: port.port }, { timeout: this.#connectTimeout }).then(
      (v) => this.#relay.attach(pending, v),
      (err: Error) => {
        port.failed++;
        this.#log('warn', `public connection to port ${port.port}: agent ${agent.name} did not take it: ${err.message}`);
        this.#relay.fail(pending);
      },
    );
  }
}
