/**
 * `zserver xnat server` and `zserver xnat agent` (docs/xnat.md): reach services behind NAT through
 * an encrypted tunnel. Both take flags and/or a JSON config file (--config); flags win over the
 * file. Paths in a config file are relative to the file. Each runs until SIGINT or SIGTERM.
 */
import { readFileSync } from 'node:fs';
import { createServer, type Server as HttpServer } from 'node:http';
import { PROMETHEUS_CONTENT_TYPE, renderPrometheus } from '../metrics/prometheus.js';
import { takeSnapshot } from '../metrics/snapshot.js';
import { dirname, resolve } from 'node:path';
import { ServerIdentity } from '../channel/index.js';
import { NativeLoadError } from '../errors.js';
import { native } from '../native.js';
import { NodeNetTransport } from '../transport/node-net.js';
import type { Transport } from '../transport/types.js';
import { XnatAgent, XnatServer, type XnatAgentEntry, type XnatMapping, type XnatPortOptions } from '../xnat/index.js';

const SERVER_HELP = `Usage: zserver xnat server [--config file.json] [options]

Runs the public side of XNAT: agents dial in (secure channel, this server's pinned identity,
each agent authenticated by its Ed25519 key or a token); every TCP connection to a public port
is carried through an agent to its local service.

Options (flags win over the config file's fields of the same name):
  --config FILE          JSON: { "key", "listen", "ports", "agents", "idleTimeout", "connectTimeout", "maxAgents", "metrics", "transport" }
  --key FILE             server identity, PKCS#8 PEM (zserver keygen --out FILE); its fingerprint is printed
  --listen HOST:PORT     where agents connect (default 0.0.0.0:7000)
  --port [HOST:]PORT[/MAX]   a public port offered to agents (repeatable); MAX: connections at most (default 1024)
  --agent NAME=FINGERPRINT   accept the agent whose key has this fingerprint (repeatable)
  --agent-token NAME=TOKEN   accept the agent presenting this token, 16+ characters (repeatable)
  --idle-timeout MS      close a public connection idle both ways this long (default 300000; 0 = never)
  --metrics HOST:PORT    serve Prometheus text at http://HOST:PORT/metrics (zserver_xnat_* per port)
  --transport T          native or node-net (default: native where the addon loads, else node-net)
  --quiet                print nothing but errors

Examples:
  zserver keygen --out server.key                      # prints the fingerprint agents pin
  zserver xnat server --key server.key --listen 0.0.0.0:7000 \\
      --port 8080 --port 2222/16 --agent home=<agent key fingerprint>

  Config file (xnat-server.json):
    { "key": "server.key", "listen": "0.0.0.0:7000",
      "ports": [8080, { "port": 2222, "maxConnections": 16 }],
      "agents": [ { "name": "home", "key": "<fingerprint>" },
                  { "name": "ci", "token": "<a long random token>", "ports": [8080] } ] }
`;

const AGENT_HELP = `Usage: zserver xnat agent [--config file.json] [options]

Runs the private side of XNAT: dials out to an XNAT server (reconnecting with backoff),
declares the public ports it serves, and connects every connection the server sends to the
local service of that port.

Options (flags win over the config file's fields of the same name):
  --config FILE          JSON: { "server", "pin", "key" | "token", "name", "mappings", "transport" }
  --server HOST:PORT     the XNAT server's agent endpoint
  --pin FINGERPRINT      the server identity's fingerprint (zserver xnat server prints it)
  --key FILE             this agent's Ed25519 key, PKCS#8 PEM (zserver keygen --out FILE)
  --token TOKEN          a token listed in the server's config, instead of a key
  --map PUBLIC=HOST:PORT a mapping: public port on the server -> local service (repeatable)
  --name NAME            shown in the server's logs (default: the host name)
  --transport T          native or node-net (default: native where the addon loads, else node-net)
  --quiet                print nothing but errors

Examples:
  # Expose a local HTTP server on port 80 as the server's port 8080:
  zserver keygen --out agent.key                       # list the printed fingerprint on the server
  zserver xnat agent --server xnat.example.com:7000 --pin <server fingerprint> \\
      --key agent.key --map 8080=127.0.0.1:80
  curl http://xnat.example.com:8080/

  # Expose this machine's SSH server as the server's port 2222:
  zserver xnat agent --server xnat.example.com:7000 --pin <server fingerprint> \\
      --key agent.key --map 2222=127.0.0.1:22
  ssh -p 2222 user@xnat.example.com

  Config file (xnat-agent.json):
    { "server": "xnat.example.com:7000", "pin": "<fingerprint>", "key": "agent.key",
      "mappings": ["8080=127.0.0.1:80", "2222=127.0.0.1:22"] }
`;

/** `zserver xnat <server|agent> ...` */
export async function runXnat(args: string[]): Promise<number> {
  const [role, ...rest] = args;
  if (role === 'server') return runServer(rest);
  if (role === 'agent') return runAgent(rest);
  const help = `Usage: zserver xnat server|agent [--help]\n\n${SERVER_HELP}\n${AGENT_HELP}`;
  if (role === undefined || role === '--help' || role === '-h') {
    process.stdout.write(help);
    return role === undefined ? 2 : 0;
  }
  process.stderr.write(`zserver xnat: unknown role '${role}': use 'server' or 'agent' (zserver xnat --help)\n`);
  return 2;
}

/** Errors in the command line or the config file: printed with a pointer to --help. */
const usageErrors = new WeakSet<Error>();
function usageError(message: string): Error {
  const err = new Error(message);
  usageErrors.add(err);
  return err;
}

/** Parsed flags: repeatable ones as lists, the others as the last value given. */
function parseFlags(args: string[], single: readonly string[], repeat: readonly string[], bools: readonly string[]): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (!a.startsWith('--')) throw usageError(`unexpected argument '${a}'`);
    const eq = a.indexOf('=');
    const name = eq > 0 ? a.slice(2, eq) : a.slice(2);
    if (bools.includes(name)) {
      out.set(name, ['true']);
      continue;
    }
    if (!single.includes(name) && !repeat.includes(name)) throw usageError(`unknown option '--${name}'`);
    const value = eq > 0 ? a.slice(eq + 1) : args[++i];
    if (value === undefined) throw usageError(`--${name} needs a value`);
    if (repeat.includes(name)) out.set(name, [...(out.get(name) ?? []), value]);
    else out.set(name, [value]);
  }
  return out;
}

function hostPort(text: string, what: string, defaultHost?: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(text) ?? (defaultHost !== undefined ? /^()()(\d+)$/.exec(text) : null);
  if (!m) throw usageError(`${what} must be HOST:PORT, got '${text}'`);
  const port = Number(m[3]);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw usageError(`${what}: bad port in '${text}'`);
  return { host: m[1] || m[2] || defaultHost!, port };
}

function readConfig(path: string | undefined): { config: Record<string, unknown>; base: string } {
  if (path === undefined) return { config: {}, base: process.cwd() };
  const file = resolve(path);
  let config: unknown;
  try {
    config = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw usageError(`cannot read the config file ${file}: ${(err as Error).message}`);
  }
  if (typeof config !== 'object' || config === null || Array.isArray(config)) throw usageError(`${file} must hold a JSON object`);
  return { config: config as Record<string, unknown>, base: dirname(file) };
}

function readKeyFile(path: string, base: string, what: string): string {
  const file = resolve(base, path);
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw usageError(`cannot read ${what} ${file}: ${(err as Error).message}`);
  }
}

function parsePort(text: string): XnatPortOptions {
  const m = /^(?:(.+):)?(\d+)(?:\/(\d+))?$/.exec(text);
  if (!m) throw usageError(`--port must be [HOST:]PORT[/MAX], got '${text}'`);
  return { port: Number(m[2]), ...(m[1] ? { host: m[1] } : {}), ...(m[3] ? { maxConnections: Number(m[3]) } : {}) };
}

function parseMapping(text: string): XnatMapping {
  const m = /^(\d+)=(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(text);
  if (!m) throw usageError(`a mapping must be PUBLICPORT=HOST:PORT (for example 8080=127.0.0.1:80), got '${text}'`);
  return { publicPort: Number(m[1]), host: m[2] ?? m[3]!, port: Number(m[4]) };
}

function nameValue(text: string, flag: string): [string, string] {
  const eq = text.indexOf('=');
  if (eq <= 0) throw usageError(`${flag} must be NAME=VALUE, got '${text}'`);
  return [text.slice(0, eq), text.slice(eq + 1)];
}

/** The transports XNAT runs on (both have raw streams). */
export type XnatTransportName = 'native' | 'node-net';

/**
 * The transport maker of `--transport` (or the config's "transport"): the native TCP transport
 * where its addon loads (the native loop reads, writes and seals in C++), else Node net. Checked
 * once here, so a missing addon is a fallback at start, not a failure per connection.
 */
async function transportMaker(choice: unknown): Promise<{ name: XnatTransportName; make: () => Transport }> {
  if (choice !== undefined && choice !== 'native' && choice !== 'node-net') {
    throw usageError(`--transport must be 'native' or 'node-net', got '${String(choice)}'`);
  }
  if (choice === 'node-net') return { name: 'node-net', make: () => new NodeNetTransport() };
  try {
    native();
  } catch (err) {
    if (!(err instanceof NativeLoadError)) throw err;
    if (choice === 'native') throw usageError(`--transport native: ${err.message}`);
    return { name: 'node-net', make: () => new NodeNetTransport() };
  }
  const { NativeTcpTransport } = await import('../transport/native-tcp.js');
  return { name: 'native', make: () => new NativeTcpTransport() };
}

/** Runs until SIGINT/SIGTERM, then `stop()`. */
function untilSignal(stop: () => Promise<void>): Promise<number> {
  return new Promise((resolveExit) => {
    const onSignal = () => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      void stop().then(() => resolveExit(0));
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
}

async function runServer(args: string[]): Promise<number> {
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(SERVER_HELP);
    return 0;
  }
  let server: XnatServer;
  let quiet: boolean;
  let transport: { name: XnatTransportName; make: () => Transport };
  let metricsAt: { host: string; port: number } | undefined;
  try {
    const flags = parseFlags(args, ['config', 'key', 'listen', 'idle-timeout', 'metrics', 'transport'], ['port', 'agent', 'agent-token'], ['quiet']);
    const { config, base } = readConfig(flags.get('config')?.[0]);
    transport = await transportMaker(flags.get('transport')?.[0] ?? config.transport);
    quiet = flags.has('quiet') || config.quiet === true;
    const metricsText = flags.get('metrics')?.[0] ?? (typeof config.metrics === 'string' ? config.metrics : undefined);
    metricsAt = metricsText !== undefined ? hostPort(metricsText, '--metrics') : undefined;
    const keyPath = flags.get('key')?.[0] ?? (config.key as string | undefined);
    if (keyPath === undefined) throw usageError('the server identity is required: --key FILE (make one with zserver keygen --out FILE)');
    const identity = ServerIdentity.from(readKeyFile(keyPath, flags.has('key') ? process.cwd() : base, 'the server key'));
    const listen = hostPort(flags.get('listen')?.[0] ?? (config.listen as string | undefined) ?? '0.0.0.0:7000', '--listen');
    const ports: XnatPortOptions[] = flags.has('port')
      ? flags.get('port')!.map(parsePort)
      : ((config.ports as (number | XnatPortOptions)[] | undefined) ?? []).map((p) => (typeof p === 'number' ? { port: p } : p));
    if (ports.length === 0) throw usageError('offer at least one public port: --port PORT');
    let agents: XnatAgentEntry[] = Array.isArray(config.agents) ? (config.agents as XnatAgentEntry[]) : [];
    if (flags.has('agent') || flags.has('agent-token')) {
      agents = [
        ...(flags.get('agent') ?? []).map((t) => nameValue(t, '--agent')).map(([name, key]) => ({ name, key })),
        ...(flags.get('agent-token') ?? []).map((t) => nameValue(t, '--agent-token')).map(([name, token]) => ({ name, token })),
      ];
    }
    if (agents.length === 0) throw usageError('list at least one agent: --agent NAME=FINGERPRINT or --agent-token NAME=TOKEN');
    const idle = flags.get('idle-timeout')?.[0] ?? config.idleTimeout;
    const make = transport.make;
    server = new XnatServer({
      identity,
      listen,
      ports,
      agents,
      quiet,
      transport: () => make(),
      ...(idle !== undefined ? { idleTimeout: Number(idle) } : {}),
      ...(typeof config.connectTimeout === 'number' ? { connectTimeout: config.connectTimeout } : {}),
      ...(typeof config.maxAgents === 'number' ? { maxAgents: config.maxAgents } : {}),
      log: (level, message) => {
        if (level === 'error' || !quiet) process.stderr.write(`xnat server: ${message}\n`);
      },
    });
  } catch (err) {
    process.stderr.write(`zserver xnat server: ${(err as Error).message}\n${usageErrors.has(err as Error) ? 'See zserver xnat server --help\n' : ''}`);
    return 2;
  }
  let metrics: HttpServer | undefined;
  try {
    const at = await server.start();
    if (metricsAt !== undefined) metrics = await serveMetrics(server, metricsAt);
    process.stdout.write(
      `xnat server: agents on ${at.host}:${at.port}; fingerprint ${server.fingerprint}; public port(s) ${server.ports().join(', ')}; transport ${transport.name}\n`,
    );
  } catch (err) {
    process.stderr.write(`zserver xnat server: ${(err as Error).message}\n`);
    await server.close();
    return 1;
  }
  return untilSignal(async () => {
    metrics?.close();
    await server.close();
  });
}

/** GET /metrics: the Prometheus text of this process, with the zserver_xnat_* series. */
async function serveMetrics(server: XnatServer, at: { host: string; port: number }): Promise<HttpServer> {
  const http = createServer((req, res) => {
    if (req.method !== 'GET' || req.url !== '/metrics') {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': PROMETHEUS_CONTENT_TYPE });
    res.end(renderPrometheus([takeSnapshot(server.control, { xnat: server })]));
  });
  await new Promise<void>((resolveListen, reject) => {
    http.once('error', reject);
    http.listen(at.port, at.host, () => resolveListen());
  });
  const bound = http.address() as { address: string; port: number };
  process.stdout.write(`xnat server: metrics on http://${bound.address}:${bound.port}/metrics\n`);
  return http;
}

async function runAgent(args: string[]): Promise<number> {
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(AGENT_HELP);
    return 0;
  }
  let agent: XnatAgent;
  let quiet: boolean;
  try {
    const flags = parseFlags(args, ['config', 'server', 'pin', 'key', 'token', 'name', 'transport'], ['map'], ['quiet']);
    const { config, base } = readConfig(flags.get('config')?.[0]);
    const { make } = await transportMaker(flags.get('transport')?.[0] ?? config.transport);
    quiet = flags.has('quiet') || config.quiet === true;
    const serverText = flags.get('server')?.[0] ?? (config.server as string | undefined);
    if (serverText === undefined) throw usageError('--server HOST:PORT is required');
    const pin = flags.get('pin')?.[0] ?? (config.pin as string | undefined);
    if (pin === undefined) throw usageError("--pin FINGERPRINT is required (the server's fingerprint: zserver xnat server prints it)");
    const keyPath = flags.get('key')?.[0] ?? (config.key as string | undefined);
    const token = flags.get('token')?.[0] ?? (config.token as string | undefined);
    const mappings = flags.has('map')
      ? flags.get('map')!.map(parseMapping)
      : ((config.mappings as (string | XnatMapping)[] | undefined) ?? []).map((m) => (typeof m === 'string' ? parseMapping(m) : m));
    if (mappings.length === 0) throw usageError('give at least one mapping: --map PUBLICPORT=HOST:PORT');
    const name = flags.get('name')?.[0] ?? (config.name as string | undefined);
    agent = new XnatAgent({
      server: hostPort(serverText, '--server'),
      pin,
      ...(keyPath !== undefined ? { key: readKeyFile(keyPath, flags.has('key') ? process.cwd() : base, 'the agent key') } : {}),
      ...(token !== undefined ? { token } : {}),
      ...(name !== undefined ? { name } : {}),
      mappings,
      transport: () => make(),
      log: (level, message) => {
        if (level === 'error' || !quiet) process.stderr.write(`xnat agent: ${message}\n`);
      },
    });
  } catch (err) {
    process.stderr.write(`zserver xnat agent: ${(err as Error).message}\n${usageErrors.has(err as Error) ? 'See zserver xnat agent --help\n' : ''}`);
    return 2;
  }
  agent.on('serving', (name) => process.stdout.write(`xnat agent: serving as ${name}\n`));
  const exit = untilSignal(() => agent.stop());
  try {
    await agent.start();
  } catch (err) {
    // Refused (XnatRefusedError): retrying would not help; the message says what the server objected to.
    process.stderr.write(`zserver xnat agent: ${(err as Error).message}\n`);
    return 1;
  }
  return exit;
}
