/**
 * bench/web-channel.ts: what the browser secure channel (lib/channel/web/,
 * on WebCrypto) costs next to the native one, measured in Node, whose
 * globalThis.crypto.subtle has the same algorithms (Node runs WebCrypto on
 * its thread pool; a browser runs it on its own threads, so take the ratios,
 * not the rates, as the lesson; test/browser/secure-browser.test.ts logs a
 * Chromium figure).
 *
 * Records: AES-256-GCM records/s at 64 B, 1 KiB and 16 KiB: native
 * AeadContext.sealBatch, WebCrypto with a run of records awaited together
 * (what WebSecureChannel does), and WebCrypto one record per await.
 * Channel: handshakes/s and 1 KiB echo round trips/s over MemoryTransport
 * with a SecureChannel server, for a SecureChannel client and a
 * WebSecureChannel client.
 *
 * Run: node --import tsx bench/web-channel.ts [--quick]
 */
import { randomBytes } from 'node:crypto';
import { AeadContext } from '../lib/channel/aead.js';
import { ServerIdentity } from '../lib/channel/handshake.js';
import { SecureChannel } from '../lib/channel/secure.js';
import { WebSecureChannel } from '../lib/channel/web/index.js';
import { RecordKeys } from '../lib/channel/web/records.js';
import { hmacKey } from '../lib/channel/web/subtle.js';
import { MemoryNetwork, MemoryTransport } from '../lib/transport/memory.js';
import type { PeerId } from '../lib/transport/types.js';
import { median, printTable, quick, rate, writeResults } from './_lib.js';

const subtle = globalThis.crypto.subtle;
const samples = quick ? 3 : 7;
const sampleMs = quick ? 100 : 400;

/** Median operations/s of an async step that does `perCall` operations, over timed samples. */
async function asyncRate(fn: () => Promise<unknown>, perCall: number): Promise<number> {
  const warm = performance.now() + sampleMs / 2;
  while (performance.now() < warm) await fn();
  const results: number[] = [];
  for (let s = 0; s < samples; s++) {
    let calls = 0;
    const start = performance.now();
    while (performance.now() - start < sampleMs) {
      await fn();
      calls++;
    }
    results.push((calls * perCall * 1000) / (performance.now() - start));
  }
  return median(results);
}

const recordRows: Record<string, string | number>[] = [];
for (const size of [64, 1024, 16384]) {
  const run = 64;
  const plain = randomBytes(run * size);
  const offsets = Uint32Array.from({ length: run }, (_, i) => i * size);
  const lengths = new Uint32Array(run).fill(size);
  const kinds = new Uint8Array(run).fill(8);
  const flags = new Uint8Array(run);
  const out = Buffer.alloc(run * (size + 16));
  const secret = randomBytes(32);
  const native = new AeadContext('aes-256-gcm', 'seal', { secret });
  const web = await RecordKeys.create(subtle, 'seal', await hmacKey(subtle, secret));
  const parts = Array.from({ length: run }, (_, i) => plain.subarray(i * size, (i + 1) * size));
  const nativeRate = rate(() => native.sealBatch(plain, offsets, lengths, kinds, flags, out)) * run;
  const runRate = await asyncRate(() => Promise.all(parts.map((p) => web.run(8, 0, p))), run);
  const singleRate = await asyncRate(() => web.run(8, 0, parts[0]!), 1);
  const label = size >= 1024 ? `${size / 1024} KiB` : `${size} B`;
  for (const [implementation, perSec] of [
    ['native sealBatch', nativeRate],
    [`WebCrypto, ${run} records per await`, runRate],
    ['WebCrypto, one record per await', singleRate],
  ] as const) {
    recordRows.push({ size: label, implementation, 'records/s': perSec, 'MB/s': (perSec * size) / 1e6, 'vs native': perSec / nativeRate });
  }
  native.close();
}
printTable('AES-256-GCM sealing: records/s (median of samples); ratio against native sealBatch, same size', recordRows);

const identity = ServerIdentity.from(randomBytes(32));

/** A SecureChannel echo server and a client of `kind` on one MemoryNetwork. */
async function pair(kind: 'native' | 'web') {
  const network = new MemoryNetwork();
  const server = new SecureChannel(new MemoryTransport({ network }), { identity });
  server.on('frames', (b) => {
    for (let i = 0; i < b.count; i++) server.send(b.peers[i]!, b.kinds[i]!, b.flags[i]!, b.data.subarray(b.offsets[i]!, b.offsets[i]! + b.lengths[i]!));
  });
  const bound = await server.listen({ host: 'mem', port: 0 });
  // Both clients have the same methods; one shape serves the loop below.
  const client = (kind === 'native' ? new SecureChannel(new MemoryTransport({ network }), { pin: identity.fingerprint }) : new WebSecureChannel(new MemoryTransport({ network }), { pin: identity.fingerprint })) as unknown as Pick<
    SecureChannel,
    'connect' | 'send' | 'close' | 'shutdown'
  > & { on(event: 'frames', listener: (batch: { count: number }) => void): unknown };
  let received = 0;
  let wake: (() => void) | undefined;
  client.on('frames', (b: { count: number }) => {
    received += b.count;
    wake?.();
  });
  const waitFor = (n: number) => new Promise<void>((resolve) => {
    wake = () => received >= n && resolve();
    wake();
  });
  return { server, client, bound, waitFor, received: () => received };
}

const channelRows: Record<string, string | number>[] = [];
const perKind: Record<string, { handshakes: number; echoes: number }> = {};
for (const kind of ['native', 'web'] as const) {
  const t = await pair(kind);
  const handshakes = await asyncRate(async () => {
    const peer = await t.client.connect(t.bound);
    t.client.close(peer);
  }, 1);
  const peer: PeerId = await t.client.connect(t.bound);
  const block = randomBytes(1024);
  const inFlight = 256;
  const echoes = await asyncRate(async () => {
    const target = t.received() + inFlight;
    for (let i = 0; i < inFlight; i++) t.client.send(peer, 9, 0, block);
    await t.waitFor(target);
  }, inFlight);
  perKind[kind] = { handshakes, echoes };
  await t.client.shutdown();
  await t.server.shutdown();
}
for (const kind of ['native', 'web'] as const) {
  channelRows.push({
    client: kind === 'native' ? 'SecureChannel (native)' : 'WebSecureChannel (WebCrypto)',
    'handshakes/s': perKind[kind]!.handshakes,
    '1 KiB echoes/s (256 in flight)': perKind[kind]!.echoes,
    'echo vs native': perKind[kind]!.echoes / perKind.native!.echoes,
  });
}
printTable('Secure channel over MemoryTransport, SecureChannel server: handshakes/s and echo round trips/s (medians)', channelRows);
identity.close();
writeResults('web-channel', [...recordRows, ...channelRows]);
