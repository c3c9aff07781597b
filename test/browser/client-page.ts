// Runs inside headless Chromium (bundled by esbuild in client-browser.test.ts;
// the page loaded the real browser bundle, /zserver.js, into globalThis.zs
// first): a zserver Client over BrowserWsTransport, or over WebSecureChannel
// wrapping it when given the server's pin, that calls every command kind of
// test/browser/page-server.ts, and serves commands the server calls.
import type * as Zs from '../../lib/browser.js';

const zs = () => (globalThis as unknown as { zs: typeof Zs }).zs;

/** The bytes of test transfers: position-dependent, so a lost or moved byte shows. */
export function pattern(size: number, seed: number): Uint8Array {
  const p = new Uint8Array(size);
  for (let j = 0; j < size; j++) p[j] = (seed * 31 + j * 7 + (j >>> 8)) & 255;
  return p;
}

/** FNV-1a (32-bit) of `bytes`: both sides compute it to compare transfers without MD5 in the page. */
export function fnv1a(bytes: Uint8Array): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < bytes.length; i++) h = Math.imul(h ^ bytes[i]!, 0x01000193);
  return h >>> 0;
}

/** Text that compresses well but not trivially: words drawn by a fixed LCG, so both sides can make the same. */
export function compressibleText(size: number, seed = 1): string {
  const words = ['zserver', 'frame', 'payload', 'compress', 'the', 'of', 'and', 'connection', 'request', 'reply', 'stream', '42', 'browser'];
  const parts: string[] = [];
  let x = seed >>> 0;
  let length = 0;
  while (length < size) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    const w = `${words[(x >>> 16) % words.length]} `;
    parts.push(w);
    length += w.length;
  }
  return parts.join('').slice(0, size);
}

/** The page's big stream handler: the size and FNV-1a of what arrived, and whether it came as a Uint8Array. */
async function download(stream: Zs.BigStreamIn) {
  const whole = await stream.collect();
  return new (zs().DataFrame)().writeUInt32(whole.length).writeUInt32(fnv1a(whole)).writeByte(whole instanceof Uint8Array ? 1 : 0);
}

interface State {
  client: Zs.Client;
  channel: Zs.WebSecureChannel | undefined;
  said: string[];
  pushed: unknown[];
  connects: number;
  disconnects: string[];
  reconnecting: number;
}

let s: State | undefined;

function state(): State {
  if (!s) throw new Error('connect() first');
  return s;
}

/** The page's transport: the WebSocket, wrapped by the secure channel when `pin` is given. */
function transport(pin: string | undefined): { transport: Zs.ClientOptions['transport']; channel: Zs.WebSecureChannel | undefined } {
  const { BrowserWsTransport, WebSecureChannel } = zs();
  const channel = pin === undefined ? undefined : new WebSecureChannel(new BrowserWsTransport(), { pin });
  // The Client is typed for Node transports; both have the same methods and events.
  return { transport: (channel ?? new BrowserWsTransport()) as unknown as Zs.ClientOptions['transport'], channel };
}

/** Creates the client (reconnecting by itself), registers the commands the server calls, connects. */
async function connect(port: number, pin?: string): Promise<number> {
  const { Client, DataFrame } = zs();
  const t = transport(pin);
  const client = new Client({
    transport: t.transport,
    host: '127.0.0.1',
    port,
    reconnect: { initialDelay: 50, maxDelay: 400, jitter: 0 },
    requestTimeout: 10_000,
    quiet: true,
  });
  const st: State = { client, channel: t.channel, said: [], pushed: [], connects: 0, disconnects: [], reconnecting: 0 };
  s = st;
  client.on('connect', () => st.connects++);
  client.on('disconnect', (reason) => st.disconnects.push(reason));
  client.on('reconnecting', () => st.reconnecting++);
  client.console('whoami', (text) => `browser got ${text}`);
  client.stream('mul', (df) => new DataFrame().writeInt32(df.readInt32() * df.readInt32()));
  client.directConsole('said', (text) => void st.said.push(text));
  client.directStream('pushed', (df) => void st.pushed.push(df.toJSON()));
  client.buffer('reverse', (data) => data.slice().reverse());
  client.bigStream('download', download);
  const peer = await client.connect();
  return peer.id;
}

/** Calls every command kind of the server from the browser; returns what came back. */
async function clientCalls() {
  const { DataFrame, RemoteError } = zs();
  const { client } = state();
  const echo = await client.callConsole('echo', 'héllo ✓ from the browser');
  const add = (await client.call('add', new DataFrame().writeInt32(40).writeInt32(2))).readInt32();
  // Callback form too.
  const addCb = await new Promise<number>((resolve, reject) =>
    client.call('add', new DataFrame().writeInt32(-5).writeInt32(3), undefined, (err, reply) => (err ? reject(err) : resolve(reply!.readInt32()))),
  );
  const sentNote = client.sendConsole('note', 'direct text from the browser');
  const sentFrame = client.send('note-frame', new DataFrame().writeString('frame').writeInt64(1n << 40n).writeFloat64Array([1.5, -2]));
  // 300 kB: several messages of chunkSize (64 KiB) each, both ways.
  const md5 = await client.callBuffer('md5', pattern(300_000, 1));
  const md5IsBytes = md5 instanceof Uint8Array && md5.length === 16;
  const md5Hex = Array.from(md5, (b) => b.toString(16).padStart(2, '0')).join('');
  client.sendBuffer('keep', pattern(100_000, 2));
  const progress: number[] = [];
  const up = await client.sendBigStream('upload', pattern(3_000_000, 3), {
    info: new DataFrame().writeString('file.bin'),
    onProgress: (sent) => progress.push(sent),
  });
  const upload = { size: Number(up.readUInt64()), md5: up.readString(), name: up.readString(), progressSteps: progress.length, last: progress.at(-1) };
  let unknown = '';
  try {
    await client.callConsole('no-such-command', 'x');
  } catch (err) {
    unknown = err instanceof RemoteError ? err.remoteCode : `not a RemoteError: ${String(err)}`;
  }
  let failed = '';
  try {
    await client.callConsole('fail', 'x');
  } catch (err) {
    failed = err instanceof RemoteError ? `${err.remoteCode}: ${err.message}` : String(err);
  }
  // Many requests in flight at once, answered in any order.
  const many = await Promise.all(Array.from({ length: 200 }, (_, i) => client.callConsole('echo', `n${i}`)));
  const manyOk = many.every((v, i) => v === `n${i}`);
  const stats = client.stats();
  return { echo, add, addCb, sentNote, sentFrame, md5Hex, md5IsBytes, upload, unknown, failed, manyOk, messagesOut: stats.messagesOut };
}

function snapshot() {
  const st = state();
  const { said, pushed, connects, disconnects, reconnecting, client, channel } = st;
  return { said, pushed, connects, disconnects, reconnecting, connected: client.connected, secure: channel?.secureStats() };
}

/** A second Client whose pin is not the server's: what its connect() rejects with. */
async function wrongPin(port: number, pin: string) {
  const { Client } = zs();
  const t = transport(pin);
  const client = new Client({ transport: t.transport, host: '127.0.0.1', port, quiet: true });
  try {
    await client.connect();
    return { rejected: false };
  } catch (err) {
    const e = err as Error & { code?: string; cause?: Error & { code?: string } };
    return { rejected: true, name: e.name, code: e.code, message: e.message, cause: { name: e.cause?.name, code: e.cause?.code }, connected: client.connected };
  } finally {
    await client.close();
    await t.channel!.shutdown();
  }
}

async function echo(text: string): Promise<string> {
  return state().client.callConsole('echo', text);
}

async function close(): Promise<{ connected: boolean; threw: string }> {
  const { client } = state();
  await client.close();
  let threw = '';
  try {
    await client.callConsole('echo', 'after close');
  } catch (err) {
    threw = (err as { code?: string }).code ?? String(err);
  }
  return { connected: client.connected, threw };
}

let extra: { client: Zs.Client; channel: Zs.WebSecureChannel | undefined } | undefined;

/**
 * A second Client (over the secure channel when `pin` is given) to an endpoint that compresses:
 * it echoes `size` bytes of text and gets them back as a complete buffer, then stays connected
 * for the server's big stream ('download'); `closeExtra()` ends it. Also what `compression: {}`
 * makes the bundle's Client throw.
 */
async function compressedCalls(port: number, pin: string | undefined, size: number) {
  const { Client } = zs();
  let refused = '';
  try {
    new Client({ transport: transport(pin).transport, host: '127.0.0.1', port, compression: {} });
  } catch (err) {
    refused = `${(err as Error).name}: ${(err as Error).message}`;
  }
  const t = transport(pin);
  const client = new Client({ transport: t.transport, host: '127.0.0.1', port, quiet: true, requestTimeout: 20_000 });
  client.bigStream('download', download);
  extra = { client, channel: t.channel };
  await client.connect();
  const text = compressibleText(size);
  const echoed = await client.callConsole('echo', text);
  const bytes = new TextEncoder().encode(text);
  const same = await client.callBuffer('same', bytes);
  const bufferIntact = same.length === bytes.length && same.every((b, i) => b === bytes[i]);
  return { echoIntact: echoed === text, bufferIntact, protocolErrors: client.stats().protocolErrors, refused };
}

async function closeExtra(): Promise<number> {
  const x = extra!;
  extra = undefined;
  const { protocolErrors } = x.client.stats();
  await x.client.close();
  await x.channel?.shutdown();
  return protocolErrors;
}

(globalThis as { zsTest?: unknown }).zsTest = { connect, clientCalls, snapshot, echo, close, wrongPin, compressedCalls, closeExtra };
