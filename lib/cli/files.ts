/**
 * `zserver get`, `zserver put` and `zserver serve-files`: the file service from the command line
 * (docs/files.md). get and put show a progress line (bytes, rate, ETA) and are resumable: run the
 * same command again after an interruption and it continues from the verified part.
 */
import { basename, resolve } from 'node:path';
import { Client } from '../framework/client.js';
import { Server } from '../framework/server.js';
import { filesClient, serveFiles, type TransferProgress } from '../files/index.js';
import { createTransport, type TransportName } from '../transport/factory.js';

const GET_HELP = `Usage: zserver get <remote> [local] [options]
Downloads <remote> from a zserver file service into [local] (default: its base name), resuming an
interrupted run of the same command after checking the part already here against the server's hash,
and verifying the whole file at the end.

Options:
  --host H            server host (default 127.0.0.1)
  --port P            server port (default 9818)
  --connections N     pull N ranges over N connections at once (default 1)
  --md5               check with MD5 instead of xxHash64
  --transport T       native or node-net (default: native where it loads)
  --quiet             no progress line

Examples:
  zserver get videos/big.mkv
  zserver get videos/big.mkv /tmp/big.mkv --host files.example --connections 4
  zserver get data.bin --md5        # run it again after Ctrl-C: it resumes
`;

const PUT_HELP = `Usage: zserver put <local> [remote] [options]
Uploads <local> to a zserver file service as [remote] (default: its base name), resuming an
interrupted run of the same command after the server confirmed the hash of the part it has; the
server shows the file only once the whole file's hash matched.

Options:
  --host H, --port P, --md5, --transport T, --quiet    as for zserver get

Examples:
  zserver put backup.tar
  zserver put backup.tar archive/2026/backup.tar --host files.example
`;

const SERVE_HELP = `Usage: zserver serve-files <root> [options]
Serves the directory <root> with the file service (docs/files.md) until Ctrl-C.

Options:
  --host H            address to listen on (default 127.0.0.1)
  --port P            port (default 9818)
  --read-only         refuse uploads, renames, deletes and mkdir
  --quota BYTES       bytes the root may hold
  --transport T       native or node-net (default: native where it loads)

Examples:
  zserver serve-files ./public --read-only
  zserver serve-files /srv/files --host 0.0.0.0 --quota 10000000000
`;

/** Where get and put write (a test gives its own). */
export interface CliOutput {
  out(text: string): void;
  err(text: string): void;
  /** Redraw the progress line in place (a terminal) rather than a line a second. */
  tty: boolean;
}

const stdio: CliOutput = {
  out: (t) => void process.stdout.write(t),
  err: (t) => void process.stderr.write(t),
  get tty() {
    return process.stderr.isTTY === true;
  },
};

interface Parsed {
  positional: string[];
  flags: Map<string, string | true>;
}

const VALUED = new Set(['--host', '--port', '--connections', '--transport', '--quota']);

function parse(args: string[]): Parsed | string {
  const positional: string[] = [];
  const flags = new Map<string, string | true>();
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (!a.startsWith('--')) {
      positional.push(a);
      continue;
    }
    const eq = a.indexOf('=');
    const key = eq > 0 ? a.slice(0, eq) : a;
    if (VALUED.has(key)) {
      const v = eq > 0 ? a.slice(eq + 1) : args[++i];
      if (v === undefined) return `${key} needs a value`;
      flags.set(key, v);
    } else if (['--md5', '--quiet', '--read-only', '--help'].includes(key)) flags.set(key, true);
    else return `unknown option '${a}'`;
  }
  return { positional, flags };
}

function mib(n: number): string {
  return `${(n / 1048576).toFixed(1)} MiB`;
}

/** A progress line: bytes, percent, rate of this run, ETA; redrawn in place on a terminal, else once a second. */
export function progressLine(p: TransferProgress, startedAt: number, now = performance.now()): string {
  const secs = Math.max(0.001, (now - startedAt) / 1000);
  const rate = (p.done - p.resumedFrom) / secs;
  const pct = p.total === 0 ? 100 : Math.floor((100 * p.done) / p.total);
  const eta = rate > 0 ? Math.ceil((p.total - p.done) / rate) : Infinity;
  const etaText = eta === Infinity ? '?' : eta >= 3600 ? `${Math.floor(eta / 3600)}h${Math.floor((eta % 3600) / 60)}m` : eta >= 60 ? `${Math.floor(eta / 60)}m${eta % 60}s` : `${eta}s`;
  const resumed = p.resumedFrom > 0 ? `  (resumed at ${mib(p.resumedFrom)})` : '';
  return `${mib(p.done)} / ${mib(p.total)}  ${pct}%  ${mib(rate)}/s  ETA ${etaText}${resumed}`;
}

function reporter(quiet: boolean, io: CliOutput): { onProgress: (p: TransferProgress) => void; end(): void } {
  const started = performance.now();
  let last = 0;
  const tty = io.tty;
  let drawn = false;
  return {
    onProgress(p) {
      if (quiet) return;
      const now = performance.now();
      if (now - last < (tty ? 100 : 1000) && p.done < p.total) return;
      last = now;
      io.err(tty ? `\r\x1b[K${progressLine(p, started, now)}` : `${progressLine(p, started, now)}\n`);
      drawn = true;
    },
    end() {
      if (drawn && tty) io.err('\n');
    },
  };
}

async function transportOf(flags: Parsed['flags']): Promise<Awaited<ReturnType<typeof createTransport>>> {
  const t = flags.get('--transport');
  if (typeof t === 'string') return createTransport(t as TransportName);
  try {
    return await createTransport('native');
  } catch {
    return createTransport('node-net');
  }
}

function portOf(flags: Parsed['flags']): number {
  const p = Number(flags.get('--port') ?? 9818);
  if (!Number.isInteger(p) || p < 0 || p > 65535) throw new RangeError(`--port must be 0 to 65535, got ${String(flags.get('--port'))}`);
  return p;
}

async function transfer(kind: 'get' | 'put', args: string[], help: string, io: CliOutput): Promise<number> {
  const parsed = parse(args);
  if (typeof parsed === 'string' || parsed.flags.has('--help') || parsed.positional.length < 1 || parsed.positional.length > 2) {
    if (typeof parsed === 'string') io.err(`zserver ${kind}: ${parsed}\n`);
    const asked = typeof parsed !== 'string' && parsed.flags.has('--help');
    (asked ? io.out : io.err)(help);
    return asked ? 0 : 2;
  }
  const { positional, flags } = parsed;
  const connections = Number(flags.get('--connections') ?? 1);
  if (!Number.isInteger(connections) || connections < 1 || connections > 64) {
    io.err(`zserver ${kind}: --connections must be an integer from 1 to 64\n`);
    return 2;
  }
  const transport = await transportOf(flags);
  const host = String(flags.get('--host') ?? '127.0.0.1');
  const port = portOf(flags);
  const client = new Client({ transport, host, port, quiet: true });
  const progress = reporter(flags.has('--quiet'), io);
  const abort = new AbortController();
  const onSigint = () => abort.abort(new Error('interrupted; run the same command again to resume'));
  process.once('SIGINT', onSigint);
  try {
    await client.connect();
    const files = filesClient(client);
    const algorithm = flags.has('--md5') ? 'md5' : 'xxh64';
    const opts = { connections, algorithm, onProgress: progress.onProgress, signal: abort.signal } as const;
    const r =
      kind === 'get'
        ? await files.download(positional[0]!, resolve(positional[1] ?? basename(positional[0]!)), opts)
        : await files.upload(positional[0]!, positional[1] ?? basename(positional[0]!), opts);
    progress.end();
    io.out(`${kind === 'get' ? 'downloaded' : 'uploaded'} ${r.size} bytes, ${algorithm} ${r.hash}${r.resumedFrom > 0 ? `, resumed at ${r.resumedFrom}` : ''}\n`);
    return 0;
  } catch (err) {
    progress.end();
    const e = err as Error & { remoteCode?: string; code?: string };
    io.err(`zserver ${kind}: ${e.message}${e.remoteCode ?? e.code ? ` (${e.remoteCode ?? e.code})` : ''}\n`);
    return 1;
  } finally {
    process.removeListener('SIGINT', onSigint);
    await client.close().catch(() => {});
    await transport.shutdown();
  }
}

/** `zserver get <remote> [local]`. */
export function runGet(args: string[], io: CliOutput = stdio): Promise<number> {
  return transfer('get', args, GET_HELP, io);
}

/** `zserver put <local> [remote]`. */
export function runPut(args: string[], io: CliOutput = stdio): Promise<number> {
  return transfer('put', args, PUT_HELP, io);
}

/** `zserver serve-files <root>`: runs until SIGINT/SIGTERM. */
export async function runServeFiles(args: string[]): Promise<number> {
  const parsed = parse(args);
  if (typeof parsed === 'string' || parsed.flags.has('--help') || parsed.positional.length !== 1) {
    if (typeof parsed === 'string') process.stderr.write(`zserver serve-files: ${parsed}\n`);
    const asked = typeof parsed !== 'string' && parsed.flags.has('--help');
    (asked ? process.stdout : process.stderr).write(SERVE_HELP);
    return asked ? 0 : 2;
  }
  const { positional, flags } = parsed;
  const server = new Server();
  const quota = flags.get('--quota');
  const service = await serveFiles(server, { root: positional[0]!, readOnly: flags.has('--read-only'), ...(typeof quota === 'string' ? { quota: Number(quota) } : {}) });
  const ep = await server.listen(await transportOf(flags), { host: String(flags.get('--host') ?? '127.0.0.1'), port: portOf(flags) });
  process.stdout.write(`serving ${resolve(positional[0]!)} on ${ep.address.host}:${ep.address.port}${flags.has('--read-only') ? ' (read-only)' : ''}\n`);
  await new Promise<void>((res) => {
    process.once('SIGINT', res);
    process.once('SIGTERM', res);
  });
  await service.close();
  await server.close();
  return 0;
}
