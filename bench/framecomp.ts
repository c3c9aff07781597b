/**
 * bench/framecomp.ts: what frame compression costs and saves in the command
 * framework. A Server and a Client in this process, over NodeNetTransport on
 * loopback, echo complete buffers (`callBuffer`) of corpus slices (html, urls,
 * protobuf, text: the frame table's inputs) and of random bytes, 8 calls in
 * flight, with the endpoint options:
 *
 *   off          compression: false (no layer)
 *   absent       no compression option: a receive-only layer (the default)
 *   fast         compression: {} (deflate-fixed fast from 1024 bytes: the default)
 *   default      compression: { level: 'default' }
 *
 * each with and without `secure`. Per round trip it reports the bytes both
 * transports wrote (payloads + frame headers, from their stats) and the CPU
 * time of the process (both sides run here; process.cpuUsage), each a median
 * of samples taken in turn with the other settings, and both as ratios to the "off" row of the same payload and
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
  ['absent', undefined],
  ['fast', {}],
  ['default', { level: 'default' }],
];
const rounds = quick ? 200 : 1000;
const samples = quick ? 3 : 5;
const inFlight = 8;

/** A connected Server and Client with these options; sample() runs `rounds` echoes and returns wire bytes and CPU µs per round trip. */
async function open(secure: boolean, compression: EndpointOptions['compression'], payloads: readonly Buffer[]) {
  const st = new NodeNetTransport();
  const ct = new NodeNetTransport();
  const server = new Server({ quiet: true });
  server.buffer('echo', (b) => b);
  const ep = await server.listen(st, { host: '127.0.0.1', port: 0 }, { compression, ...(secure ? { secure: { identity } } : {}) });
  const client = new Client({ transport: ct, host: '127.0.0.1', port: ep.address.port, quiet: true, compression, ...(secure ? { secure: { pin: identity.fingerprint } } : {}) });
  await client.connect();
  const wireBytes = () => st.stats().bytesOut + ct.stats().bytesOut + 13 * (st.stats().framesOut + ct.stats().framesOut);
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
  return {
    async sample(n: number) {
      const bytes = wireBytes();
      const start = process.cpuUsage();
      await run(n);
      const used = process.cpuUsage(start);
      return { wire: (wireBytes() - bytes) / n, cpu: (used.user + used.system) / n };
    },
    async close() {
      await client.close();
      await server.close();
      await ct.shutdown();
    },
  };
}

// The three settings of one payload are sampled in turn, so a change of load hits each alike.
const rows: Record<string, string | number>[] = [];
for (const secure of [false, true]) {
  for (const size of sizes) {
    for (const [kind, payloads] of [['corpus', slices(size)], ['random', [randomBytes(size)]]] as const) {
      const setups = await Promise.all(modes.map(([, compression]) => open(secure, compression, payloads)));
      for (const s of setups) await s.sample(rounds / 2);
      const wire: number[][] = modes.map(() => []);
      const cpu: number[][] = modes.map(() => []);
      for (let i = 0; i < samples; i++) {
        for (const [m, s] of setups.entries()) {
          const r = await s.sample(rounds);
          wire[m]!.push(r.wire);
          cpu[m]!.push(r.cpu);
        }
      }
      for (const s of setups) await s.close();
      for (const [m, [mode]] of modes.entries()) {
        rows.push({
          secure: secure ? 'yes' : 'no',
          payload: `${size} ${kind}`,
          compression: mode,
          'wire bytes/rt': median(wire[m]!),
          '× off': median(wire[m]!) / median(wire[0]!),
          'CPU µs/rt': median(cpu[m]!),
          'CPU × off': median(cpu[m]!) / median(cpu[0]!),
        });
      }
    }
  }
}
printTable(`Framework echo of complete buffers over Node net, ${inFlight} in flight, ${rounds} round trips × ${samples} samples (medians)`, rows);
writeResults('framecomp', rows, { rounds, samples, inFlight });
