/**
 * `zserver serve [app.js|app.ts]` (and `npm start`): one process of the command framework serving
 * an app module (serve-app.ts; the built-in test app of apps/test-app.ts when none is given) on a
 * framework endpoint (127.0.0.1:9818 by default) and a WebSocket + web page endpoint (:9819).
 * Flags and the --config file (serve-config.ts, SERVE_HELP) choose endpoints, transports, limits,
 * secure identity and compression. With --workers N the process becomes the supervisor of a
 * group (serve-group.ts) whose workers run this same file with --group-worker.
 *
 * Compression is off unless asked for: then both endpoints compress frames from 1 KiB up
 * (deflate-fixed) and decode compressed frames; without it a compressed frame closes its
 * connection (reason 'protocol').
 *
 * The WebSocket endpoint (createWebSocketServer(), or the --ws-transport asked for) shares the
 * Server, so one online list spans both endpoints, and answers plain HTTP with the page of
 * examples/web and the browser bundle: open http://127.0.0.1:9819/ in a browser.
 *
 * SIGTERM/SIGINT drain the server (Server.drain(): clients are told to go away and may finish
 * their calls within --drain-deadline), then it closes and the process exits 0. Over `memory`
 * nothing outside this process can connect, so serve runs a demo client in-process and prints
 * its calls; `--once` exits after the demo (with any transport): used by tests.
 */
import { readFileSync } from 'node:fs';
import { ServerIdentity } from '../channel/handshake.js';
import { Client } from '../framework/client.js';
import type { EndpointCompression } from '../framework/layers.js';
import { Server, type EndpointOptions, type ServerEndpoint } from '../framework/server.js';
import { DataFrame } from '../protocol/dataframe.js';
import { createTransport, createWebSocketServer, transportAvailable, webSocketServerName, type TransportName } from '../transport/factory.js';
import { joinMetricsGroup } from '../metrics/group.js';
import { metricsHttp } from '../metrics/http.js';
import type { Transport } from '../transport/types.js';
import testApp from './apps/test-app.js';
import { loadApp, type ServeConfig, type ServeSetup } from './serve-app.js';
import { DEFAULT_DRAIN_DEADLINE, LISTEN_LIMITS, SERVE_HELP, parseServeArgs, type ServeArgs, type ServeTransport } from './serve-config.js';
import { webFiles } from './web.js';

export type { ServeArgs } from './serve-config.js';

/** A Server with the built-in test app (apps/test-app.ts) set up, for one process with default settings. */
export function createTestServer(): Server {
  const server = new Server();
  void testApp(server, { worker: 0, workers: 1, host: '127.0.0.1', port: 9818, wsPort: 9819, nats: undefined, app: {} });
  return server;
}

/** A running `zserver serve`: its server, endpoints and transports. */
export interface ServeHandle {
  server: Server;
  transport: Transport;
  tcp: ServerEndpoint;
  /** The WebSocket endpoint that also serves the web page, when there is one. */
  web: ServerEndpoint | undefined;
  /** Closes the server and shuts its transports down. */
  close(): Promise<void>;
}

/** The layer and limit options of both endpoints, from the serve options. */
function endpointOptions(opts: ServeArgs): EndpointOptions & { reusePort?: boolean } {
  const out: EndpointOptions & { reusePort?: boolean } = {};
  if (opts.compression) out.compression = opts.compression === true ? {} : (opts.compression as EndpointCompression);
  if (opts.secureKey !== undefined) {
    let pem: string;
    try {
      pem = readFileSync(opts.secureKey, 'utf8');
    } catch (err) {
      throw new RangeError(`zserver serve: cannot read --secure-key ${opts.secureKey}: ${(err as Error).message} (make one with zserver keygen --out ${opts.secureKey})`);
    }
    out.secure = { identity: ServerIdentity.from(pem) };
  }
  const settings: Record<string, number> = {};
  for (const [name, value] of Object.entries(opts.limits ?? {})) {
    if ((LISTEN_LIMITS as readonly string[]).includes(name)) (out as Record<string, unknown>)[name] = value;
    else settings[name] = value;
  }
  if (Object.keys(settings).length > 0) out.settings = settings;
  return out;
}

/**
 * How a group worker shares its ports with the others (serve-group.ts): `member` is true in a
 * group. `fd`/`wsFd`: accept on the supervisor's listening sockets, inherited (the default for
 * native and node-net endpoints); `reusePort`: native endpoints bind their own with SO_REUSEPORT
 * (beside a Node-based web endpoint, when node:cluster shares the ports); Node-based endpoints
 * without `fd` are shared by node:cluster.
 */
export interface ServeGroupMember {
  config?: Partial<ServeConfig>;
  member?: boolean;
  reusePort?: boolean;
  fd?: number;
  wsFd?: number;
}

/**
 * Starts serving: `server` (a new one with the app of `opts.app`, or the test app, set up with
 * `config`) listens on the framework endpoint and, unless `wsPort` is null, the WebSocket and web
 * endpoint, each shared with the other workers of a group as `group` says.
 */
export async function startServe(
  opts: ServeArgs,
  transportName: ServeTransport | TransportName,
  server?: Server,
  group: ServeGroupMember = {},
): Promise<ServeHandle> {
  let setup: ServeSetup | undefined;
  if (server === undefined) {
    setup = opts.app === undefined ? testApp : await loadApp(opts.app);
    server = new Server();
    const config: ServeConfig = {
      worker: 0,
      workers: 1,
      host: opts.host,
      port: opts.port,
      wsPort: opts.wsPort,
      nats: undefined,
      app: opts.appConfig ?? {},
      ...group.config,
    };
    await setup(server, config);
    // A group's workers share rooms, presence and broadcast over its NATS server (docs/cluster.md),
    // unless the app joined a bus of its own. Before listen(): peers' global ids name the node.
    if (config.nats !== undefined && !server.cluster.joined) await server.useCluster({ nats: config.nats });
  }
  const transport = await createTransport(transportName === 'native-tls' ? 'native' : transportName);
  const layers = endpointOptions(opts);
  const native = (t: Transport) => t.name === 'native-tcp' || t.name === 'native-ws';
  const reuse = (t: Transport) => (group.reusePort === true && native(t) ? { reusePort: true } : {});
  const inherited = (fd: number | undefined) => (fd === undefined ? {} : { fd });
  const tcpOptions = { ...layers, ...reuse(transport), ...inherited(group.fd), ...(transportName === 'native-tls' ? { tls: { cert: opts.tls!.cert, key: opts.tls!.key } } : {}) };
  const tcp = await server.listen(transport, { host: opts.host, port: opts.port }, tcpOptions);
  let web: ServerEndpoint | undefined;
  let stopMetrics = (): void => {};
  if (opts.wsPort !== null && transportName !== 'memory') {
    if (opts.wsTransport !== undefined) process.env.ZSERVER_WS_SERVER = opts.wsTransport; // webSocketServerName() reads it
    // The web port also answers /metrics, /status.json and /status (docs/metrics.md): in a group,
    // every worker's rows, gathered over the supervisor's IPC channel.
    const s = server;
    const member = group.member === true && process.send !== undefined ? joinMetricsGroup((h) => metrics.snapshot(h)) : undefined;
    const metrics = metricsHttp({
      server: s,
      worker: String(group.config?.worker ?? 0),
      next: await webFiles(),
      ...(member ? { gather: (h: boolean) => member.gather(h) } : {}),
    });
    stopMetrics = () => {
      member?.leave();
      metrics.stop();
    };
    // Only NativeWsTransport waits for an answer that is a promise (the group's gather); the others get this process's rows.
    const origins = ownOrigins(opts.host, opts.wsPort);
    const ws =
      (await webSocketServerName()) === 'native-ws'
        ? new (await import('../transport/native-ws.js')).NativeWsTransport({ http: metrics, origins })
        : await createWebSocketServer({ http: metrics.local, origins });
    web = await server.listen(ws, { host: opts.host, port: opts.wsPort }, { ...layers, ...reuse(ws), ...inherited(group.wsFd) });
  }
  const s = server;
  return {
    server: s,
    transport,
    tcp,
    web,
    close: async () => {
      stopMetrics();
      await s.close();
    },
  };
}

/**
 * The origins of the page `serve` itself serves on the WebSocket port, and only those (so no other
 * web page a user visits can call this server). Undefined, which means "same origin as the
 * request's Host header" (UwsListenOptions.origins), when the port is picked at random or the host
 * is a wildcard whose names are not known here.
 */
export function ownOrigins(host: string, port: number): string[] | undefined {
  if (port === 0 || host === '0.0.0.0' || host === '::' || host === '') return undefined;
  const name = host.includes(':') ? `[${host}]` : host;
  const origins = [`http://${name}:${port}`];
  if (host === '127.0.0.1' || host === '::1' || host === 'localhost') origins.push(`http://localhost:${port}`, `http://127.0.0.1:${port}`, `http://[::1]:${port}`);
  return [...new Set(origins)];
}

async function demo(client: Client): Promise<void> {
  const say = (s: string) => process.stdout.write(`  ${s}\n`);
  say(`echo('hello')              -> ${await client.callConsole('echo', 'hello')}`);
  say(`add(40, 2)                 -> ${(await client.call('add', new DataFrame().writeInt32(40).writeInt32(2))).readInt32()}`);
  say(`md5(buffer 'abc')          -> ${(await client.callBuffer('md5', Buffer.from('abc'))).toString('hex')}`);
  const up = await client.sendBigStream('upload', Buffer.alloc(8 * 1024 * 1024));
  say(`upload(8 MiB big stream)   -> ${up.readUInt64()} bytes`);
  client.sendConsole('log', 'a direct console message');
  await client.callConsole('echo', 'sync');
}

/** The framework endpoint's transport when none is asked for: native where built, else node-net, else memory. */
async function defaultTransport(): Promise<ServeTransport> {
  if (await transportAvailable('native')) return 'native';
  if (await transportAvailable('node-net')) return 'node-net';
  process.stdout.write('zserver serve: no socket transport is built here (native, node-net); serving in-process over memory.\n');
  return 'memory';
}

/**
 * Resolves on the first SIGTERM or SIGINT. A group worker stops on SIGTERM only (its supervisor
 * sends it) or when the supervisor's IPC channel goes, and ignores SIGINT and SIGHUP, which a
 * terminal sends to the whole process group: the supervisor decides what the group does. The
 * handlers stay installed, so a second signal during the drain does not kill the process.
 */
function stopSignal(inGroup: boolean): Promise<string> {
  return new Promise<string>((resolve) => {
    let fired = false;
    const on = (why: string) => (): void => {
      if (fired) return;
      fired = true;
      resolve(why);
    };
    process.on('SIGTERM', on('SIGTERM'));
    if (inGroup) {
      process.on('SIGINT', () => {});
      process.on('SIGHUP', () => {});
      // A worker whose supervisor is gone stops too, so no worker outlives its group.
      process.once('disconnect', on('supervisor gone'));
    } else process.on('SIGINT', on('SIGINT'));
  });
}

/** Runs `zserver serve`; resolves to the exit code. */
export async function runServe(args: string[]): Promise<number> {
  // The frame-echo group of the stress runner and docs/transport.md keeps its own flags.
  if (args.includes('--echo')) return (await import('./serve-echo.js')).runServeEcho(args.filter((a) => a !== '--echo'));
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(SERVE_HELP);
    return 0;
  }
  const opts = parseServeArgs(args);
  // --workers N (even 1: a supervised process) makes this process the supervisor.
  if (opts.workers !== undefined && opts.groupWorker === undefined) return (await import('./serve-group.js')).runServeGroup(opts, args);
  const name = opts.transport ?? (await defaultTransport());
  const inGroup = opts.groupWorker !== undefined;
  const config: Partial<ServeConfig> = inGroup ? { worker: opts.groupWorker, workers: opts.workers ?? 1, nats: opts.nats ?? undefined } : { nats: opts.nats ?? undefined };
  const share: ServeGroupMember = inGroup
    ? {
        member: true,
        // Without inherited sockets ('cluster' sharing) native endpoints bind
        // with SO_REUSEPORT; Node-based ones are shared by node:cluster.
        reusePort: opts.listenFd === undefined,
        ...(opts.listenFd === undefined ? {} : { fd: opts.listenFd }),
        ...(opts.wsListenFd === undefined ? {} : { wsFd: opts.wsListenFd }),
      }
    : {};
  const handle = await startServe(opts, name, undefined, { config, ...share });
  const { server, transport, tcp: ep, web } = handle;
  const drainDeadline = opts.drainDeadline ?? DEFAULT_DRAIN_DEADLINE;
  if (inGroup) {
    process.send?.({ type: 'listening', worker: opts.groupWorker, pid: process.pid, port: ep.address.port, wsPort: web?.address.port ?? null });
  } else {
    process.stdout.write(
      `zserver serve: listening on ${ep.address.host}:${ep.address.port} over ${transport.name}${name === 'native-tls' ? ' (TLS)' : ''}${opts.secureKey ? ' (secure channel)' : ''}\n` +
        (web ? `zserver serve: WebSocket (${web.transport.name}) and web page on ${web.address.host}:${web.address.port}: open http://${web.address.host}:${web.address.port}/ in a browser\n` : '') +
        `compression: ${opts.compression ? 'on (deflate-fixed from 1 KiB)' : 'off (compressed frames are refused; --compression turns it on)'}\n` +
        `app: ${opts.app ?? 'the built-in test app'}\n` +
        `commands: ${server.commandNames().join(', ')}\n`,
    );
  }
  if (opts.app !== undefined && opts.once) {
    // A user app's commands are unknown here: --once only shows that it loads and listens.
    process.stdout.write('--once: the app loaded and the endpoints listened\n');
  } else if (name === 'memory' || opts.once) {
    process.stdout.write(name === 'memory' ? 'in-process demo client:\n' : 'self-test client:\n');
    const clientTransport = name === 'memory' ? transport : await createTransport(name === 'native-tls' ? 'native' : name);
    const client = new Client({ transport: clientTransport, host: ep.address.host, port: ep.address.port, ...(opts.compression ? { compression: {} } : {}) });
    await client.connect();
    await demo(client);
    await client.close();
    if (clientTransport !== transport) await clientTransport.shutdown();
  } else if (!inGroup) {
    process.stdout.write(
      `try it from another terminal:\n` +
        `  npx tsx examples/serve-client.ts --transport ${name} --host ${ep.address.host} --port ${ep.address.port}\n` +
        `stop with Ctrl-C (connected clients get ${drainDeadline} ms to finish their calls: --drain-deadline)\n`,
    );
  }
  if (!opts.once) {
    const why = await stopSignal(inGroup);
    const prefix = inGroup ? `zserver serve worker ${opts.groupWorker} (pid ${process.pid})` : 'zserver serve';
    process.stdout.write(`${prefix}: ${why}: draining ${server.count} connection(s), deadline ${drainDeadline} ms\n`);
    await server.drain({ deadline: drainDeadline, reason: why === 'SIGTERM' && inGroup ? 'restart' : 'shutdown' });
  }
  await handle.close();
  process.stdout.write(inGroup ? `zserver serve worker ${opts.groupWorker}: stopped\n` : 'zserver serve: stopped\n');
  if (inGroup) process.disconnect?.();
  return 0;
}
