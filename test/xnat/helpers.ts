/**
 * Shared set-up of the XNAT tests: a server with one identity, agents with keys or tokens, a
 * local HTTP service, and small HTTP/TCP helpers. Everything on 127.0.0.1 with free ports.
 */
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import { ServerIdentity } from '../../lib/channel/index.js';
import { NodeNetTransport } from '../../lib/transport/node-net.js';
import type { Transport } from '../../lib/transport/types.js';
import { loadAgentKey, XnatAgent, XnatServer, type XnatAgentOptions, type XnatServerOptions } from '../../lib/xnat/index.js';

export const identity = ServerIdentity.from(randomBytes(32));
export const TOKEN = 'a-token-of-at-least-16-chars';

/**
 * The transport under test: Node net by default; ZS_XNAT_TRANSPORT=native runs the same tests on
 * the native TCP transport (it needs raw streams there).
 */
const Native = process.env.ZS_XNAT_TRANSPORT === 'native' ? (await import('../../lib/transport/native-tcp.js')).NativeTcpTransport : undefined;
export function makeTransport(): Transport {
  return Native ? new Native() : new NodeNetTransport();
}

export interface Rig {
  server: XnatServer;
  agentPort: number;
  ports: number[];
}

/** An XNAT server offering `n` public ports (free ones), accepting the given agents. */
export async function startServer(agents: XnatServerOptions['agents'], n = 1, extra: Partial<XnatServerOptions> = {}): Promise<Rig> {
  const server = new XnatServer({
    identity,
    listen: { host: '127.0.0.1', port: 0 },
    ports: Array.from({ length: n }, () => ({ host: '127.0.0.1', port: 0 })),
    agents,
    quiet: true,
    transport: makeTransport,
    ...extra,
  });
  const at = await server.start();
  return { server, agentPort: at.port, ports: server.ports() };
}

/** A fresh agent key (seed) and the fingerprint to list on the server. */
export function agentKey(): { seed: Buffer; fingerprint: string } {
  const seed = randomBytes(32);
  return { seed, fingerprint: loadAgentKey(seed).fingerprint };
}

export function makeAgent(rig: Rig, options: Partial<XnatAgentOptions> & Pick<XnatAgentOptions, 'mappings'>): XnatAgent {
  return new XnatAgent({
    server: { host: '127.0.0.1', port: rig.agentPort },
    pin: identity.fingerprint,
    quiet: true,
    reconnect: { initialDelay: 50, maxDelay: 200 },
    transport: makeTransport,
    ...options,
  });
}

/** A local HTTP service answering `<tag> <path>`; resolves to its port. */
export async function httpService(tag: string): Promise<{ server: http.Server; port: number }> {
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => res.end(`${tag} ${req.url} ${Buffer.concat(chunks).length}`));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: (server.address() as net.AddressInfo).port };
}

/** One HTTP GET on a new connection; resolves to the body. */
export function get(port: number, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, agent: false, timeout: 10_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve(Buffer.concat(chunks).toString()));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

export async function until(cond: () => boolean, ms = 5000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`${what} not met within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

export function closeHttp(server: http.Server | net.Server): Promise<void> {
  (server as http.Server).closeAllConnections?.();
  return new Promise((r) => server.close(() => r()));
}
