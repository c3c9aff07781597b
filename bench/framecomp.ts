/**
 * bench/framecomp.ts: what frame compression costs and saves in the command
 * framework. A Server and a Client in this process, over NodeNetTransport on
 * loopback, echo complete buffers (`callBuffer`) of corpus slices (html, urls,
 * protobuf, text: the frame table's inputs) and of random bytes, 8 calls in
 * flight, with the endpoint options:
 *
 *   off          compression: false
 *   fast         compression: {} (deflate-fixed fast from 1024 bytes: the default)
 *   default      compression: { level: 'default' }
 *
 * each with and without `secure`. Per round trip it reports the bytes both
 * transports wrote (payloads + frame headers, from their stats) and the CPU
 * time of the process (both sides run here; process.cpuUsage), each a median
 * of samples, and both as ratios to the "off" row of the same payload and
 * security in the same run.
 *
 * Run: node --import tsx bench/framecomp.ts [--quick]
 */
import { randomBytes } from 'node:crypto';
import { Client, NodeNetTransport, Server, ServerIdentity, type EndpointOptions } from '../lib/index.js';
import { loadCorpus } from '../test/helpers/corpus.js';
import { median, printTable, quick, writeResults } from './_lib.js';

const corpus = new Map(loadCorpus(true));
function slices(size: number): Buffer[] {
  return ['html', 'urls.10K', 'geo.protodata', 'alice29.txt'].map((name, i) => corpus.get(name)!.subarray(i * 997, i * 997 + size));
}

const sizes = [512, 4096, 65536];
const identity = ServerIdentity.from(randomBytes(32));
const modes: [string, EndpointOptions['compression']][] = [
  ['off', false],
  ['fast', {}],
  ['default', { level: 'default' }],
];
const rounds = quick ? 200 : 1000;
const samples = quick ? 3 : 5;
const inFlight = 8;

async function measure(secure: boolean, compression: EndpointOptions['compression'], payloads: readonly Buffer[]) {
  const st = new NodeNetTransport();
  const ct = new NodeNetTransport();
  const server = new Server({ quiet: true });
  server.buffer('echo', (b) => b);
  const ep = await server.listen(st, { host: '127.0.0.1', port: 0 }, { compression, ...(secure ? { secure: { identity } } : {}) });
  const client = new Client({ transport: ct, host: '127.0.0.1', port: ep.address.port, quiet: true, compression, ...(secure ? { secure: { pin: identity.fingerprint } } : {}) });
  await client.connect();
  const run = async (n: number) => {
    let next = 0;
    const lane = async () => {
      while (next < n) {
        const p = payloads[next++ % payloads.length]!;
        const back = await client.callBuffer('echo', p);
        if (back.length !== p.length) throw new Error('echo came back with another length');
      }
    };
    await Promise.all(Array.from({ length: inFlight }, lane));
  };
  await run(rounds / 4);
  const wire: number[] = [];
  const cpu: number[] = [];
  for (let s = 0; s < samples; s++) {
    const bytes = st.stats().bytesOut + ct.stats().bytesOut + 13 * (st.stats().framesOut + ct.stats().framesOut);
    const start = process.cpuUsage();
    await run(rounds);
    const used = process.cpuUsage(start);
    cpu.push((used.user + used.system) / rounds);
    wire.push((st.stats().bytesOut + ct.stats().bytesOut + 13 * (st.stats().framesOut + ct.stats().framesOut) - bytes) / rounds);
  }
  await client.close();
  await server.close();
  await ct.shutdown();
  return { wire: median(wire), cpu: median(cpu) };
}

const rows: Record<string, string | number>[] = [];
for (const secure of [false, true]) {
  for (const size of sizes) {
    for (const [kind, payloads] of [['corpus', slices(size)], ['random', [randomBytes(size)]]] as const) {
      let base: { wire: number; cpu: number } | undefined;
      for (const [mode, compression] of modes) {
        const r = await measure(secure, compression, payloads);
        base ??= r;
        rows.push({
          secure: secure ? 'yes' : 'no',
          payload: `${size} ${kind}`,
          compression: mode,
          'wire bytes/rt': r.wire,
          '× off': r.wire / base.wire,
          'CPU µs/rt': r.cpu,
          'CPU × off': r.cpu / base.cpu,
        });
      }
    }
  }
}
printTable(`Framework echo of complete buffers over Node net, ${inFlight} in flight, ${rounds} round trips × ${samples} samples (medians)`, rows);
writeResults('framecomp', rows, { rounds, samples, inFlight });
