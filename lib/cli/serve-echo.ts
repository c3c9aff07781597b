/**
 * `zserver serve --echo` (runServeEcho): a frame echo server on the
 * native TCP transport, optionally as a group of worker processes sharing one
 * port through SO_REUSEPORT. One
 * process here may hold at most about 20,000 descriptors, so holding 60,000
 * connections takes a group; the kernel spreads new connections across the
 * workers.
 *
 *   zserver serve --echo [--host 127.0.0.1] [--port 7000] [--workers 1] [--idle-timeout ms] [--report s]
 *
 * Every frame of kind 8 and above is echoed back (kinds 0-7 belong to the
 * transport and channel layers). With --report, each worker prints one JSON
 * line every s seconds: pid, open connections, frames, RSS.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { NativeTcpTransport } from '../transport/native-tcp.js';

interface ServeOptions {
  host: string;
  port: number;
  workers: number;
  idleTimeout: number;
  report: number;
  worker: boolean;
}

function parse(args: string[]): ServeOptions {
  const o: ServeOptions = { host: '127.0.0.1', port: 7000, workers: 1, idleTimeout: 0, report: 0, worker: false };
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--worker') {
      o.worker = true;
      continue;
    }
    const value = args[++i];
    if (value === undefined) throw new RangeError(`zserver serve: ${a} needs a value`);
    const n = Number(value);
    const int = (name: string, max: number) => {
      if (!Number.isInteger(n) || n < 0 || n > max) throw new RangeError(`zserver serve: ${name} must be an integer from 0 to ${max}`);
      return n;
    };
    if (a === '--host') o.host = value;
    else if (a === '--port') o.port = int('--port', 65535);
    else if (a === '--workers') o.workers = Math.max(1, int('--workers', 256));
    else if (a === '--idle-timeout') o.idleTimeout = int('--idle-timeout', 0x7fffffff);
    else if (a === '--report') o.report = int('--report', 3600);
    else throw new RangeError(`zserver serve: unknown option ${a}`);
  }
  return o;
}

/** One worker: listen with SO_REUSEPORT, echo, report, shut down on SIGTERM/SIGINT. */
async function runWorker(o: ServeOptions): Promise<number> {
  const server = new NativeTcpTransport();
  // Open connections from the counters: an 'open' listener would make the
  // transport look up both addresses of every accepted connection.
  const openPeers = () => {
    const st = server.stats();
    return st.connections - Object.values(st.closes).reduce((a, b) => a + (b ?? 0), 0);
  };
  server.on('frames', (b) => {
    for (let i = 0; i < b.count; i++) {
      if (b.kinds[i]! < 8) continue;
      server.send(b.peers[i]!, b.kinds[i]!, b.flags[i]!, b.data.subarray(b.offsets[i]!, b.offsets[i]! + b.lengths[i]!));
    }
  });
  const { port } = await server.listen({ host: o.host, port: o.port }, { reusePort: true, idleTimeout: o.idleTimeout });
  process.stdout.write(`${JSON.stringify({ pid: process.pid, listening: `${o.host}:${port}` })}\n`);
  const timer =
    o.report > 0
      ? setInterval(() => {
          const s = server.stats();
          const line = { pid: process.pid, open: openPeers(), framesIn: s.framesIn, framesOut: s.framesOut, rss: process.memoryUsage().rss };
          process.stdout.write(`${JSON.stringify(line)}\n`);
        }, o.report * 1000)
      : undefined;
  await new Promise<void>((resolve) => {
    process.once('SIGTERM', resolve);
    process.once('SIGINT', resolve);
  });
  if (timer) clearInterval(timer);
  await server.shutdown();
  return 0;
}

function startWorker(o: ServeOptions, port: number): Promise<{ child: ChildProcess; port: number }> {
  const args = [...process.execArgv, process.argv[1]!, 'serve', '--echo', '--worker', '--host', o.host, '--port', String(port)];
  args.push('--idle-timeout', String(o.idleTimeout), '--report', String(o.report));
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    let buf = '';
    const onData = (d: Buffer) => {
      buf += d.toString();
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      child.stdout!.off('data', onData);
      child.stdout!.pipe(process.stdout);
      const first = JSON.parse(buf.slice(0, nl)) as { listening: string };
      process.stdout.write(buf);
      resolve({ child, port: Number(first.listening.slice(first.listening.lastIndexOf(':') + 1)) });
    };
    child.stdout!.on('data', onData);
    child.once('exit', (code) => reject(new Error(`zserver serve: a worker exited with code ${code} while starting`)));
  });
}

/** Runs the echo group (`zserver serve --echo ...`); resolves to the exit code once every worker has stopped. */
export async function runServeEcho(args: string[]): Promise<number> {
  const o = parse(args);
  if (o.worker) return runWorker(o);
  // The first worker settles the port (port 0 picks one); the others share it.
  const first = await startWorker(o, o.port);
  const children = [first.child];
  for (let i = 1; i < o.workers; i++) children.push((await startWorker(o, first.port)).child);
  process.stdout.write(`${JSON.stringify({ serving: `${o.host}:${first.port}`, workers: children.length })}\n`);
  const exited = children.map((c) => new Promise<number>((r) => c.once('exit', (code) => r(code ?? 1))));
  const stop = () => {
    for (const c of children) c.kill('SIGTERM');
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  const codes = await Promise.all(exited);
  return codes.every((c) => c === 0) ? 0 : 1;
}
