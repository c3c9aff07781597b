// Runs inside headless Chromium (bundled by esbuild in ws-browser.test.ts):
// drives BrowserWsTransport against a UwsTransport echo server and reports
// what it saw, for the test to assert on.
import { BrowserWsTransport } from '../../lib/transport/browser-ws.js';
import type { BrowserFrameBatch } from '../../lib/transport/browser-ws.js';
import { pattern, same, until } from './page-util.js';

interface Got {
  kind: number;
  flags: number;
  payload: Uint8Array;
}

/** Connects, waits for the server's welcome push, echoes frames of the given sizes, and checks drain. */
async function run(port: number, sizes: number[]) {
  const t = new BrowserWsTransport();
  const got: Got[] = [];
  t.on('frames', (b: BrowserFrameBatch) => {
    for (let i = 0; i < b.count; i++) {
      got.push({ kind: b.kinds[i]!, flags: b.flags[i]!, payload: b.data.slice(b.offsets[i]!, b.offsets[i]! + b.lengths[i]!) });
    }
  });
  const closes: string[] = [];
  t.on('close', (_p, reason) => closes.push(reason));
  const peer = await t.connect({ host: '127.0.0.1', port });
  const welcomed = await until(() => got.length === 1, 5000);
  const welcome = welcomed ? new TextDecoder().decode(got[0]!.payload) : '';
  got.length = 0;
  for (let i = 0; i < sizes.length; i++) t.send(peer, 8 + (i % 56), i % 4, pattern(i, sizes[i]!));
  const echoed = await until(() => got.length === sizes.length, 10_000);
  const mismatches: number[] = [];
  sizes.forEach((size, i) => {
    const g = got[i];
    if (!g || g.kind !== 8 + (i % 56) || g.flags !== i % 4 || !same(g.payload, pattern(i, size))) mismatches.push(i);
  });
  // Backpressure: fill past the high-water mark, then wait for 'drain'.
  got.length = 0;
  let full = false;
  let sent = 0;
  while (!full && sent < 200) {
    full = !t.send(peer, 9, 0, new Uint8Array(256 * 1024));
    sent++;
  }
  const drained = full ? await new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => resolve(false), 10_000);
    t.once('drain', () => {
      clearTimeout(timer);
      resolve(true);
    });
  }) : false;
  const allBack = await until(() => got.length === sent, 20_000);
  const stats = t.stats();
  await t.shutdown();
  let threwAfterShutdown = false;
  try {
    t.send(peer, 8, 0, new Uint8Array(1));
  } catch (err) {
    threwAfterShutdown = (err as { code?: string }).code === 'ZS_CONNECTION_CLOSED';
  }
  return { welcome, echoed, count: got.length, mismatches, full, drained, allBack, sent, stats, closes, threwAfterShutdown };
}

(globalThis as { zsTest?: unknown }).zsTest = { run };
