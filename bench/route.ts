/**
 * bench/route.ts: round trips per second and p50/p99 latency of one console command
 * (`upper`, ~20 bytes), called by clients of a zserver Server in this process and handled:
 *
 *   in-process        by the Server itself (a local handler): the ceiling
 *   NATS core         routed by a LogicTier to a NATS queue group served by 2 Node worker processes
 *   NATS durable      the same through JetStream (stored, explicit acks, redelivery on a crash)
 *   0MQ DEALER/ROUTER the DIOCP-style baseline: the handler passes the request over a zeromq
 *                     DEALER socket to 2 worker processes with ROUTER sockets (round robin), and
 *                     relays their answer; no broker, no acks, nothing kept when a worker dies
 *
 * All rows run in the same process, one after the other, with the same load: CONNECTIONS
 * clients × INFLIGHT requests each, closed loop, over the native TCP transport (Node net where
 * native is not built). One nats-server (started here, -js, temp store) and every worker
 * process are stopped at the end. Needs nats-server on PATH (apt-get install -y nats-server);
 * the 0MQ row needs the `zeromq` package (a devDependency; its binary ships inside the package)
 * and prints why when it cannot load.
 *
 * Run: node --import tsx bench/route.ts [--quick] [--only inprocess,core,durable,zmq]
 * (The same file is the worker: bench/route.ts --nats-worker URL | --zmq-worker PORT.)
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { Client, LogicTier, LogicWorker, Server, createTransport, transportAvailable, type Transport } from '../lib/index.js';
import { freePort, startNats } from '../test/logic/nats.js';
import { printTable, quick, writeResults } from './_lib.js';

const CONNECTIONS = 4;
const INFLIGHT = 16;
const WARM_MS = quick ? 800 : 2000;
const MEASURE_MS = quick ? 1500 : 4000;
const WORKERS = 2;
const PAYLOAD = 'hello, logic tier 0123';

const HELP = `Usage: node --import tsx bench/route.ts [--quick] [--only inprocess,core,durable,zmq]

Round trips/s and p50/p99 of a console command handled in-process, routed over NATS (core
queue group and durable JetStream, ${WORKERS} Node worker processes, one nats-server), and passed to
${WORKERS} workers over zeromq DEALER/ROUTER; ${CONNECTIONS} clients x ${INFLIGHT} in flight, same run.
--quick: ${800} ms warm-up and 1500 ms measured per row (default 2000 / 4000).
Writes bench/results/route.json. Needs nats-server (apt-get install -y nats-server).
`;

async function natsWorker(url: string): Promise<void> {
  const worker = await LogicWorker.connect({ servers: url, concurrency: 256 });
  worker.console('upper', (t) => t.toUpperCase());
  worker.console('upperd', (t) => t.toUpperCase(), { durable: true });
  await worker.ready((subject) => process.stdout.write(`bound ${subject}\n`));
  process.stdout.write('ready\n');
  process.on('SIGTERM', () => void worker.close(500).then(() => process.exit(0)));
}

async function zmqWorker(port: number): Promise<void> {
  const zmq = await import('zeromq');
  const router = new zmq.Router();
  await router.bind(`tcp://127.0.0.1:${port}`);
  process.stdout.write('ready\n');
  process.on('SIGTERM', () => {
    router.close();
    process.exit(0);
  });
  for await (const [identity, id, body] of router) {
    await router.send([identity!, id!, Buffer.from(body!.toString('utf8').toUpperCase(), 'utf8')]);
  }
}

function child(args: string[]): ChildProcess {
  return spawn(process.execPath, ['--import', 'tsx', 'bench/route.ts', ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
}

function waitLine(c: ChildProcess, re: RegExp): Promise<void> {
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`worker printed no ${re} in 20 s: ${out}`)), 20_000);
    c.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (re.test(out)) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
}

interface Measured {
  rate: number;
  p50: number;
  p99: number;
  errors: number;
}

/** Closed-loop load on command `name` of the server at `port`: CONNECTIONS × INFLIGHT. */
async function load(transport: Transport, port: number, name: string): Promise<Measured> {
  const clients: Client[] = [];
  for (let i = 0; i < CONNECTIONS; i++) {
    const c = new Client({ transport, host: '127.0.0.1', port });
    await c.connect();
    clients.push(c);
  }
  let measuring = false;
  let stop = false;
  let count = 0;
  let errors = 0;
  const latencies: number[] = [];
  const loops: Promise<void>[] = [];
  for (const c of clients) {
    for (let k = 0; k < INFLIGHT; k++) {
      loops.push(
        (async () => {
          while (!stop) {
            const t0 = performance.now();
            try {
              await c.callConsole(name, PAYLOAD, { timeout: 10_000 });
            } catch {
              errors++;
              continue;
            }
            if (measuring) {
              count++;
              latencies.push(performance.now() - t0);
            }
          }
        })(),
      );
    }
  }
  await new Promise((r) => setTimeout(r, WARM_MS));
  measuring = true;
  const start = performance.now();
  await new Promise((r) => setTimeout(r, MEASURE_MS));
  measuring = false;
  const elapsed = performance.now() - start;
  stop = true;
  await Promise.all(loops);
  for (const c of clients) await c.close();
  latencies.sort((a, b) => a - b);
  const q = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))] ?? NaN;
  return { rate: (count * 1000) / elapsed, p50: q(0.5), p99: q(0.99), errors };
}

async function main(): Promise<void> {
  if (process.argv.includes('--help')) {
    process.stdout.write(HELP);
    return;
  }
  const at = (flag: string) => process.argv[process.argv.indexOf(flag) + 1]!;
  if (process.argv.includes('--nats-worker')) return natsWorker(at('--nats-worker'));
  if (process.argv.includes('--zmq-worker')) return zmqWorker(Number(at('--zmq-worker')));
  const onlyArg = process.argv.includes('--only') ? at('--only').split(',') : ['inprocess', 'core', 'durable', 'zmq'];

  const transportName = (await transportAvailable('native')) ? 'native' : 'node-net';
  const nats = await startNats();
  const children: ChildProcess[] = [];
  // A crash of this process must not leave workers behind.
  process.on('exit', () => children.forEach((c) => c.kill('SIGKILL')));
  const rows: Record<string, string | number>[] = [];
  const notes: string[] = [];
  const server = new Server({ quiet: true, maxConcurrentRequests: 1024 });
  const tier = await LogicTier.connect({ servers: nats.url });
  try {
    server.console('upper-local', (t) => t.toUpperCase());
    server.route('upper', { via: tier, maxInFlight: 4096 });
    server.route('upperd', { via: tier, durable: true, maxInFlight: 4096, ackWait: 5000 });
    const serverTransport = await createTransport(transportName);
    const ep = await server.listen(serverTransport, { host: '127.0.0.1', port: 0 });
    const clientTransport = await createTransport(transportName);

    for (let i = 0; i < WORKERS; i++) {
      const w = child(['--nats-worker', nats.url]);
      children.push(w);
      await waitLine(w, /bound zs\.logic\.upperd[\s\S]*ready|ready[\s\S]*bound zs\.logic\.upperd/);
    }

    let zmqDealer: { send(m: Buffer[]): Promise<void>; close(): void } | undefined;
    if (onlyArg.includes('zmq')) {
      try {
        const zmq = await import('zeromq');
        const dealer = new zmq.Dealer();
        for (let i = 0; i < WORKERS; i++) {
          const port = await freePort();
          const w = child(['--zmq-worker', String(port)]);
          children.push(w);
          await waitLine(w, /ready/);
          dealer.connect(`tcp://127.0.0.1:${port}`);
        }
        // Answers come back fair-queued from every worker; match them to requests by id.
        const pending = new Map<number, (text: string) => void>();
        let nextId = 0;
        void (async () => {
          for await (const [id, body] of dealer) pending.get(id!.readUInt32LE(0))?.(body!.toString('utf8'));
        })();
        server.console('upper-zmq', (text) => {
          const id = nextId++ >>> 0;
          const idBuf = Buffer.alloc(4);
          idBuf.writeUInt32LE(id, 0);
          return new Promise<string>((resolve) => {
            pending.set(id, (answer) => {
              pending.delete(id);
              resolve(answer);
            });
            void dealer.send([idBuf, Buffer.from(text, 'utf8')]);
          });
        });
        zmqDealer = dealer;
      } catch (err) {
        notes.push(`0MQ row skipped: the zeromq package did not load here: ${(err as Error).message}`);
      }
    }

    const plan: [string, string, string][] = [
      ['inprocess', 'in-process handler', 'upper-local'],
      ['core', `NATS core, ${WORKERS} workers`, 'upper'],
      ['durable', `NATS durable (JetStream), ${WORKERS} workers`, 'upperd'],
      ['zmq', `0MQ DEALER/ROUTER, ${WORKERS} workers`, 'upper-zmq'],
    ];
    const measured = new Map<string, Measured>();
    for (const [key, label, name] of plan) {
      if (!onlyArg.includes(key)) continue;
      if (key === 'zmq' && zmqDealer === undefined) continue;
      const m = await load(clientTransport, ep.address.port, name);
      measured.set(key, m);
      const base = measured.get('inprocess');
      rows.push({
        row: label,
        'round trips/s': m.rate,
        'p50 ms': m.p50,
        'p99 ms': m.p99,
        errors: m.errors,
        'vs in-process': base ? `${(m.rate / base.rate).toFixed(2)}x` : '',
      });
    }
    const core = measured.get('core');
    const zmqRow = measured.get('zmq');
    if (core && zmqRow) notes.push(`NATS core / 0MQ: ${(core.rate / zmqRow.rate).toFixed(2)}x the round trips, p50 ${core.p50.toFixed(2)} vs ${zmqRow.p50.toFixed(2)} ms`);
    zmqDealer?.close();
    printTable(`console command round trips, ${CONNECTIONS} connections x ${INFLIGHT} in flight, ${transportName} transport${quick ? ' (--quick)' : ''}`, rows);
    for (const n of notes) console.log(n);
    writeResults('route', rows, { notes, connections: CONNECTIONS, inflight: INFLIGHT, workers: WORKERS, transport: transportName });
    await server.close();
  } finally {
    await tier.close();
    for (const c of children) {
      c.kill('SIGTERM');
      const t = setTimeout(() => c.kill('SIGKILL'), 2000);
      if (c.exitCode === null && c.signalCode === null) await once(c, 'exit');
      clearTimeout(t);
    }
    await nats.stop();
  }
}

await main();
