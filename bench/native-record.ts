/**
 * bench/native-record.ts: the record stage of the native TCP transport's I/O
 * path against the same work done in JavaScript.
 *
 * Default: compression inside the loop (the `compression` option) against
 * compress() before send() and decompress() in the 'frames' handler around an
 * uncompressed NativeTcpTransport (what a JavaScript transport decorator
 * does), and against no compression.
 * `--secure`: a SecureChannel whose AEAD records are sealed and opened by the
 * loop (record offload) against one that seals and opens them from JavaScript
 * (`offload: false`, the batch native calls of lib/channel/aead.ts), and
 * against no channel; AES-256-GCM, no compression.
 *
 * Load: one process holds a client and an echo server transport; 8
 * connections each keep 4 frames in flight; payloads are 16 KiB slices of the
 * corpus (text, HTML, protobuf, mixed), echoed back. Every frame is compressed
 * and decompressed twice per round trip in every compressing row, so the rows
 * compare like with like. Reported per row: round trips/s (wall clock), CPU µs
 * per round trip (process CPU time, the I/O thread included: steadier than
 * wall time on a shared machine), payload bytes on the wire per byte of
 * payload, and the ratio of round trips/s to the JavaScript row. Rows are run
 * round-robin, medians of the rounds.
 *
 *   node --import tsx bench/native-record.ts [--quick] [--method deflate-fixed|brrc] [--secure]
 */
import { randomBytes } from 'node:crypto';
import { compress, decompress, NativeTcpTransport, FrameFlag, type FrameBatch } from '../lib/index.js';
import { SecureChannel } from '../lib/channel/secure.js';
import { ServerIdentity } from '../lib/channel/handshake.js';
import type { Transport } from '../lib/transport/types.js';
import { loadCorpus } from '../test/helpers/corpus.js';
import { median, printTable, quick, writeResults } from './_lib.js';

const CONNS = 8;
const IN_FLIGHT = 4;
const SIZE = 16 * 1024;
const SECONDS = quick ? 1 : 2;
const ROUNDS = quick ? 2 : 5;
const methodArg = process.argv.indexOf('--method');
const METHOD = (methodArg > 0 ? process.argv[methodArg + 1] : 'deflate-fixed') as 'deflate-fixed' | 'brrc';
if (METHOD !== 'deflate-fixed' && METHOD !== 'brrc') throw new RangeError(`--method must be deflate-fixed or brrc, got ${METHOD}`);

const corpus = loadCorpus(true).filter(([name]) => /html|alice29|geo\.protodata|kppkn|urls/.test(name));
const payloads: Buffer[] = [];
for (const [, data] of corpus) for (let at = 0; at + SIZE <= data.length && payloads.length < 64; at += SIZE * 3) payloads.push(data.subarray(at, at + SIZE));

const SECURE = process.argv.includes('--secure');
type Row = 'none' | 'js' | 'native inline' | 'native I/O thread';
const ROWS: Row[] = ['none', 'js', 'native inline', 'native I/O thread'];
const identity = ServerIdentity.from(randomBytes(32));
const jsOptions = { level: 'fast', checksum: true } as const;

interface Sample {
  trips: number;
  cpuUs: number;
  wire: number;
}

async function runRow(row: Row): Promise<Sample> {
  const native = row.startsWith('native');
  const opts = {
    ioThread: row === 'native I/O thread',
    compression: native && !SECURE ? { method: METHOD, level: 'fast' as const, threshold: 256 } : undefined,
  };
  let server: Transport = new NativeTcpTransport(opts);
  let client: Transport = new NativeTcpTransport(opts);
  const nativeClient = client as NativeTcpTransport;
  if (SECURE && row !== 'none') {
    // 'js': records sealed and opened from JavaScript; native rows: offloaded to the loop.
    server = new SecureChannel(server, { identity, suites: ['aes-256-gcm'], offload: native });
    client = new SecureChannel(client, { pin: identity.fingerprint, suites: ['aes-256-gcm'], offload: native });
  }
  const js = row === 'js' && !SECURE;
  let wire = 0;
  let plain = 0;
  let running = true;
  server.on('frames', (b: FrameBatch) => {
    for (let i = 0; running && i < b.count; i++) {
      const payload = b.data.subarray(b.offsets[i]!, b.offsets[i]! + b.lengths[i]!);
      if (js) {
        const z = compress(decompress(payload), METHOD, jsOptions);
        server.send(b.peers[i]!, b.kinds[i]!, FrameFlag.Compressed, z);
      } else {
        server.send(b.peers[i]!, b.kinds[i]!, 0, payload);
      }
    }
  });
  let trips = 0;
  let next = 0;
  const sendOne = (peer: number) => {
    const p = payloads[next++ % payloads.length]!;
    plain += p.length;
    if (js) {
      const z = compress(p, METHOD, jsOptions);
      wire += z.length;
      client.send(peer, 9, FrameFlag.Compressed, z);
    } else {
      client.send(peer, 9, 0, p);
    }
  };
  client.on('frames', (b: FrameBatch) => {
    for (let i = 0; i < b.count; i++) {
      if (js) decompress(b.data.subarray(b.offsets[i]!, b.offsets[i]! + b.lengths[i]!));
      trips++;
      if (running) sendOne(b.peers[i]!);
    }
  });
  const at = await server.listen({ host: '127.0.0.1', port: 0 });
  const peers = await Promise.all(Array.from({ length: CONNS }, () => client.connect(at)));
  for (const p of peers) for (let k = 0; k < IN_FLIGHT; k++) sendOne(p);
  await new Promise((r) => setTimeout(r, 300));
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  const trips0 = trips;
  await new Promise((r) => setTimeout(r, SECONDS * 1000));
  const cpu = process.cpuUsage(cpu0);
  const done = trips - trips0;
  const elapsed = (performance.now() - t0) / 1000;
  running = false;
  await client.shutdown();
  await server.shutdown();
  const cs = nativeClient.compressionStats();
  const ratio = SECURE ? (row === 'none' ? 1 : (plain + 16 * (plain / SIZE)) / plain) : native ? (cs.bytesAfter + (plain - cs.bytesBefore)) / plain : js ? wire / plain : 1;
  return { trips: done / elapsed, cpuUs: (cpu.user + cpu.system) / done, wire: ratio };
}

const samples = new Map<Row, Sample[]>(ROWS.map((r) => [r, []]));
for (let round = 0; round < ROUNDS; round++) for (const row of ROWS) samples.get(row)!.push(await runRow(row));
const med = (row: Row, key: keyof Sample) => median(samples.get(row)!.map((s) => s[key]));
const jsTrips = med('js', 'trips');
const label = (row: Row) =>
  SECURE
    ? row === 'none'
      ? 'no secure channel'
      : row === 'js'
        ? 'SecureChannel, records in JS (offload: false)'
        : `SecureChannel, records offloaded, ${row}`
    : row === 'none'
      ? 'no compression'
      : row === 'js'
        ? `compress()/decompress() in JS, ${METHOD}`
        : `${row}, ${METHOD}`;
const rows = ROWS.map((row) => ({
  path: label(row),
  'round trips/s': med(row, 'trips'),
  'MB/s (payload, each way)': (med(row, 'trips') * SIZE) / 1e6,
  'CPU µs / round trip': med(row, 'cpuUs'),
  'wire bytes / payload byte': med(row, 'wire'),
  '× JS path': med(row, 'trips') / jsTrips,
}));
printTable(`${SECURE ? 'AEAD records (AES-256-GCM)' : 'Compression'} in the native I/O path vs in JavaScript: ${CONNS} conns × ${IN_FLIGHT} in flight × ${SIZE / 1024} KiB corpus slices, echo, medians of ${ROUNDS}`, rows);
writeResults(SECURE ? 'native-record-secure' : 'native-record', rows, { method: SECURE ? 'aes-256-gcm' : METHOD, conns: CONNS, inFlight: IN_FLIGHT, size: SIZE });
