/**
 * Options of the XNAT server and agent (docs/xnat.md, "Configuration"), their defaults and their
 * checks. The CLI (lib/cli/xnat.ts) builds these from flags and a JSON file.
 */
import { describe } from '../bytes.js';
import type { ServerIdentity } from '../channel/index.js';
import type { P2pvmOptions } from '../p2pvm/index.js';
import type { Endpoint, Transport } from '../transport/types.js';

/** A public port the server offers to agents. */
export interface XnatPortOptions {
  /** TCP port public clients connect to (0 picks a free one; XnatServer.ports() tells which). */
  port: number;
  /** Address to listen on (default '0.0.0.0'). */
  host?: string;
  /** Open public connections on this port at most (default 1,024); more are refused (TCP reset). */
  maxConnections?: number;
}

/** An agent the server accepts: by the fingerprint of its Ed25519 key, or by a token. */
export interface XnatAgentEntry {
  /** A name for logs and stats. */
  name: string;
  /** SHA-256 fingerprint of the agent's Ed25519 public key, 64 hex digits (`zserver keygen` prints it). */
  key?: string;
  /** A shared secret instead of a key (at least 16 characters). */
  token?: string;
  /** Public ports this agent may serve (default: every port of the server). */
  ports?: number[];
}

/** Options of new XnatServer(). */
export interface XnatServerOptions {
  /** The server's long-term identity; agents pin its fingerprint. */
  identity: ServerIdentity;
  /** Where agents connect. */
  listen: Endpoint;
  /** Public ports offered to agents. */
  ports: XnatPortOptions[];
  /** The agents accepted. */
  agents: XnatAgentEntry[];
  /** Makes the transports (default: Node net): one for agents, one (with raw streams) for public clients. */
  transport?: (role: 'agents' | 'public') => Transport;
  /** Agent connections at most (default 256); more are refused. */
  maxAgents?: number;
  /** An agent must have authenticated and be serving within this many ms of connecting (default 10,000). */
  authTimeout?: number;
  /** Opening a tunnel connection to an agent may take this long, in ms (default 10,000), else the public client is reset. */
  connectTimeout?: number;
  /** A public connection with no bytes either way for this long, in ms, is closed (default 300,000; 0 = never). */
  idleTimeout?: number;
  /** Bytes queued to one public client above which its tunnel connection stops getting credit (default 1 MiB). */
  highWaterMark?: number;
  /** P2PVM settings of the tunnels (window, fragment size, limits; docs/p2pvm.md). */
  p2pvm?: P2pvmOptions;
  /** Log lines (default: warnings and errors to stderr unless quiet). */
  log?: (level: 'info' | 'warn' | 'error', message: string) => void;
  quiet?: boolean;
}

/** One mapping an agent serves: public port → a local host:port. */
export interface XnatMapping {
  /** The server's public port. */
  publicPort: number;
  /** The local service. */
  host: string;
  port: number;
}

/** Reconnect backoff of an agent. */
export interface XnatBackoff {
  /** First delay, ms (default 250). */
  initialDelay?: number;
  /** Longest delay, ms (default 30,000). */
  maxDelay?: number;
  /** Growth per failed attempt (default 2; ±20 % jitter). */
  factor?: number;
}

/** Options of new XnatAgent(). */
export interface XnatAgentOptions {
  /** The XNAT server's agent endpoint. */
  server: Endpoint;
  /** The server identity's fingerprint (64 hex digits); a server with another identity is refused. */
  pin: string;
  /** This agent's Ed25519 private key (PKCS#8 PEM, or a 32-byte seed); or give `token`. */
  key?: string | Uint8Array;
  /** A token listed in the server's config, instead of a key. */
  token?: string;
  /** Name shown in the server's logs and stats (default: the host name). */
  name?: string;
  /** The mappings this agent serves. */
  mappings: XnatMapping[];
  /** Makes the transports (default: Node net): one to the server, one (with raw streams) to local services. */
  transport?: (role: 'server' | 'local') => Transport;
  reconnect?: XnatBackoff;
  /** Connecting to the server, and to a local service, may take this long, in ms (default 10,000). */
  connectTimeout?: number;
  /** Bytes queued to one local service above which its tunnel connection stops getting credit (default 1 MiB). */
  highWaterMark?: number;
  /** P2PVM settings of the tunnel. */
  p2pvm?: P2pvmOptions;
  log?: (level: 'info' | 'warn' | 'error', message: string) => void;
  quiet?: boolean;
}

export function checkInt(value: unknown, name: string, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(`${name} must be an integer from ${min} to ${max}, got ${describe(value)}`);
  }
  return value;
}

export function checkEndpoint(e: unknown, name: string, allowZero: boolean): Endpoint {
  if (typeof e !== 'object' || e === null) throw new TypeError(`${name} must be { host, port }, got ${describe(e)}`);
  const { host, port } = e as Endpoint;
  if (typeof host !== 'string' || host === '') throw new TypeError(`${name}.host must be a non-empty string, got ${describe(host)}`);
  checkInt(port, `${name}.port`, allowZero ? 0 : 1, 65535);
  return { host, port };
}

const HEX64 = /^[0-9a-f]{64}$/;

/** Checks the agent list of a server config (TypeError/RangeError naming the bad entry). */
export function checkAgentEntries(agents: unknown): XnatAgentEntry[] {
  if (!Array.isArray(agents)) throw new TypeError(`agents must be an array of { name, key | token }, got ${describe(agents)}`);
  return agents.map((a: XnatAgentEntry, i) => {
    const where = `agents[${i}]`;
    if (typeof a !== 'object' || a === null || typeof a.name !== 'string' || a.name === '') {
      throw new TypeError(`${where} must have a name`);
    }
    if ((a.key === undefined) === (a.token === undefined)) throw new TypeError(`${where} (${a.name}) must have exactly one of key or token`);
    if (a.key !== undefined && (typeof a.key !== 'string' || !HEX64.test(a.key.toLowerCase()))) {
      throw new TypeError(`${where}.key must be a key fingerprint, 64 hex digits (zserver keygen prints it), got ${describe(a.key)}`);
    }
    if (a.token !== undefined && (typeof a.token !== 'string' || a.token.length < 16)) {
      throw new TypeError(`${where}.token must be a string of at least 16 characters`);
    }
    if (a.ports !== undefined) {
      if (!Array.isArray(a.ports)) throw new TypeError(`${where}.ports must be an array of port numbers`);
      a.ports.forEach((p, j) => checkInt(p, `${where}.ports[${j}]`, 1, 65535));
    }
    return { ...a, ...(a.key !== undefined ? { key: a.key.toLowerCase() } : {}) };
  });
}

/** Checks an agent's mappings. */
export function checkMappings(mappings: unknown): XnatMapping[] {
  if (!Array.isArray(mappings) || mappings.length === 0) throw new TypeError(`mappings must be a non-empty array of { publicPort, host, port }, got ${describe(mappings)}`);
  const seen = new Set<number>();
  return mappings.map((m: XnatMapping, i) => {
    const where = `mappings[${i}]`;
    if (typeof m !== 'object' || m === null) throw new TypeError(`${where} must be { publicPort, host, port }`);
    checkInt(m.publicPort, `${where}.publicPort`, 1, 65535);
    checkEndpoint({ host: m.host, port: m.port }, where, false);
    if (seen.has(m.publicPort)) throw new RangeError(`${where}: public port ${m.publicPort} is mapped twice`);
    seen.add(m.publicPort);
    return { publicPort: m.publicPort, host: m.host, port: m.port };
  });
}
