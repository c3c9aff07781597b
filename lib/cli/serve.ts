/**
 * `zserver serve` (and `npm start`): a server on 127.0.0.1:9818 with built-in
 * test commands of every kind, for trying the framework from another process
 * or another language. Prints what it listens on and how to try it.
 *
 *   zserver serve [--transport native|node-net|memory] [--host 127.0.0.1] [--port 9818]
 *                 [--ws-port 9819 | --no-web] [--compression] [--once]
 *
 * Compression is off unless --compression is given: then both endpoints
 * compress frames from 1 KiB up (deflate-fixed) and decode compressed frames;
 * without it a compressed frame closes its connection (reason 'protocol').
 *
 * The same Server also listens for WebSocket connections on --ws-port
 * (UwsTransport where uWebSockets.js loads, WsServerTransport on the `ws`
 * package elsewhere: createWebSocketServer()), one online list over both endpoints, and answers plain
 * HTTP there with the page of examples/web and the browser bundle: open
 * http://127.0.0.1:9819/ in a browser.
 *
 * Over `memory` nothing outside this process can connect, so serve runs a
 * demo client in-process and prints its calls. `--once` exits after the demo
 * (with any transport): used by tests.
 */
import { Client } from '../framework/client.js';
import { Server, type ServerEndpoint } from '../framework/server.js';
import { md5 } from '../hash.js';
import { DataFrame } from '../protocol/dataframe.js';
import { createTransport, createWebSocketServer, transportAvailable, type TransportName } from '../transport/factory.js';
import type { Transport } from '../transport/types.js';
import { webFiles } from './web.js';

/** Options of `zserver serve`. */
export interface ServeArgs {
  transport: TransportName | undefined;
  host: string;
  port: number;
  /** WebSocket and web page port; null: none. */
  wsPort: number | null;
  once: boolean;
  /** Enable frame compression on both endpoints (off by default: compressed frames are refused). */
  compression?: boolean;
}

function portArg(name: string, v: string): number {
  const port = Number(v);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new RangeError(`${name} must be an integer from 0 to 65535`);
  return port;
}

function parse(args: string[]): ServeArgs {
  const out: ServeArgs = { transport: undefined, host: '127.0.0.1', port: 9818, wsPort: 9819, once: false };
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const value = () => {
      const v = args[++i];
      if (v === undefined) throw new RangeError(`${a} needs a value`);
      return v;
    };
    if (a === '--transport') {
      const v = value();
      if (v !== 'native' && v !== 'node-net' && v !== 'memory') throw new RangeError(`--transport must be native, node-net or memory, got '${v}'`);
      out.transport = v;
    } else if (a === '--port') out.port = portArg(a, value());
    else if (a === '--ws-port') out.wsPort = portArg(a, value());
    else if (a === '--no-web') out.wsPort = null;
    else if (a === '--host') out.host = value();
    else if (a === '--once') out.once = true;
    else if (a === '--compression') out.compression = true;
    else throw new RangeError(`unknown option '${a}' (serve takes --transport, --host, --port, --ws-port, --no-web, --compression, --once)`);
  }
  return out;
}

/** The server with one test command of every kind. */
export function createTestServer(): Server {
  const server = new Server();
  server.console('echo', (text) => text);
  server.console('stats', () => JSON.stringify(server.stats(), null, 1));
  server.stream('add', (df) => new DataFrame().writeInt32(df.readInt32() + df.readInt32()));
  server.stream('echo-frame', (df) => df);
  server.directConsole('log', (text, peer) => void process.stdout.write(`[peer ${peer.id}] ${text}\n`));
  server.directStream('log-frame', (df, peer) => void process.stdout.write(`[peer ${peer.id}] ${JSON.stringify(df)}\n`));
  server.buffer('md5', (data) => md5(data));
  server.bigStream('upload', async (stream) => {
    const started = performance.now();
    for await (const _chunk of stream);
    return new DataFrame().writeUInt64(BigInt(stream.consumed)).writeFloat64(performance.now() - started);
  });
  // The chat of examples/web: what one peer says, the server pushes to every peer of every endpoint.
  server.directConsole('say', (text, peer) => void server.broadcastConsole('said', `[peer ${peer.id}] ${text}`));
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

/** Starts the test server on the TCP (or memory) endpoint and, unless `wsPort` is null, the WebSocket and web endpoint. */
export async function startServe(opts: ServeArgs, transportName: TransportName, server = createTestServer()): Promise<ServeHandle> {
  const transport = await createTransport(transportName);
  const layers = opts.compression ? { compression: {} } : {};
  const tcp = await server.listen(transport, { host: opts.host, port: opts.port }, layers);
  let web: ServerEndpoint | undefined;
  if (opts.wsPort !== null && transportName !== 'memory') {
    const ws = await createWebSocketServer({ http: await webFiles(), origins: ownOrigins(opts.host, opts.wsPort) });
    web = await server.listen(ws, { host: opts.host, port: opts.wsPort }, layers);
  }
  return { server, transport, tcp, web, close: () => server.close() };
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

/** Runs the server until SIGINT/SIGTERM; resolves to the exit code. */
export async function runServe(args: string[]): Promise<number> {
  // A group of worker processes sharing one port (SO_REUSEPORT) is the native echo group.
  if (args.includes('--workers') || args.includes('--worker')) return (await import('./serve-group.js')).runServeGroup(args);
  const opts = parse(args);
  let name = opts.transport;
  if (name === undefined) {
    if (await transportAvailable('native')) name = 'native';
    else if (await transportAvailable('node-net')) name = 'node-net';
    else {
      name = 'memory';
      process.stdout.write('zserver serve: no socket transport is built here (native, node-net); serving in-process over memory.\n');
    }
  }
  const { server, transport, tcp: ep, web } = await startServe(opts, name);
  process.stdout.write(
    `zserver serve: listening on ${ep.address.host}:${ep.address.port} over ${transport.name}\n` +
      (web ? `zserver serve: WebSocket (${web.transport.name}) and web page on ${web.address.host}:${web.address.port}: open http://${web.address.host}:${web.address.port}/ in a browser\n` : '') +
      `compression: ${opts.compression ? 'on (deflate-fixed from 1 KiB)' : 'off (compressed frames are refused; --compression turns it on)'}\n` +
      `commands: ${server.commandNames().join(', ')}\n`,
  );
  if (name === 'memory' || opts.once) {
    process.stdout.write(name === 'memory' ? 'in-process demo client:\n' : 'self-test client:\n');
    const clientTransport = name === 'memory' ? transport : await createTransport(name);
    const client = new Client({ transport: clientTransport, host: ep.address.host, port: ep.address.port, ...(opts.compression ? { compression: {} } : {}) });
    await client.connect();
    await demo(client);
    await client.close();
    if (clientTransport !== transport) await clientTransport.shutdown();
  } else {
    process.stdout.write(
      `try it from another terminal:\n` +
        `  npx tsx examples/serve-client.ts --transport ${name} --host ${ep.address.host} --port ${ep.address.port}\n` +
        `stop with Ctrl-C\n`,
    );
  }
  if (!opts.once) {
    await new Promise<void>((resolve) => {
      process.once('SIGINT', resolve);
      process.once('SIGTERM', resolve);
    });
  }
  await server.close();
  process.stdout.write('zserver serve: stopped\n');
  return 0;
}
