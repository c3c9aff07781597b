/**
 * bench/files.ts: the file service against a plain Node http static server, in one run.
 *
 *   node --import tsx bench/files.ts [--quick] [--downloads N] [--size MiB] [--single MiB] [--seconds S] [--procs P]
 *
 * 1. N concurrent downloads (default 1,000) of one file (default 64 MiB, from the page cache):
 *    zserver's file service over native TCP (files.open, then files.read of 256 KiB with 4 in
 *    flight per download, as FilesClient.download does) against http.createServer piping
 *    fs.createReadStream into each response. Each server runs in its own process; the downloads
 *    come from P load processes (default 4, so no process nears the 20,000-descriptor limit).
 *    Reports aggregate throughput, the server's peak RSS and its CPU time per GiB sent. The load
 *    processes count bytes and drop them (no disk writes), and each phase stops after S seconds
 *    (default 60): throughput is bytes delivered over the time taken.
 * 2. One download of a big file (default 2 GiB, --single MiB) over one connection: zserver, http, and
 *    a minimal C server that sendfile()s the whole file (compiled with cc at run time; skipped
 *    with a note when there is no cc). The C row has no server CPU figure (it is not sampled).
 *
 * --quick: 20 downloads of 8 MiB, one of 64 MiB, 2 load processes, 20 s cap: a check that the bench works.
 */
import { execFileSync, fork, spawn, type ChildProcess } from 'node:child_process';
import { connect as netConnect } from 'node:net';
import { createReadStream } from 'node:fs';
import { mkdtemp, open as openFile, rm, writeFile } from 'node:fs/promises';
import { get as httpGet, createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import { Client } from '../lib/framework/client.js';
import { Server } from '../lib/framework/server.js';
import { FilesCommand, serveFiles } from '../lib/files/index.js';
import { DataFrame } from '../lib/protocol/dataframe.js';
import { createTransport, transportAvailable } from '../lib/transport/factory.js';
import { formatNumber, printTable, quick, writeResults } from './_lib.js';

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
  if (kind === 'zserver') {
    const server = new Server({ quiet: true });
    await serveFiles(server, { root: dir, maxOpenFiles: 20_000 });
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
async function zserverDownload(port: number, transport: Awaited<ReturnType<typeof createTransport>>, deadline: number): Promise<number> {
  const client = new Client({ transport, host: '127.0.0.1', port, quiet: true, requestTimeout: 120_000 });
  await client.connect();
  const opened = await client.call(FilesCommand.open, new DataFrame().writeString('file.bin'));
  const handle = opened.readUInt32();
  const size = Number(opened.readInt64());
  const chunk = 256 * 1024;
  let next = 0;
  let got = 0;
  const inflight: Promise<DataFrame>[] = [];
  while (got < size && Date.now() < deadline) {
    while (inflight.length < 4 && next < size) {
      inflight.push(client.call(FilesCommand.read, new DataFrame().writeUInt32(handle).writeInt64(next).writeUInt32(Math.min(chunk, size - next))));
      next += chunk;
    }
    got += (await inflight.shift()!).readBytes().length;
  }
  await Promise.allSettled(inflight);
  await client.close();
  return got;
}

function httpDownload(port: number, deadline: number): Promise<number> {
  return new Promise((resolve, reject) => {
    let got = 0;
    const req = httpGet({ host: '127.0.0.1', port, path: '/file.bin', agent: false }, (res) => {
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
    const { kind, port, count, seconds } = m as unknown as { kind: string; port: number; count: number; seconds: number };
    const deadline = Date.now() + seconds * 1000;
    const transport = kind === 'zserver' ? await createTransport((await transportAvailable('native')) ? 'native' : 'node-net') : undefined;
    const results = await Promise.allSettled(
      Array.from({ length: count }, () => (kind === 'zserver' ? zserverDownload(port, transport!, deadline) : httpDownload(port, deadline))),
    );
    await transport?.shutdown();
    const bytes = results.reduce((a, r) => a + (r.status === 'fulfilled' ? r.value : 0), 0);
    const errors = results.filter((r) => r.status === 'rejected').map((r) => String((r as PromiseRejectedResult).reason).slice(0, 120));
    process.send!({ type: 'done', bytes, errors: errors.length, firstError: errors[0] ?? '' });
  });
  process.send!({ type: 'ready' });
}

// ---------------------------------------------------------------- sendfile baseline
const SENDFILE_C = `
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
/* Serves one connection: sendfile() of the whole file, then exit. Prints its port first. */
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
    if (n <= 0) return 2;
  }
  close(c);
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
  try {
    const port = await new Promise<number>((resolve, reject) => {
      child.stdout.once('data', (b: Buffer) => resolve(Number(b.toString().trim())));
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
    return { server: 'C sendfile(2), one connection', downloads: 1, 'GiB sent': (bytes / 2 ** 30).toFixed(2), seconds: secs.toFixed(1), 'MiB/s': formatNumber(bytes / 2 ** 20 / secs), 'peak RSS MiB': '-', 'CPU s / GiB': '-', errors: 0 };
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

async function phase(kind: string, dir: string, downloads: number, procs: number, seconds: number): Promise<Record<string, string | number>> {
  const { child: server, ready } = await start(['--role', 'server', kind, dir]);
  const loads = await Promise.all(Array.from({ length: Math.min(procs, downloads) }, () => start(['--role', 'load'])));
  try {
    const before = await ask(server, { type: 'sample' }, 'sample');
    const t0 = performance.now();
    const per = loads.map((_, i) => Math.floor(downloads / loads.length) + (i < downloads % loads.length ? 1 : 0));
    const done = await Promise.all(loads.map((l, i) => ask(l.child, { type: 'run', kind, port: ready.port as number, count: per[i]!, seconds }, 'done')));
    const secs = (performance.now() - t0) / 1000;
    const after = await ask(server, { type: 'sample' }, 'sample');
    const bytes = done.reduce((a, d) => a + (d.bytes as number), 0);
    const errors = done.reduce((a, d) => a + (d.errors as number), 0);
    const gib = bytes / 2 ** 30;
    const first = done.find((d) => d.firstError !== '')?.firstError;
    if (first) process.stderr.write(`${kind}: ${errors} downloads failed, first: ${String(first)}\n`);
    return {
      server: kind === 'zserver' ? 'zserver files (native TCP)' : 'node http + createReadStream',
      downloads,
      'GiB sent': gib.toFixed(2),
      seconds: secs.toFixed(1),
      'MiB/s': formatNumber(bytes / 2 ** 20 / secs),
      'peak RSS MiB': ((after.peakRss as number) / 2 ** 20).toFixed(0),
      'CPU s / GiB': gib > 0 ? (((after.cpuMs as number) - (before.cpuMs as number)) / 1000 / gib).toFixed(2) : '-',
      errors,
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
  const dir = await mkdtemp(join(tmpdir(), 'zs-bench-files-'));
  try {
    await writeFile(join(dir, 'file.bin'), randomBytes(sizeMiB * 2 ** 20));
    const rows = [];
    for (const kind of ['zserver', 'http']) rows.push(await phase(kind, dir, downloads, procs, seconds));
    // The big file for the single download, written in 64 MiB pieces (never whole in memory).
    const singleDir = join(dir, 'single');
    await (await import('node:fs/promises')).mkdir(singleDir);
    const big = await openFile(join(singleDir, 'file.bin'), 'w');
    const piece = randomBytes(Math.min(singleMiB, 64) * 2 ** 20);
    for (let left = singleMiB * 2 ** 20; left > 0; left -= piece.length) await big.write(piece, 0, Math.min(piece.length, left));
    await big.close();
    const single = [];
    for (const kind of ['zserver', 'http']) single.push(await phase(kind, singleDir, 1, 1, seconds));
    const c = await sendfileBaseline(dir, join(singleDir, 'file.bin'), seconds);
    if (c !== undefined) single.push(c);
    const mibs = (r: Record<string, string | number> | undefined) => Number(String(r?.['MiB/s'] ?? 'NaN').replace(/,/g, ''));
    printTable(`${downloads} concurrent downloads of a ${sizeMiB} MiB file (zserver / http: ${(mibs(rows[0]) / mibs(rows[1])).toFixed(2)}x)`, rows);
    printTable(
      `one download of a ${singleMiB} MiB file (zserver / http: ${(mibs(single[0]) / mibs(single[1])).toFixed(2)}x` +
        `${c ? `, zserver / sendfile: ${(mibs(single[0]) / mibs(c)).toFixed(2)}x` : ''})`,
      single,
    );
    writeResults('files', [...rows, ...single], { sizeMiB, singleMiB, downloads, seconds, procs, quick });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

if (role === 'server') await serverRole(process.argv[process.argv.indexOf('--role') + 2]!, process.argv[process.argv.indexOf('--role') + 3]!);
else if (role === 'load') await loadRole();
else await main();
