/**
 * bench/files.ts: the file service against a plain Node http static server, in one run.
 *
 *   node --import tsx bench/files.ts [--quick] [--only throughput|single|resume] [--downloads N] [--size MiB]
 *     [--chunk KiB] [--in-flight N] [--single MiB] [--seconds S] [--procs P] [--interrupts N] [--resume-size MiB] [--rounds N]
 *
 * 1. N concurrent downloads (default 1,000) of one file (default 64 MiB, from the page cache):
 *    zserver's file service over native TCP (FilesClient.chunks(): files.open, then files.read of
 *    256 KiB with 4 in flight per download, so 1,000 downloads stay under the loop's 4,096 file
 *    ranges; --chunk KiB and --in-flight change it)
 *    answered by the native loop's sendfile(2), against http.createServer piping
 *    fs.createReadStream into each response, and against the same service with sendfile off
 *    (reads through JavaScript: the A/B of the fast path in one run). Each server runs in its own
 *    process; the downloads come from P load processes (default 4, more when needed so that none
 *    holds over 10,000 sockets: the descriptor limit is 20,000), from source addresses spread over
 *    127.0.0.2-251 (so no address pair runs short of ephemeral ports).
 *    Reports aggregate throughput, the server's peak RSS and its CPU time per GiB sent. The load
 *    processes count bytes and drop them (no disk writes), and each phase stops after S seconds
 *    (default 60): throughput is bytes delivered over the time taken.
 * 2. One download of a big file (default 2 GiB, --single MiB) over one connection (zserver with
 *    download()'s defaults, 512 KiB × 8 in flight, unless --chunk / --in-flight): zserver, http, and
 *    a minimal C server that sendfile()s the whole file (compiled with cc at run time; skipped
 *    with a note when there is no cc). The C server reports its own CPU time (getrusage); it has
 *    no RSS figure (ru_maxrss survives execve, so it would be the spawning Node process's).
 *    The big file is written in 64 MiB pieces and removed after the part. A download lasts a
 *    second or two, so the rows run round-robin for --rounds rounds (default 3; --quick 1): each
 *    row shows its median round and each ratio is the median of the ratios within one round.
 *
 * 3. Interrupted transfers (default 100, --interrupts N, of a file of --resume-size MiB, default 8):
 *    half are stopped by killing the transferring process (SIGKILL at a random offset, in a child
 *    process, so nothing of the client runs after it), half by a link drop (the server closes the
 *    connections at a random offset); downloads over 1 and 3 connections and uploads in turn. Each is
 *    then resumed by running the same transfer again, and its result compared byte for byte (MD5 of
 *    node:crypto, independent of the service's own hash) with the source. Reports how many were
 *    interrupted, resumed from a non-zero offset, and match.
 *
 * --quick: 20 downloads of 8 MiB, one of 64 MiB, 2 load processes, 20 s cap, 12 interruptions of
 * 4 MiB: a check that the bench works. --only throughput|single|resume runs one part.
 */
import { execFileSync, fork, spawn, type ChildProcess } from 'node:child_process';
import { connect as netConnect } from 'node:net';
import { createReadStream } from 'node:fs';
import { mkdtemp, open as openFile, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { get as httpGet, createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createHash, randomBytes } from 'node:crypto';
import { Client } from '../lib/framework/client.js';
import { Server } from '../lib/framework/server.js';
import { filesClient, serveFiles } from '../lib/files/index.js';
import { RemoteError } from '../lib/errors.js';
import { createTransport, transportAvailable } from '../lib/transport/factory.js';
import { formatNumber, median, printTable, quick, writeResults } from './_lib.js';

const self = fileURLToPath(import.meta.url);
const arg = (name: string, fallback: number): number => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};
const role = process.argv[process.argv.indexOf('--role') + 1];

type Msg = { type: string; [k: string]: unknown };

// ---------------------------------------------------------------- server processes
async function serverRole(kind: string, dir: string): Promise<void> {
  let port: number;
  if (kind === 'zserver' || kind === 'zserver-js') {
    const server = new Server({ quiet: true });
    // zserver-js: the same service with its sendfile path off (reads through JavaScript), for an A/B in one run.
    await serveFiles(server, { root: dir, maxOpenFiles: 20_000, sendfile: kind === 'zserver' });
    const name = (await transportAvailable('native')) ? 'native' : 'node-net';
    const ep = await server.listen(await createTransport(name), { host: '127.0.0.1', port: 0 });
    port = ep.address.port;
  } else {
    const http = createServer((req, res) => {
      const s = createReadStream(join(dir, 'file.bin'));
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      s.pipe(res);
      res.on('close', () => s.destroy());
    });
    await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
    port = (http.address() as { port: number }).port;
  }
  let peakRss = process.memoryUsage().rss;
  setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage().rss)), 100).unref();
  process.on('message', (m: Msg) => {
    if (m.type === 'sample') {
      const c = process.cpuUsage();
      process.send!({ type: 'sample', cpuMs: (c.user + c.system) / 1000, peakRss, rss: process.memoryUsage().rss });
      peakRss = process.memoryUsage().rss;
    } else if (m.type === 'exit') process.exit(0);
  });
  process.send!({ type: 'ready', port });
}

// ---------------------------------------------------------------- load processes
/** The source address of download `n`: spread over 127.0.0.2-251, so no address pair runs out of ephemeral ports. */
const sourceAddress = (n: number): string => `127.0.0.${2 + (n % 250)}`;

async function zserverDownload(port: number, transport: Awaited<ReturnType<typeof createTransport>>, deadline: number, chunk: number, depth: number, from: string): Promise<number> {
  const client = new Client({ transport, host: '127.0.0.1', port, quiet: true, requestTimeout: 120_000, localAddress: from });
  await client.connect();
  // FilesClient.chunks(): the pipelined reads of download() without the disk writes. A failed
  // read rejects this download only (the reads behind it are handled in the library).
  let got = 0;
  try {
    for await (const bytes of filesClient(client).chunks('file.bin', { chunkSize: chunk, inFlight: depth })) {
      got += bytes.length;
      if (Date.now() >= deadline) break;
    }
  } finally {
    await client.close();
  }
  return got;
}

function httpDownload(port: number, deadline: number, from: string): Promise<number> {
  return new Promise((resolve, reject) => {
    let got = 0;
    const req = httpGet({ host: '127.0.0.1', port, path: '/file.bin', agent: false, localAddress: from }, (res) => {
      res.on('data', (b: Buffer) => {
        got += b.length;
        if (Date.now() > deadline) req.destroy();
      });
      res.on('end', () => resolve(got));
      res.on('close', () => resolve(got));
    });
    req.on('error', (e) => (Date.now() > deadline ? resolve(got) : reject(e)));
  });
}

async function loadRole(): Promise<void> {
  process.on('message', async (m: Msg) => {
    if (m.type !== 'run') return;
    const { kind, port, count, first, seconds, chunk, depth } = m as unknown as { kind: string; port: number; count: number; first: number; seconds: number; chunk: number; depth: number };
    const deadline = Date.now() + seconds * 1000;
    const ours = kind !== 'http';
    const transport = ours ? await createTransport((await transportAvailable('native')) ? 'native' : 'node-net') : undefined;
    const results = await Promise.allSettled(
      Array.from({ length: count }, (_, k) => {
        const from = sourceAddress(first + k);
        return ours ? zserverDownload(port, transport!, deadline, chunk, depth, from) : httpDownload(port, deadline, from);
      }),
    );
    await transport?.shutdown();
    const bytes = results.reduce((a, r) => a + (r.status === 'fulfilled' ? r.value : 0), 0);
    const errors = results.filter((r) => r.status === 'rejected').map((r) => String((r as PromiseRejectedResult).reason).slice(0, 120));
    process.send!({ type: 'done', bytes, errors: errors.length, firstError: errors[0] ?? '' });
  });
  process.send!({ type: 'ready' });
}

// ---------------------------------------------------------------- interrupted transfers
type Transfer = { mode: 'download' | 'upload'; connections: number; remote: string; local: string };

/** Child process of the kill half: one transfer that SIGKILLs itself once `killAt` bytes are in place. */
async function transferRole(args: string[]): Promise<void> {
  const [mode, port, remote, local, connections, killAt] = args;
  const transport = await createTransport((await transportAvailable('native')) ? 'native' : 'node-net');
  const client = new Client({ transport, host: '127.0.0.1', port: Number(port), quiet: true });
  await client.connect();
  const files = filesClient(client);
  const onProgress = (p: { done: number }) => {
    if (p.done >= Number(killAt)) process.kill(process.pid, 'SIGKILL');
  };
  const opts = { connections: Number(connections), chunkSize: 64 * 1024, inFlight: 2, onProgress };
  if (mode === 'download') await files.download(remote!, local!, opts);
  else await files.upload(local!, remote!, opts);
  process.exit(3); // finished before the kill: counted as not interrupted
}

function killedTransfer(t: Transfer, port: number, killAt: number): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const args = ['--role', 'transfer', t.mode, String(port), t.remote, t.local, String(t.connections), String(killAt)];
    const child = spawn(process.execPath, ['--import', 'tsx', self, ...args], { stdio: ['ignore', 'ignore', 'inherit'] });
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('error', reject);
    child.on('exit', (_code, signal) => {
      clearTimeout(timer);
      resolve(signal === 'SIGKILL');
    });
  });
}

const md5Of = async (path: string) => createHash('md5').update(await readFile(path)).digest('hex');

async function resumePhase(dir: string, count: number, sizeMiB: number): Promise<Record<string, string | number>[]> {
  const root = join(dir, 'resume-root');
  const server = new Server({ quiet: true });
  const service = await serveFiles(server, { root, maxTransfersPerPeer: 16 });
  const name = (await transportAvailable('native')) ? 'native' : 'node-net';
  const ep = await server.listen(await createTransport(name), { host: '127.0.0.1', port: 0 });
  const transport = await createTransport(name);
  const port = ep.address.port;
  const size = sizeMiB * 2 ** 20;
  await writeFile(join(root, 'src.bin'), randomBytes(size));
  await writeFile(join(dir, 'up-src.bin'), randomBytes(size));
  const want = { download: await md5Of(join(root, 'src.bin')), upload: await md5Of(join(dir, 'up-src.bin')) };
  const newFiles = async () => {
    const c = new Client({ transport, host: '127.0.0.1', port, quiet: true });
    await c.connect();
    return { c, files: filesClient(c) };
  };
  const transfers = Array.from({ length: count }, (_, i): Transfer & { how: 'kill' | 'drop' } => {
    const kind = i % 3; // download over 1 connection, over 3, upload
    const mode = kind === 2 ? 'upload' : 'download';
    return {
      how: i < count / 2 ? 'kill' : 'drop',
      mode,
      connections: kind === 1 ? 3 : 1,
      remote: mode === 'upload' ? `up-${i}.bin` : 'src.bin',
      local: mode === 'upload' ? join(dir, 'up-src.bin') : join(dir, `down-${i}.bin`),
    };
  });
  const stats = new Map<string, { n: number; interrupted: number; resumed: number; matched: number; resumedBytes: number }>();
  const row = (t: Transfer & { how: string }) => {
    const key = `${t.how === 'kill' ? 'process killed' : 'link dropped'}: ${t.mode}${t.mode === 'download' ? ` over ${t.connections}` : ''}`;
    let r = stats.get(key);
    if (r === undefined) stats.set(key, (r = { n: 0, interrupted: 0, resumed: 0, matched: 0, resumedBytes: 0 }));
    return r;
  };
  // The same transfer again, as a user re-runs a command; an upload whose cut the server has not
  // noticed yet is still "being uploaded" (ZS_FILES_BUSY) for a moment.
  const resume = async (t: Transfer) => {
    const { c, files } = await newFiles();
    try {
      for (let tries = 0; ; tries++) {
        try {
          return t.mode === 'download' ? await files.download(t.remote, t.local, { connections: t.connections }) : await files.upload(t.local, t.remote);
        } catch (err) {
          if (!(err instanceof RemoteError && err.remoteCode === 'ZS_FILES_BUSY') || tries > 100) throw err;
          await new Promise((r) => setTimeout(r, 50));
        }
      }
    } finally {
      await c.close();
    }
  };
  const check = async (t: Transfer & { how: string }, interrupted: boolean) => {
    const r = row(t);
    r.n++;
    if (interrupted) r.interrupted++;
    const done = await resume(t);
    if (done.resumedFrom > 0) r.resumed++;
    r.resumedBytes += done.resumedFrom;
    const got = t.mode === 'download' ? await md5Of(t.local) : await md5Of(join(root, t.remote));
    if (got === want[t.mode]) r.matched++;
    else process.stderr.write(`resume: ${t.mode} ${t.remote} does not match its source\n`);
    await rm(t.mode === 'download' ? t.local : join(root, t.remote), { force: true });
  };
  const at = () => Math.floor(size * (0.1 + 0.8 * Math.random()));
  const t0 = performance.now();
  try {
    // Killed processes, 4 at a time (each child is its own Node process).
    const kills = transfers.filter((t) => t.how === 'kill');
    for (let i = 0; i < kills.length; i += 4) {
      await Promise.all(kills.slice(i, i + 4).map(async (t) => check(t, await killedTransfer(t, port, at()))));
    }
    // Link drops, one at a time: the server closes every connection it has when the cut is reached.
    for (const t of transfers.filter((x) => x.how === 'drop')) {
      const { c, files } = await newFiles();
      const cut = at();
      const onProgress = (p: { done: number }) => {
        if (p.done >= cut) for (const peer of server.peers()) peer.close(true);
      };
      const opts = { connections: t.connections, chunkSize: 64 * 1024, inFlight: 2, onProgress };
      const failed = await (t.mode === 'download' ? files.download(t.remote, t.local, opts) : files.upload(t.local, t.remote, opts)).then(
        () => false,
        () => true,
      );
      await c.close();
      await check(t, failed);
    }
  } finally {
    await transport.shutdown();
    await service.close();
    await server.close();
  }
  const secs = (performance.now() - t0) / 1000;
  process.stderr.write(`resume: ${count} interrupted transfers of ${sizeMiB} MiB in ${secs.toFixed(1)} s\n`);
  return [...stats].map(([key, r]) => ({
    'interrupted by': key,
    transfers: String(r.n),
    interrupted: String(r.interrupted),
    'resumed from > 0': String(r.resumed),
    'mean resumed MiB': (r.resumedBytes / Math.max(1, r.n) / 2 ** 20).toFixed(2),
    'hash matches': String(r.matched),
  }));
}

// ---------------------------------------------------------------- sendfile baseline
const SENDFILE_C = `
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/sendfile.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
/* Serves one connection: sendfile() of the whole file, then exit. Prints its port first, and its
   CPU time (ms) and peak RSS (KiB, unused: it includes the spawning process's) last. */
int main(int argc, char** argv) {
  int fd = open(argv[1], O_RDONLY);
  struct stat st;
  fstat(fd, &st);
  int ls = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(ls, (struct sockaddr*)&a, sizeof a) || listen(ls, 1)) return 1;
  socklen_t len = sizeof a;
  getsockname(ls, (struct sockaddr*)&a, &len);
  printf("%d\\n", ntohs(a.sin_port));
  fflush(stdout);
  int c = accept(ls, 0, 0);
  off_t off = 0;
  while (off < st.st_size) {
    ssize_t n = sendfile(c, fd, &off, st.st_size - off);
    if (n <= 0) break; /* the client stopped (the bench's time cap) */
  }
  close(c);
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  printf("%ld %ld\\n", ru.ru_utime.tv_sec * 1000 + ru.ru_utime.tv_usec / 1000 + ru.ru_stime.tv_sec * 1000 + ru.ru_stime.tv_usec / 1000, ru.ru_maxrss);
  return 0;
}
`;

/** One download from the C sendfile server; undefined when there is no C compiler. */
async function sendfileBaseline(dir: string, file: string, seconds: number): Promise<Record<string, string | number> | undefined> {
  const bin = join(dir, 'sendfile-server');
  try {
    await writeFile(`${bin}.c`, SENDFILE_C);
    execFileSync('cc', ['-O2', '-o', bin, `${bin}.c`], { stdio: 'ignore' });
  } catch {
    process.stderr.write('no C compiler (cc): the sendfile baseline is skipped\n');
    return undefined;
  }
  const child = spawn(bin, [file], { stdio: ['ignore', 'pipe', 'inherit'] });
  // Everything after the port line: the server's CPU time and peak RSS, printed as it exits.
  let out = '';
  const usage = new Promise<string>((resolve) => {
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.once('exit', () => resolve(out.slice(out.indexOf('\n') + 1).trim()));
  });
  try {
    const port = await new Promise<number>((resolve, reject) => {
      child.stdout.once('data', (b: Buffer) => resolve(Number(b.toString().split('\n')[0]!.trim())));
      child.once('exit', (code) => reject(new Error(`the sendfile server exited with ${code}`)));
    });
    const t0 = performance.now();
    const deadline = Date.now() + seconds * 1000;
    const bytes = await new Promise<number>((resolve, reject) => {
      let got = 0;
      const sock = netConnect(port, '127.0.0.1');
      sock.on('data', (b: Buffer) => {
        got += b.length;
        if (Date.now() > deadline) sock.destroy();
      });
      sock.on('close', () => resolve(got));
      sock.on('error', reject);
    });
    const secs = (performance.now() - t0) / 1000;
    const [cpuMs] = (await usage).split(/\s+/).map(Number);
    const gib = bytes / 2 ** 30;
    return {
      server: 'C sendfile(2), one connection',
      downloads: '1',
      'GiB sent': gib.toFixed(2),
      seconds: secs.toFixed(1),
      'MiB/s': formatNumber(bytes / 2 ** 20 / secs),
      // ru_maxrss survives execve, so it would show the Node process the server was spawned from.
      'peak RSS MiB': '-',
      'CPU s / GiB': cpuMs! >= 0 && gib > 0 ? (cpuMs! / 1000 / gib).toFixed(2) : '-',
      errors: '0',
    };
  } finally {
    child.kill();
  }
}

// ---------------------------------------------------------------- parent
function start(args: string[]): Promise<{ child: ChildProcess; ready: Msg }> {
  const child = fork(self, args, { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  return new Promise((resolve, reject) => {
    child.once('message', (m: Msg) => resolve({ child, ready: m }));
    child.once('exit', (code) => reject(new Error(`${args.join(' ')} exited with ${code}`)));
  });
}

function ask(child: ChildProcess, msg: Msg, answer: string): Promise<Msg> {
  return new Promise((resolve) => {
    const on = (m: Msg) => {
      if (m.type === answer) {
        child.off('message', on);
        resolve(m);
      }
    };
    child.on('message', on);
    child.send(msg);
  });
}

const SERVER_NAMES: Record<string, string> = {
  zserver: 'zserver files (native TCP, sendfile)',
  'zserver-js': 'zserver files (reads through JS)',
  http: 'node http + createReadStream',
};

async function phase(kind: string, dir: string, downloads: number, procs: number, seconds: number, read: { chunk: number; depth: number }): Promise<Record<string, string | number>> {
  const { child: server, ready } = await start(['--role', 'server', kind, dir]);
  // At most 10,000 downloads (sockets) per load process: under the 20,000-descriptor limit with room to spare.
  const loads = await Promise.all(Array.from({ length: Math.min(Math.max(procs, Math.ceil(downloads / 10_000)), downloads) }, () => start(['--role', 'load'])));
  try {
    const before = await ask(server, { type: 'sample' }, 'sample');
    const t0 = performance.now();
    const per = loads.map((_, i) => Math.floor(downloads / loads.length) + (i < downloads % loads.length ? 1 : 0));
    const firsts = per.map((_, i) => per.slice(0, i).reduce((a, n) => a + n, 0));
    const done = await Promise.all(loads.map((l, i) => ask(l.child, { type: 'run', kind, port: ready.port as number, count: per[i]!, first: firsts[i]!, seconds, chunk: read.chunk, depth: read.depth }, 'done')));
    const secs = (performance.now() - t0) / 1000;
    const after = await ask(server, { type: 'sample' }, 'sample');
    const bytes = done.reduce((a, d) => a + (d.bytes as number), 0);
    const errors = done.reduce((a, d) => a + (d.errors as number), 0);
    const gib = bytes / 2 ** 30;
    const first = done.find((d) => d.firstError !== '')?.firstError;
    if (first) process.stderr.write(`${kind}: ${errors} downloads failed, first: ${String(first)}\n`);
    return {
      server: SERVER_NAMES[kind] ?? kind,
      downloads: String(downloads),
      'GiB sent': gib.toFixed(2),
      seconds: secs.toFixed(1),
      'MiB/s': formatNumber(bytes / 2 ** 20 / secs),
      'peak RSS MiB': ((after.peakRss as number) / 2 ** 20).toFixed(0),
      'CPU s / GiB': gib > 0 ? (((after.cpuMs as number) - (before.cpuMs as number)) / 1000 / gib).toFixed(2) : '-',
      errors: String(errors),
    };
  } finally {
    for (const l of loads) l.child.kill();
    server.send({ type: 'exit' });
    await new Promise((r) => server.once('exit', r));
  }
}

async function main(): Promise<void> {
  const downloads = arg('--downloads', quick ? 20 : 1000);
  const sizeMiB = arg('--size', quick ? 8 : 64);
  const seconds = arg('--seconds', quick ? 20 : 60);
  const procs = arg('--procs', quick ? 2 : 4);
  const singleMiB = arg('--single', quick ? 64 : 2048);
  const singleRounds = arg('--rounds', quick ? 1 : 3);
  const interrupts = arg('--interrupts', quick ? 12 : 100);
  const resumeMiB = arg('--resume-size', quick ? 4 : 8);
  const only = process.argv.includes('--only') ? process.argv[process.argv.indexOf('--only') + 1] : undefined;
  const runs = (part: string) => only === undefined || only === part;
  const dir = await mkdtemp(join(tmpdir(), 'zs-bench-files-'));
  const results: Record<string, string | number>[] = [];
  const ratios: Record<string, number> = {};
  const mibs = (r: Record<string, string | number> | undefined) => Number(String(r?.['MiB/s'] ?? 'NaN').replace(/,/g, ''));
  try {
    if (runs('throughput')) {
      await writeFile(join(dir, 'file.bin'), randomBytes(sizeMiB * 2 ** 20));
      const rows = [];
      // Many downloads at once: 256 KiB × 4 in flight each, so 1,000 downloads keep at most 4,000
      // ranges in the server's loop (its bound is 4,096; past it ranges are copied into memory).
      const read = { chunk: arg('--chunk', 256) * 1024, depth: arg('--in-flight', 4) };
      for (const kind of ['zserver', 'http', 'zserver-js']) rows.push(await phase(kind, dir, downloads, procs, seconds, read));
      ratios.concurrent = mibs(rows[0]) / mibs(rows[1]);
      ratios.concurrentJs = mibs(rows[2]) / mibs(rows[1]);
      printTable(
        `${downloads} concurrent downloads of a ${sizeMiB} MiB file (zserver / http: ${ratios.concurrent.toFixed(2)}x; through JS / http: ${ratios.concurrentJs.toFixed(2)}x)`,
        rows,
      );
      results.push(...rows);
    }
    if (runs('single')) {
      // The big file for the single download, written in 64 MiB pieces (never whole in memory).
      const singleDir = join(dir, 'single');
      await (await import('node:fs/promises')).mkdir(singleDir);
      const big = await openFile(join(singleDir, 'file.bin'), 'w');
      const piece = randomBytes(Math.min(singleMiB, 64) * 2 ** 20);
      for (let left = singleMiB * 2 ** 20; left > 0; left -= piece.length) await big.write(piece, 0, Math.min(piece.length, left));
      await big.close();
      // One download: download()'s defaults, 512 KiB × 8 in flight (a 4 MiB window). A download
      // takes a second or two, so the rows run round-robin for --rounds rounds; each row shows its
      // median round, and each ratio is the median of the ratios within a round.
      const read = { chunk: arg('--chunk', 512) * 1024, depth: arg('--in-flight', 8) };
      const rounds: Record<string, string | number>[][] = [];
      for (let r = 0; r < singleRounds; r++) {
        const round = [];
        for (const kind of ['zserver', 'http', 'zserver-js']) round.push(await phase(kind, singleDir, 1, 1, seconds, read));
        // The A/B of the read window in the same run: the earlier defaults, 256 KiB × 4 in flight.
        const small = await phase('zserver', singleDir, 1, 1, seconds, { chunk: 256 * 1024, depth: 4 });
        small.server = `${small.server}, 256 KiB × 4`;
        round.push(small);
        const c = await sendfileBaseline(dir, join(singleDir, 'file.bin'), seconds);
        if (c !== undefined) round.push(c);
        round[0]!.server = `${round[0]!.server}, ${read.chunk / 1024} KiB × ${read.depth}`;
        rounds.push(round);
        process.stderr.write(
          `single download, round ${r + 1}/${singleRounds}: ${round.map((row) => `${String(row.server).split(',')[0]} ${row['MiB/s']}`).join(' | ')} MiB/s\n`,
        );
      }
      const single = rounds[0]!.map((_, i) => {
        const rows = rounds.map((round) => round[i]!).sort((a, b) => mibs(a) - mibs(b));
        return rows[rows.length >> 1]!;
      });
      const ratioOf = (a: number, b: number) => {
        const each = rounds.map((round) => mibs(round[a]) / mibs(round[b]));
        return { median: median(each), each };
      };
      const hasC = single.length > 4;
      const r1 = ratioOf(0, 1);
      const r2 = ratioOf(0, 3);
      const r3 = hasC ? ratioOf(0, 4) : undefined;
      ratios.single = r1.median;
      ratios.window = r2.median;
      if (r3) ratios.sendfile = r3.median;
      const list = (r: { each: number[] }) => (r.each.length > 1 ? ` (rounds: ${r.each.map((x) => x.toFixed(2)).join(', ')})` : '');
      printTable(
        `one download of a ${singleMiB} MiB file, median of ${singleRounds} round(s) (zserver / http: ${r1.median.toFixed(2)}x${list(r1)}, ` +
          `${read.chunk / 1024} KiB × ${read.depth} / 256 KiB × 4: ${r2.median.toFixed(2)}x${list(r2)}` +
          `${r3 ? `, zserver / sendfile: ${r3.median.toFixed(2)}x${list(r3)}` : ''})`,
        single,
      );
      await rm(singleDir, { recursive: true, force: true });
      results.push(...single);
    }
    if (runs('resume')) {
      const rows = await resumePhase(dir, interrupts, resumeMiB);
      const sum = (k: string) => rows.reduce((a, r) => a + Number(r[k]), 0);
      printTable(
        `${interrupts} transfers of a ${resumeMiB} MiB file interrupted at random offsets and resumed: ` +
          `${sum('interrupted')} interrupted, ${sum('resumed from > 0')} resumed from > 0, ${sum('hash matches')} of ${sum('transfers')} match their source`,
        rows,
      );
      results.push(...rows);
      if (sum('hash matches') !== sum('transfers')) process.exitCode = 1;
    }
    writeResults('files', results, { sizeMiB, singleMiB, downloads, seconds, procs, interrupts, resumeMiB, quick, only: only ?? 'all', ratios });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

if (role === 'server') await serverRole(process.argv[process.argv.indexOf('--role') + 2]!, process.argv[process.argv.indexOf('--role') + 3]!);
else if (role === 'load') await loadRole();
else if (role === 'transfer') await transferRole(process.argv.slice(process.argv.indexOf('--role') + 2));
else await main();
