/**
 * createTransport(name): one place that turns a transport's name into an
 * instance, for the CLI, the examples and the benchmarks. Socket transports
 * are imported only when asked for, so a build without one of them still runs
 * everything else, and asking for a missing one fails with a message that
 * names the missing module.
 *
 * createWebSocketServer(options): the WebSocket server transport this machine
 * runs best: NativeWsTransport (WebSocket in the native epoll loop) on Linux
 * where the native addon loads, else UwsTransport where the uWebSockets.js
 * binary loads, else WsServerTransport (the `ws` package), with the same
 * options and behaviour.
 */
import { NativeLoadError, TransportUnavailableError } from '../errors.js';
import { native } from '../native.js';
import { MemoryTransport } from './memory.js';
import type { Transport } from './types.js';
import type { WebSocketServerOptions } from './ws-server.js';

/**
 * Names createTransport() understands. 'native-ws' (the native loop's own WebSocket, what
 * createWebSocketServer() picks on Linux), 'uws' and 'ws' are WebSocket servers.
 */
export type TransportName = 'memory' | 'node-net' | 'native' | 'native-ws' | 'uws' | 'ws';

// Re-exported for callers that import it with createTransport(); its home is errors.ts.
export { TransportUnavailableError };

const modules: Record<Exclude<TransportName, 'memory'>, { file: string; className: string }> = {
  native: { file: './native-tcp.js', className: 'NativeTcpTransport' },
  'native-ws': { file: './native-ws.js', className: 'NativeWsTransport' },
  'node-net': { file: './node-net.js', className: 'NodeNetTransport' },
  uws: { file: './uws.js', className: 'UwsTransport' },
  ws: { file: './ws-server.js', className: 'WsServerTransport' },
};

type TransportClass = new () => Transport;

async function load(name: Exclude<TransportName, 'memory'>): Promise<TransportClass> {
  const { file, className } = modules[name];
  let mod: Record<string, unknown>;
  try {
    // A variable specifier: the module may not exist in this build, and that is a runtime answer.
    const specifier: string = file;
    mod = (await import(specifier)) as Record<string, unknown>;
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') {
      throw new TransportUnavailableError(`transport '${name}' is not available: lib/transport/${file.slice(2, -3)}.ts is not part of this build`, { cause: err });
    }
    throw err;
  }
  const ctor = mod[className];
  if (typeof ctor !== 'function') throw new TransportUnavailableError(`lib/transport/${file.slice(2, -3)} does not export ${className}`);
  if (name === 'uws') {
    // The module loads anywhere; its binary only where uWebSockets.js ships one for this Node.
    try {
      (mod.loadUws as () => unknown)();
    } catch (err) {
      if (err instanceof NativeLoadError) throw new TransportUnavailableError(`transport 'uws' is not available: ${err.message}`, { cause: err });
      throw err;
    }
  }
  return ctor as TransportClass;
}

/** A new transport by name; rejects with TransportUnavailableError when it is not built. */
export async function createTransport(name: TransportName): Promise<Transport> {
  if (name === 'memory') return new MemoryTransport();
  if (!(name in modules)) {
    throw new RangeError(`transport must be 'memory', 'node-net', 'native', 'native-ws', 'uws' or 'ws', got ${JSON.stringify(name)}`);
  }
  const Ctor = await load(name);
  return new Ctor();
}

/** Whether createTransport(name) would succeed. */
export async function transportAvailable(name: TransportName): Promise<boolean> {
  if (name === 'memory') return true;
  try {
    await load(name);
    return true;
  } catch (err) {
    if (err instanceof TransportUnavailableError) return false;
    throw err;
  }
}

/** The WebSocket server transports createWebSocketServer() can make. */
export type WebSocketServerName = 'native-ws' | 'uws' | 'ws';

/**
 * Whether the native loop's WebSocket runs here: on Linux (the loop's epoll poller; the only
 * platform it is built and tested on) with the native addon loaded.
 */
function nativeLoopRuns(): boolean {
  if (process.platform !== 'linux') return false;
  try {
    return typeof native().TcpLoop === 'function';
  } catch (err) {
    if (err instanceof NativeLoadError) return false;
    throw err;
  }
}

/**
 * Which WebSocket server transport createWebSocketServer() makes here: 'native-ws' on Linux where
 * the native addon loads, else 'uws' where uWebSockets.js loads, else 'ws'. The environment
 * variable ZSERVER_WS_SERVER=native-ws, uws or ws forces one.
 */
export async function webSocketServerName(): Promise<WebSocketServerName> {
  const forced = process.env.ZSERVER_WS_SERVER;
  if (forced === 'native-ws' || forced === 'ws' || forced === 'uws') return forced;
  if (forced) throw new RangeError(`ZSERVER_WS_SERVER must be 'native-ws', 'uws', 'ws' or unset, got ${JSON.stringify(forced)}`);
  if (nativeLoopRuns()) return 'native-ws';
  return (await transportAvailable('uws')) ? 'uws' : 'ws';
}

/**
 * A WebSocket server transport (listen() on ws://host:port + path, plain HTTP through
 * `options.http`): the one webSocketServerName() names, NativeWsTransport on Linux.
 */
export async function createWebSocketServer(options: WebSocketServerOptions = {}): Promise<Transport> {
  const name = await webSocketServerName();
  if (name === 'native-ws') {
    const { NativeWsTransport } = await import('./native-ws.js');
    return new NativeWsTransport(options);
  }
  if (name === 'uws') {
    const { UwsTransport } = await import('./uws.js');
    return new UwsTransport(options);
  }
  const { WsServerTransport } = await import('./ws-server.js');
  return new WsServerTransport(options);
}
