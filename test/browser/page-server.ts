// The server side of the browser client tests: a Server with a command of
// every kind, listening on Node net (TCP) and on WebSocket (what
// createWebSocketServer() makes: NativeWsTransport on Linux; with `tls`, wss:// in the native loop),
// whose WebSocket port also serves a test page and the browser bundle. It can
// be closed and started again on the same ports (the reconnect test). The
// WebSocket endpoint may have channel layers (`secure`: the secure client test).
import { createHash } from 'node:crypto';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import type { LayerOptions } from '../../lib/framework/layers.js';
import { Server, type ServerEndpoint } from '../../lib/framework/server.js';
import { DataFrame } from '../../lib/protocol/dataframe.js';
import { NodeNetTransport } from '../../lib/transport/node-net.js';
import type { HttpAnswer } from '../../lib/transport/ws-server.js';
import { WssTransport } from '../transport/native-tls-helpers.js';
import { DefaultWsServer } from '../transport/ws-helpers.js';
import { bundleBrowser } from '../../scripts/build-browser.mjs';

/** What the direct (no answer) commands received, in order. */
export interface Received {
  notes: string[];
  frames: unknown[];
  kept: { length: number; md5: string }[];
}

const here = fileURLToPath(new URL('.', import.meta.url));

export const md5hex = (b: Uint8Array) => createHash('md5').update(b).digest('hex');

/** The page: it loads the bundle into globalThis.zs, then the test code (client-page.ts) that uses it. */
const PAGE =
  '<!doctype html><title>zserver client test</title>' +
  '<script type="module">import * as zs from "/zserver.js"; globalThis.zs = zs; await import("/client-page.js");</script>';

let scripts: Promise<{ bundle: string; page: string }> | undefined;

async function buildScripts(): Promise<{ bundle: string; page: string }> {
  const b = await bundleBrowser();
  if (b.problems.length > 0) throw new Error(b.problems.join('\n'));
  const page = await build({
    entryPoints: [join(here, 'client-page.ts')],
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    write: false,
    logLevel: 'silent',
  });
  return { bundle: b.code, page: page.outputFiles[0]!.text };
}

/** The browser bundle and the test page (built once per process), as the WebSocket server transport's http handler. */
export async function pageFiles(): Promise<(method: string, url: string) => HttpAnswer | undefined> {
  scripts ??= buildScripts();
  const { bundle, page } = await scripts;
  const js = { 'content-type': 'text/javascript' };
  return (_method, url) => {
    if (url === '/') return { headers: { 'content-type': 'text/html' }, body: PAGE };
    if (url === '/zserver.js') return { headers: js, body: bundle };
    if (url === '/client-page.js') return { headers: js, body: page };
    return undefined;
  };
}

export interface PageServer {
  server: Server;
  tcp: ServerEndpoint;
  ws: ServerEndpoint;
  received: Received;
  close(): Promise<void>;
}

/**
 * A port that was free a moment ago. The restart test listens on fixed port numbers: uWS sets
 * SO_REUSEADDR only when listening on a port other than 0, and without it the server's
 * connections in TIME_WAIT keep the port taken for a minute after the server closed them.
 */
export async function freePort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as { port: number };
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

/**
 * Starts the server; ports 0 pick free ones; `wsLayers` are the WebSocket endpoint's secure/compression
 * options; `origins` lists other pages' origins allowed on its WebSocket (plus its own page's when
 * wsPort is fixed; without `origins`, same-origin pages only).
 */
export async function startPageServer(tcpPort: number, wsPort: number, wsLayers: LayerOptions = {}, origins?: string[], tls = false): Promise<PageServer> {
  const received: Received = { notes: [], frames: [], kept: [] };
  const server = new Server({ quiet: true, requestTimeout: 10_000 });
  server.console('echo', (text) => text);
  server.stream('add', (df) => new DataFrame().writeInt32(df.readInt32() + df.readInt32()));
  server.directConsole('note', (text) => void received.notes.push(text));
  server.directStream('note-frame', (df) => void received.frames.push(df.toJSON()));
  server.buffer('md5', (data) => createHash('md5').update(data).digest());
  server.buffer('keep', (data) => void received.kept.push({ length: data.length, md5: md5hex(data) }));
  server.buffer('same', (data) => data);
  server.bigStream('upload', async (stream) => {
    const whole = await stream.collect();
    return new DataFrame().writeUInt64(BigInt(whole.length)).writeString(md5hex(whole)).writeString(stream.info.readString());
  });
  server.console('fail', () => {
    throw Object.assign(new Error('failed on purpose'), { code: 'E_PURPOSE' });
  });
  const tcp = await server.listen(new NodeNetTransport(), { host: '127.0.0.1', port: tcpPort });
  const wsOptions = { http: await pageFiles(), ...(origins ? { origins: [...origins, `${tls ? 'https' : 'http'}://127.0.0.1:${wsPort}`] } : {}) };
  // The default server (ZSERVER_WS_SERVER=uws or ws runs the suite on another); TLS is the native loop's.
  const wsTransport = tls ? new WssTransport(wsOptions) : new DefaultWsServer(wsOptions);
  const ws = await server.listen(wsTransport, { host: '127.0.0.1', port: wsPort }, wsLayers);
  return { server, tcp, ws, received, close: () => server.close() };
}
