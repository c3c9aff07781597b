/**
 * The configuration of `zserver serve`: command-line flags over an optional JSON config file
 * (--config) over the defaults, checked in one place so a typo fails before anything listens,
 * with a message that says what to do. docs/operations.md documents every key; SERVE_HELP is
 * what `zserver serve --help` prints.
 */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { EndpointCompression } from '../framework/layers.js';
import { defaultPeerSettings } from '../framework/peer-options.js';
import type { TransportName } from '../transport/factory.js';

/** The framework endpoint's transport: the factory's socket transports, plus native TCP under TLS. */
export type ServeTransport = 'native' | 'native-tls' | 'node-net' | 'memory';

/** The WebSocket endpoint's server (createWebSocketServer() picks the best one by default). */
export type ServeWsTransport = 'native-ws' | 'uws' | 'ws';

/** Options of `zserver serve`, from flags and the config file. */
export interface ServeArgs {
  /**
   * The framework endpoint's transport; undefined: native where built, else node-net, else
   * memory. Flags take ServeTransport; a program calling startServe() may give any TransportName.
   */
  transport: ServeTransport | TransportName | undefined;
  host: string;
  port: number;
  /** WebSocket and web page port; null: none. */
  wsPort: number | null;
  /** Run a self-test client against the server, then exit (tests). */
  once: boolean;
  /** Frame compression on both endpoints (off by default: compressed frames are refused). */
  compression?: boolean | EndpointCompression;
  /** The app module (.js/.mjs, or .ts with tsx); undefined: the built-in test app. */
  app?: string;
  /** The config file's "app" section, handed to the app as ServeConfig.app. */
  appConfig?: Record<string, unknown>;
  /** The server's Ed25519 identity (zserver keygen): runs the secure channel on both endpoints. */
  secureKey?: string;
  /** Certificate and key (PEM files) for native TLS on the framework endpoint (--transport native-tls). */
  tls?: { cert: string; key: string };
  /** The WebSocket server of the web endpoint. */
  wsTransport?: ServeWsTransport;
  /** Limits: PeerSettings fields and the endpoints' listen options (LIMIT_NAMES). */
  limits?: Record<string, number>;
  /** Worker processes under a supervisor (undefined: this process serves, unsupervised). */
  workers?: number;
  /** NATS URL for the group's bus; null: none (--no-nats); undefined: a local nats-server with --workers > 1. */
  nats?: string | null;
  /** How long a drain lets in-flight work finish, in ms (default 10,000). */
  drainDeadline?: number;
  /** A worker crashing more than this many times within restartWindow ms is given up (default 5). */
  maxRestarts?: number;
  /** The window of maxRestarts, in ms (default 60,000). */
  restartWindow?: number;
  /** This process is worker `groupWorker` of a group (set by the supervisor, not by users). */
  groupWorker?: number;
  /** A group worker accepts on these inherited listening sockets (set by the supervisor, not by users). */
  listenFd?: number;
  wsListenFd?: number;
}

/** Default drain deadline, ms (docs/limits.md, "Drain"). */
export const DEFAULT_DRAIN_DEADLINE = 10_000;

/** Limit names that are listen options of each endpoint (ConnectionOptions and ListenOptions). */
export const LISTEN_LIMITS = [
  'maxFrameSize',
  'idleTimeout',
  'keepaliveInterval',
  'highWaterMark',
  'maxSendQueue',
  'frameTimeout',
  'maxConnections',
  'maxConnectionsPerIp',
  'connectionRatePerIp',
  'acceptTimeout',
] as const;

/** Every name --limit and the config file's "limits" accept: the PeerSettings fields, then LISTEN_LIMITS. */
export const LIMIT_NAMES: readonly string[] = [...Object.keys(defaultPeerSettings), ...LISTEN_LIMITS];

export const SERVE_HELP = `Usage: zserver serve [app.js|app.ts] [options]

Serves the commands an app module registers (the built-in test app when none is given) on a
framework TCP endpoint and a WebSocket + web page endpoint. The app module exports
  export default async function setup(server, config) { server.console('hi', () => 'hello') }
(config: { worker, workers, host, port, wsPort, nats, app }; docs/operations.md).

Endpoints and transports:
  --host H               address to listen on (default 127.0.0.1)
  --port N               framework endpoint port (default 9818; 0 picks one)
  --ws-port N            WebSocket and web page port (default 9819; 0 picks one)
  --no-web               no WebSocket / web endpoint
  --transport T          native | native-tls | node-net | memory (default: native where built)
  --ws-transport T       native-ws | uws | ws (default: the best this machine runs)
  --tls-cert FILE        certificate chain (PEM) for --transport native-tls
  --tls-key FILE         private key (PEM) for --transport native-tls
Security and compression:
  --secure-key FILE      run the secure channel with this identity (zserver keygen); clients pin its fingerprint
  --compression          compress frames from 1 KiB (deflate-fixed) and accept compressed frames
Limits (docs/limits.md):
  --limit NAME=VALUE     any of: ${LIMIT_NAMES.join(', ')}
Workers (docs/operations.md, "Workers"):
  --workers N            N supervised worker processes on the same ports (default: this process serves)
  --nats URL             the group's NATS bus (default with --workers > 1: a local nats-server)
  --no-nats              no bus: presence and broadcast stay per process
  --drain-deadline MS    how long SIGTERM lets in-flight calls finish (default ${DEFAULT_DRAIN_DEADLINE})
  --max-restarts K       give a worker up after K crashes within --restart-window (default 5)
  --restart-window MS    (default 60000)
Other:
  --config FILE          JSON file with the same settings (camelCase keys) and an "app" section; flags win
  --once                 run a self-test client, then exit
  --echo                 instead: the native frame-echo group (with --host, --port, --workers,
                         --idle-timeout MS, --report S; docs/transport.md)
  --help                 this text

Signals: SIGTERM/SIGINT drain and stop (the whole group); SIGHUP restarts the workers one by one.

Examples:
  zserver serve                                   the test app on 127.0.0.1:9818 and :9819
  zserver serve ./app.js --host 0.0.0.0 --port 7000 --workers 4
  zserver serve ./app.ts --secure-key server.key --compression --limit requestTimeout=5000
  zserver serve ./app.js --config serve.json --workers 4 --nats nats://10.0.0.5:4222
  zserver serve --transport native-tls --tls-cert cert.pem --tls-key key.pem --no-web
`;

/** A bad flag, value or config key: the message says what to do. */
function bad(message: string): never {
  throw new RangeError(`zserver serve: ${message} (zserver serve --help)`);
}

function intIn(name: string, v: unknown, min: number, max: number): number {
  const n = typeof v === 'string' && v.trim() !== '' ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < min || n > max) bad(`${name} must be an integer from ${min} to ${max}, got ${JSON.stringify(v)}`);
  return n;
}

function str(name: string, v: unknown): string {
  if (typeof v !== 'string' || v === '') bad(`${name} must be a non-empty string, got ${JSON.stringify(v)}`);
  return v;
}

function transportOf(v: unknown): ServeTransport {
  if (v === 'native' || v === 'native-tls' || v === 'node-net' || v === 'memory') return v;
  return bad(`--transport must be native, native-tls, node-net or memory, got ${JSON.stringify(v)}`);
}

function wsTransportOf(v: unknown): ServeWsTransport {
  if (v === 'native-ws' || v === 'uws' || v === 'ws') return v;
  return bad(`--ws-transport must be native-ws, uws or ws, got ${JSON.stringify(v)}`);
}

function setLimit(out: ServeArgs, name: string, v: unknown): void {
  if (!LIMIT_NAMES.includes(name)) bad(`unknown limit '${name}'; limits are ${LIMIT_NAMES.join(', ')}`);
  (out.limits ??= {})[name] = intIn(`limit ${name}`, v, 0, Number.MAX_SAFE_INTEGER);
}

/** Applies one config-file key; `base` is the file's directory (paths in the file are relative to it). */
function applyKey(out: ServeArgs, key: string, v: unknown, base: string): void {
  const path = (name: string) => resolve(base, str(name, v));
  switch (key) {
    case 'host':
      out.host = str(key, v);
      break;
    case 'port':
      out.port = intIn(key, v, 0, 65535);
      break;
    case 'wsPort':
      out.wsPort = v === null || v === false ? null : intIn(key, v, 0, 65535);
      break;
    case 'transport':
      out.transport = transportOf(v);
      break;
    case 'wsTransport':
      out.wsTransport = wsTransportOf(v);
      break;
    case 'compression':
      if (typeof v !== 'boolean' && (typeof v !== 'object' || v === null)) bad(`compression must be true, false or an object of EndpointCompression options`);
      out.compression = v as boolean | EndpointCompression;
      break;
    case 'secureKey':
      out.secureKey = path(key);
      break;
    case 'tlsCert':
      out.tls = { cert: path(key), key: out.tls?.key ?? '' };
      break;
    case 'tlsKey':
      out.tls = { cert: out.tls?.cert ?? '', key: path(key) };
      break;
    case 'limits':
      if (typeof v !== 'object' || v === null) bad('limits must be an object of NAME: number');
      for (const [k, n] of Object.entries(v)) setLimit(out, k, n);
      break;
    case 'workers':
      out.workers = intIn(key, v, 1, 256);
      break;
    case 'nats':
      out.nats = v === null || v === false ? null : str(key, v);
      break;
    case 'drainDeadline':
      out.drainDeadline = intIn(key, v, 0, 0x7fffffff);
      break;
    case 'maxRestarts':
      out.maxRestarts = intIn(key, v, 0, 1_000_000);
      break;
    case 'restartWindow':
      out.restartWindow = intIn(key, v, 1, 0x7fffffff);
      break;

    case 'appModule':
      out.app = path(key);
      break;
    case 'app':
      if (typeof v !== 'object' || v === null || Array.isArray(v)) bad('the config file\'s "app" must be an object');
      out.appConfig = v as Record<string, unknown>;
      break;
    default:
      bad(
        `unknown config key '${key}'; keys are host, port, wsPort, transport, wsTransport, compression, secureKey, tlsCert, tlsKey, limits, workers, nats, drainDeadline, maxRestarts, restartWindow, appModule, app`,
      );
  }
}

/** Reads a --config file into `out`. */
function applyFile(out: ServeArgs, file: string): void {
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    bad(`cannot read config file ${file}: ${(err as Error).message}`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) bad(`config file ${file} must hold a JSON object`);
  for (const [k, v] of Object.entries(json)) applyKey(out, k, v, dirname(resolve(file)));
}

/** Parses `zserver serve` arguments (flags win over the --config file); RangeError says what is wrong. */
export function parseServeArgs(args: string[]): ServeArgs {
  const out: ServeArgs = { transport: undefined, host: '127.0.0.1', port: 9818, wsPort: 9819, once: false };
  let appGiven = false;
  const configAt = args.indexOf('--config');
  if (configAt >= 0) {
    const file = args[configAt + 1];
    if (file === undefined) bad('--config needs a file');
    applyFile(out, file);
  }
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const value = (): string => {
      const v = args[++i];
      if (v === undefined) bad(`${a} needs a value`);
      return v;
    };
    const here = process.cwd();
    if (a === '--config') i++;
    else if (a === '--transport') out.transport = transportOf(value());
    else if (a === '--ws-transport') out.wsTransport = wsTransportOf(value());
    else if (a === '--port') out.port = intIn(a, value(), 0, 65535);
    else if (a === '--ws-port') out.wsPort = intIn(a, value(), 0, 65535);
    else if (a === '--no-web') out.wsPort = null;
    else if (a === '--host') out.host = value();
    else if (a === '--once') out.once = true;
    else if (a === '--compression') out.compression = true;
    else if (a === '--secure-key') applyKey(out, 'secureKey', value(), here);
    else if (a === '--tls-cert') applyKey(out, 'tlsCert', value(), here);
    else if (a === '--tls-key') applyKey(out, 'tlsKey', value(), here);
    else if (a === '--limit') {
      const v = value();
      const eq = v.indexOf('=');
      if (eq <= 0) bad(`--limit takes NAME=VALUE, got '${v}'`);
      setLimit(out, v.slice(0, eq), v.slice(eq + 1));
    } else if (a === '--workers') out.workers = intIn(a, value(), 1, 256);
    else if (a === '--nats') out.nats = value();
    else if (a === '--no-nats') out.nats = null;
    else if (a === '--drain-deadline') out.drainDeadline = intIn(a, value(), 0, 0x7fffffff);
    else if (a === '--max-restarts') out.maxRestarts = intIn(a, value(), 0, 1_000_000);
    else if (a === '--restart-window') out.restartWindow = intIn(a, value(), 1, 0x7fffffff);
    else if (a === '--group-worker') out.groupWorker = intIn(a, value(), 0, 255);
    else if (a === '--listen-fd') out.listenFd = intIn(a, value(), 0, 0x7fffffff);
    else if (a === '--ws-listen-fd') out.wsListenFd = intIn(a, value(), 0, 0x7fffffff);
    else if (a.startsWith('-')) bad(`unknown option '${a}'`);
    else if (!appGiven) {
      out.app = resolve(a); // over the config file's appModule
      appGiven = true;
    } else bad(`one app module only, got '${out.app}' and '${a}'`);
  }
  if (out.transport === 'native-tls' && (!out.tls?.cert || !out.tls.key)) bad('--transport native-tls needs --tls-cert FILE and --tls-key FILE');
  if (out.tls !== undefined && out.transport !== 'native-tls') bad('--tls-cert/--tls-key go with --transport native-tls');
  if (out.workers !== undefined && out.transport === 'memory') bad('--workers needs a socket transport (memory serves one process only)');
  return out;
}
