// Runs inside headless Chromium (bundled by esbuild in secure-browser.test.ts):
// drives WebSecureChannel over BrowserWsTransport against a Node
// SecureChannel-over-UwsTransport echo server and reports what it saw.
import { WebSecureChannel } from '../../lib/channel/web/index.js';
import { BrowserWsTransport } from '../../lib/transport/browser-ws.js';
import type { BrowserFrameBatch } from '../../lib/transport/browser-ws.js';
import { pattern, same, subtleWithoutCurves, until } from './page-util.js';
import { RecordKeys } from '../../lib/channel/web/records.js';
import { hmacKey } from '../../lib/channel/web/subtle.js';

function describeError(err: unknown): { name: string; code: string; message: string } {
  const e = err as { name?: string; code?: string; message?: string };
  return { name: e.name ?? '', code: e.code ?? '', message: e.message ?? String(err) };
}

/** Connects with `pin`, waits for the server's welcome, echoes frames of `sizes` sent in one turn, and times a bulk run. */
async function echo(port: number, pin: string, sizes: number[]) {
  const channel = new WebSecureChannel(new BrowserWsTransport(), { pin });
  const got: { kind: number; flags: number; payload: Uint8Array }[] = [];
  channel.on('frames', (b: BrowserFrameBatch) => {
    for (let i = 0; i < b.count; i++) got.push({ kind: b.kinds[i]!, flags: b.flags[i]!, payload: b.data.slice(b.offsets[i]!, b.offsets[i]! + b.lengths[i]!) });
  });
  const closes: string[] = [];
  channel.on('close', (_p, reason) => closes.push(reason));
  const peer = await channel.connect({ host: '127.0.0.1', port });
  const fingerprint = channel.remoteFingerprint(peer);
  const welcomed = await until(() => got.length === 1, 5000);
  const welcome = welcomed ? new TextDecoder().decode(got[0]!.payload) : '';
  got.length = 0;
  sizes.forEach((size, i) => channel.send(peer, 8 + (i % 54), i % 2, pattern(i, size)));
  const echoed = await until(() => got.length === sizes.length, 20_000);
  const mismatches: number[] = [];
  sizes.forEach((size, i) => {
    const g = got[i];
    if (!g || g.kind !== 8 + (i % 54) || g.flags !== i % 2 || !same(g.payload, pattern(i, size))) mismatches.push(i);
  });
  // A bulk run for the log: 2,000 frames of 1 KiB out and back through WebCrypto on both ends of the page.
  got.length = 0;
  const block = pattern(7, 1024);
  const started = performance.now();
  for (let i = 0; i < 2000; i++) channel.send(peer, 9, 0, block);
  const bulkDone = await until(() => got.length === 2000, 20_000);
  const bulkMs = performance.now() - started;
  const stats = channel.stats();
  const secure = channel.secureStats();
  await channel.shutdown();
  return { fingerprint, welcome, echoed, mismatches, bulkDone, bulkMs, stats, secure, closes };
}

/** Connects with a pin the server does not match: connect() must reject. */
async function wrongPin(port: number, pin: string) {
  const channel = new WebSecureChannel(new BrowserWsTransport(), { pin });
  try {
    await channel.connect({ host: '127.0.0.1', port });
    return { rejected: false, error: undefined, secure: channel.secureStats() };
  } catch (err) {
    return { rejected: true, error: describeError(err), secure: channel.secureStats() };
  } finally {
    await channel.shutdown();
  }
}

/** A WebCrypto without X25519 and Ed25519, as in older browsers: connect() must say what is missing. */
async function missingCurves(port: number) {
  const subtle = subtleWithoutCurves(crypto.subtle);
  const channel = new WebSecureChannel(new BrowserWsTransport(), { subtle, insecureAcceptAnyServer: true });
  try {
    await channel.connect({ host: '127.0.0.1', port });
    return { rejected: false, error: undefined };
  } catch (err) {
    return { rejected: true, error: describeError(err) };
  } finally {
    await channel.shutdown();
  }
}

/** Records sealed per second by this browser's WebCrypto, for the log: runs of 64 per await, and one per await. */
async function sealRates() {
  const keys = await RecordKeys.create(crypto.subtle, 'seal', await hmacKey(crypto.subtle, new Uint8Array(32).fill(9)));
  const rates: Record<string, number> = {};
  for (const size of [64, 1024, 16384]) {
    const block = pattern(1, size);
    let start = performance.now();
    for (let r = 0; r < 8; r++) await Promise.all(Array.from({ length: 64 }, () => keys.run(8, 0, block)));
    rates[`${size} B, 64 per await`] = (512 * 1000) / (performance.now() - start);
    start = performance.now();
    for (let r = 0; r < 256; r++) await keys.run(8, 0, block);
    rates[`${size} B, 1 per await`] = (256 * 1000) / (performance.now() - start);
  }
  return rates;
}

(globalThis as { zsSecure?: unknown }).zsSecure = { echo, wrongPin, missingCurves, sealRates, userAgent: (globalThis as { navigator?: { userAgent?: string } }).navigator?.userAgent };
