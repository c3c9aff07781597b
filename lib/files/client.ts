/**
 * The client side of the file service: `filesClient(client)` gives list/stat/hash/rename/delete/
 * mkdir and the two transfers, `download(remote, local, opts)` and `upload(local, remote, opts)`.
 *
 * A download writes `<local>.zspart` and records its progress in `<local>.zspart.json` (each range's
 * start, end and bytes written, saved only after those bytes were written). Running it again
 * resumes: each range's written part is checked against the server's hash of the same range, and a
 * part that does not match is fetched again; without a progress file, a `.zspart` is resumed from its
 * length after the same check. With `connections: N` the file is cut into N ranges pulled over N
 * connections at once. At the end the whole file's hash must equal the server's, and only then is
 * the partial renamed to `local` (atomically); on a mismatch the partial is deleted and the
 * download fails with ZS_FILES_HASH.
 *
 * An upload first asks the server for its partial of the same name (`files.partial`) and resumes
 * after it when its hash matches the local file's first bytes; the server renames the upload into
 * place once the whole file's hash matches the one announced.
 */
import { createReadStream } from 'node:fs';
import { open, readFile, rename, stat, unlink, writeFile, type FileHandle } from 'node:fs/promises';
import { FilesError } from '../errors.js';
import { Client } from '../framework/client.js';
import { DataFrame } from '../protocol/dataframe.js';
import { hashRange } from './hash-file.js';
import { DEFAULT_MAX_READ, FilesCommand, checkAlgorithm, type HashAlgorithm } from './protocol.js';

/** Progress of a transfer. */
export interface TransferProgress {
  /** Bytes of the file that are in place (resumed bytes included). */
  done: number;
  /** Size of the file. */
  total: number;
  /** Bytes that were already there when this run started (kept from an earlier run). */
  resumedFrom: number;
}

/** Options of download() and upload(). */
export interface TransferOptions {
  /** Connections a download pulls ranges over at once (default 1; upload uses one). */
  connections?: number;
  /** Makes the extra connections of a download (default: a new Client on the same transport, host and port, no layers). */
  connect?: () => Promise<Client>;
  /** Called as bytes land (at most every 64 KiB to 512 KiB). */
  onProgress?: (progress: TransferProgress) => void;
  /** Stops the transfer; what was written stays for a resume. */
  signal?: AbortSignal;
  /** Content hash used for the checks (default 'xxh64'). */
  algorithm?: HashAlgorithm;
  /** Bytes per read request of a download (default 512 KiB, the server's default maxRead: above a server's maxRead its reads fail). */
  chunkSize?: number;
  /** Read requests in flight per connection (default 8). */
  inFlight?: number;
  /** Timeout of each request, ms (default: the client's requestTimeout). */
  timeout?: number;
}

/** Options of FilesClient.chunks(). */
export interface ChunksOptions {
  /** First byte (default 0). */
  start?: number;
  /** End of the range, exclusive (default: the file's size at open; past it fails with ZS_FILES_HASH). */
  end?: number;
  /** Bytes per read request (default 512 KiB, the server's default maxRead: above a server's maxRead its reads fail). */
  chunkSize?: number;
  /** Read requests in flight (default 8). */
  inFlight?: number;
  /** Timeout of each request, ms (default: the client's requestTimeout). */
  timeout?: number;
  /** Stops the reads. */
  signal?: AbortSignal;
  /** The mtime the file must have at open, else ZS_FILES_HASH (download() passes the one it began with). */
  mtimeMs?: number;
}

/** What a finished transfer reports. */
export interface TransferResult {
  size: number;
  /** The verified content hash of the whole file. */
  hash: string;
  /** Bytes kept from an earlier run. */
  resumedFrom: number;
}

/** One entry of list(). */
export interface FileEntry {
  name: string;
  type: 'file' | 'directory' | 'other';
  size: number;
  mtimeMs: number;
}

/** What stat() reports; `hash` only when asked for. */
export interface FileStat {
  type: 'file' | 'directory' | 'other';
  size: number;
  mtimeMs: number;
  hash?: string;
}

interface RangeState {
  start: number;
  end: number;
  done: number;
}

interface ProgressFile {
  remote: string;
  size: number;
  mtimeMs: number;
  algorithm: HashAlgorithm;
  ranges: RangeState[];
}

const TYPES = ['file', 'directory', 'other'] as const;
// 512 KiB × 8 in flight: a download's window is 4 MiB, so the request round trips of the
// chunks overlap (256 KiB × 4 ran one 512 MiB download over loopback 1.6 to 4 times slower on the
// shared machine, the server spending 2 to 3 times the CPU per GiB on twice the requests; see
// docs/files.md). 512 KiB is the server's default maxRead; 4 MiB stays under the native
// transport's default maxSendQueue (8 MiB) on the server.
const DEFAULT_CHUNK = DEFAULT_MAX_READ;
const DEFAULT_IN_FLIGHT = 8;

function num(v: bigint): number {
  return Number(v);
}

async function localSize(path: string): Promise<number | undefined> {
  try {
    return (await stat(path)).size;
  } catch {
    return undefined;
  }
}

async function hashLocal(path: string, offset: number, length: number, algo: HashAlgorithm): Promise<string> {
  const fh = await open(path, 'r');
  try {
    return await hashRange(fh, offset, length, algo);
  } finally {
    await fh.close();
  }
}

/** The file commands of a server, called over one Client; see the file comment and docs/files.md. */
export class FilesClient {
  readonly client: Client;

  constructor(client: Client) {
    if (!(client instanceof Client)) throw new TypeError('filesClient() needs a Client');
    this.client = client;
  }

  /** The entries of directory `name` ('' for the root); `truncated` when the server's maxListEntries cut it. */
  async list(name = '', timeout?: number): Promise<{ entries: FileEntry[]; truncated: boolean }> {
    const df = await this.client.call(FilesCommand.list, new DataFrame().writeString(name), { timeout });
    const n = df.readUInt32();
    const truncated = df.readByte() === 1;
    const entries: FileEntry[] = [];
    for (let i = 0; i < n; i++) {
      entries.push({ name: df.readString(), type: TYPES[df.readByte()] ?? 'other', size: num(df.readInt64()), mtimeMs: df.readFloat64() });
    }
    return { entries, truncated };
  }

  /** Type, size and mtime of `name`, and its content hash when `hash` names an algorithm. */
  async stat(name: string, options: { hash?: HashAlgorithm; timeout?: number } = {}): Promise<FileStat> {
    const df = await this.client.call(FilesCommand.stat, new DataFrame().writeString(name).writeString(options.hash ?? ''), { timeout: options.timeout });
    const type = TYPES[df.readByte()] ?? 'other';
    const size = num(df.readInt64());
    const mtimeMs = df.readFloat64();
    const hash = df.readString();
    return hash === '' ? { type, size, mtimeMs } : { type, size, mtimeMs, hash };
  }

  /** The content hash of `length` bytes of remote `name` from `offset`, and how many bytes it covers. */
  async hash(name: string, offset: number, length: number, algorithm: HashAlgorithm = 'xxh64', timeout?: number): Promise<{ hash: string; length: number }> {
    const df = await this.client.call(FilesCommand.hash, new DataFrame().writeString(name).writeInt64(offset).writeInt64(length).writeString(algorithm), { timeout });
    return { hash: df.readString(), length: num(df.readInt64()) };
  }

  /** Renames `from` to `to` on the server; an existing `to` is replaced only with `overwrite`. */
  async rename(from: string, to: string, overwrite = false): Promise<void> {
    await this.client.call(FilesCommand.rename, new DataFrame().writeString(from).writeString(to).writeByte(overwrite ? 1 : 0));
  }

  /** Deletes a file or an empty directory on the server. */
  async delete(name: string): Promise<void> {
    await this.client.call(FilesCommand.delete, new DataFrame().writeString(name));
  }

  /** Makes directory `name` and its missing parents on the server. */
  async mkdir(name: string): Promise<void> {
    await this.client.call(FilesCommand.mkdir, new DataFrame().writeString(name));
  }

  /**
   * The bytes `[start, end)` of remote file `remote`, in order, as chunks of `chunkSize` (default
   * 512 KiB, the server's default `maxRead`) with `inFlight` reads (default 8) pipelined on this
   * client's connection: `files.open`, `files.read` calls, `files.close`. `end` defaults to the
   * file's size at open. A chunk is the answer's own buffer: the caller may keep it. Over the native
   * TCP transport it is a view of the frame as it was received (FrameBatch.owned), not a copy.
   *
   * A failure (connection closed, timeout, abort, the file cut short or, with `mtimeMs`, changed
   * since) rejects the iteration; the reads still in flight behind it are settled here, so none
   * of them ever surfaces as an unhandled rejection. Leaving the loop early (`break`, a throw)
   * closes the handle too. download() pulls its ranges with this; a caller that does not want
   * the bytes on disk (a proxy, a hash, a bench) iterates it directly.
   */
  async *chunks(remote: string, options: ChunksOptions = {}): AsyncGenerator<Uint8Array, void, undefined> {
    const chunk = Math.max(1, Math.floor(options.chunkSize ?? DEFAULT_CHUNK));
    const inFlight = Math.max(1, Math.floor(options.inFlight ?? DEFAULT_IN_FLIGHT));
    const { timeout, signal } = options;
    signal?.throwIfAborted();
    const client = this.client;
    const opened = await client.call(FilesCommand.open, new DataFrame().writeString(remote), { timeout });
    const handle = opened.readUInt32();
    const size = num(opened.readInt64());
    const mtimeMs = opened.readFloat64();
    const queue: { at: number; len: number; p: Promise<DataFrame> }[] = [];
    try {
      if (options.mtimeMs !== undefined && mtimeMs !== options.mtimeMs) {
        throw new FilesError('ZS_FILES_HASH', `'${remote}' changed on the server during the download; download again`);
      }
      const end = Math.min(options.end ?? size, size);
      let next = Math.max(0, options.start ?? 0);
      if (options.end !== undefined && options.end > size) {
        throw new FilesError('ZS_FILES_HASH', `'${remote}' is ${size} bytes on the server, shorter than the ${options.end} asked for; download again`);
      }
      while (next < end || queue.length > 0) {
        signal?.throwIfAborted();
        while (queue.length < inFlight && next < end) {
          const len = Math.min(chunk, end - next);
          const p = client.call(FilesCommand.read, new DataFrame().writeUInt32(handle).writeInt64(next).writeUInt32(len), { timeout });
          // Taken in order below; until then a failure of a read behind the head must not count as
          // unhandled (a closed connection fails them all in one turn).
          p.catch(() => {});
          queue.push({ at: next, len, p });
          next += len;
        }
        const head = queue.shift()!;
        const bytes = (await head.p).readBytes();
        if (bytes.length !== head.len) throw new FilesError('ZS_FILES_HASH', `'${remote}' got shorter on the server during the download; download again`);
        yield bytes;
      }
    } finally {
      // The reads still in flight need no wait: their rejections are handled above, and the
      // server answers them before this close, which comes after them on the connection.
      if (client.connected) await client.call(FilesCommand.close, new DataFrame().writeUInt32(handle), { timeout }).catch(() => {});
    }
  }

  /** Downloads remote `remote` to local `local`, resuming an earlier run; see the file comment. */
  async download(remote: string, local: string, options: TransferOptions = {}): Promise<TransferResult> {
    const algo = checkAlgorithm(options.algorithm ?? 'xxh64');
    const connections = Math.max(1, Math.floor(options.connections ?? 1));
    const chunk = Math.max(1, Math.floor(options.chunkSize ?? DEFAULT_CHUNK));
    const inFlight = Math.max(1, Math.floor(options.inFlight ?? DEFAULT_IN_FLIGHT));
    const timeout = options.timeout;
    const signal = options.signal;
    signal?.throwIfAborted();
    const remoteStat = await this.stat(remote, { timeout });
    if (remoteStat.type !== 'file') throw new FilesError('ZS_FILES_PATH', `'${remote}' is not a regular file on the server`);
    const size = remoteStat.size;
    const partial = `${local}.zspart`;
    const progressPath = `${local}.zspart.json`;

    // Work out what to keep from an earlier run, each kept part checked against the server.
    let ranges: RangeState[] | undefined;
    const saved = await readFile(progressPath, 'utf8')
      .then((t) => JSON.parse(t) as ProgressFile)
      .catch(() => undefined); // missing or unreadable: the partial's length is checked instead
    const have = await localSize(partial);
    if (saved !== undefined && have !== undefined && saved.remote === remote && saved.size === size && saved.mtimeMs === remoteStat.mtimeMs && saved.algorithm === algo && Array.isArray(saved.ranges)) {
      ranges = [];
      for (const r of saved.ranges) {
        // The saved progress may lag the bytes written (a kill between a write and its save): the
        // range that ends the partial is tried up to the partial's length first.
        const candidates = [Math.min(r.done, have)];
        if (have > r.done && have <= r.end) candidates.unshift(have);
        let keep = r.start;
        for (const done of candidates) {
          if (done <= r.start) continue;
          const [theirs, ours] = await Promise.all([this.hash(remote, r.start, done - r.start, algo, timeout), hashLocal(partial, r.start, done - r.start, algo)]);
          if (theirs.hash === ours && theirs.length === done - r.start) {
            keep = done;
            break;
          }
        }
        ranges.push({ start: r.start, end: r.end, done: keep });
      }
    } else {
      let from = 0;
      if (saved === undefined && have !== undefined && have > 0 && have <= size) {
        const [theirs, ours] = await Promise.all([this.hash(remote, 0, have, algo, timeout), hashLocal(partial, 0, have, algo)]);
        if (theirs.hash === ours) from = have;
      }
      const n = Math.min(connections, Math.max(1, Math.ceil((size - from) / chunk)));
      const per = Math.ceil((size - from) / n);
      ranges = [];
      for (let i = 0; i < n; i++) {
        const start = from + i * per;
        ranges.push({ start: Math.min(start, size), end: Math.min(size, start + per), done: Math.min(start, size) });
      }
      ranges[0]!.start = 0; // the first range owns the kept prefix
    }
    // The server hashes the whole file while the bytes travel, not after them: for a file it has
    // not hashed yet (its cache) that is a read of the whole file, which otherwise adds to the
    // download's time. The hash is of the file as this download began; a file changed since
    // cannot match the bytes that arrive, so the check at the end stays as strict.
    const theirsAtStart = this.stat(remote, { hash: algo, timeout });
    theirsAtStart.catch(() => {}); // awaited at the end; a failed download must not leave it unhandled
    const resumedFrom = ranges.reduce((a, r) => a + (r.done - r.start), 0);
    let done = resumedFrom;

    const fh = await open(partial, have === undefined ? 'w+' : 'r+');
    const record: ProgressFile = { remote, size, mtimeMs: remoteStat.mtimeMs, algorithm: algo, ranges };
    // Progress is saved after the bytes it claims were written, one save at a time: while one is
    // being written, later progress only marks it stale, and one more save follows with the latest.
    let saving: Promise<void> | null = null;
    let stale = false;
    const save = (): Promise<void> => {
      if (saving !== null) {
        stale = true;
        return saving;
      }
      const run = async (): Promise<void> => {
        do {
          stale = false;
          // Written aside and renamed over, so a kill never leaves half a progress file.
          await writeFile(`${progressPath}.tmp`, JSON.stringify(record));
          await rename(`${progressPath}.tmp`, progressPath);
        } while (stale);
      };
      saving = run().finally(() => {
        saving = null;
      });
      return saving;
    };
    const extra: Client[] = [];
    try {
      if (have !== undefined && have > size) await fh.truncate(size);
      await save();
      const clients: Client[] = [this.client];
      const pending = ranges.filter((r) => r.done < r.end);
      for (let i = 1; i < pending.length; i++) {
        const c = options.connect ? await options.connect() : new Client({ transport: this.client.transport, host: this.client.host, port: this.client.port });
        if (!options.connect) await c.connect();
        extra.push(c);
        clients.push(c);
      }
      // allSettled: every range stops (or finishes) before the progress is saved and the file closed.
      const settled = await Promise.allSettled(
        pending.map((r, i) =>
          pullRange(new FilesClient(clients[i]!), remote, r, fh, { chunk, inFlight, timeout, signal, mtimeMs: remoteStat.mtimeMs }, (n) => {
            done += n;
            options.onProgress?.({ done, total: size, resumedFrom });
            void save().catch(() => {});
          }),
        ),
      );
      const failed = settled.find((x): x is PromiseRejectedResult => x.status === 'rejected');
      if (failed !== undefined) throw failed.reason;
    } finally {
      await (saving as Promise<void> | null)?.catch(() => {});
      await save().catch(() => {}); // after a failure too: what was written is kept for the next run
      await fh.close();
      await Promise.all(extra.map((c) => c.close().catch(() => {})));
    }
    const [theirs, ours] = await Promise.all([theirsAtStart, hashLocal(partial, 0, size, algo)]);
    if (theirs.hash !== ours || theirs.size !== size) {
      await unlink(partial).catch(() => {});
      await unlink(progressPath).catch(() => {});
      throw new FilesError('ZS_FILES_HASH', `'${remote}' arrived with ${algo} ${ours}, the server has ${theirs.hash} (${theirs.size} bytes); the partial was deleted, download again`);
    }
    await rename(partial, local);
    await unlink(progressPath).catch(() => {});
    return { size, hash: ours, resumedFrom };
  }

  /** Uploads local `local` to remote `remote`, resuming after the server's partial when its hash matches. */
  async upload(local: string, remote: string, options: TransferOptions = {}): Promise<TransferResult> {
    const algo = checkAlgorithm(options.algorithm ?? 'xxh64');
    const signal = options.signal;
    signal?.throwIfAborted();
    const size = (await stat(local)).size;
    const [whole, part] = await Promise.all([
      hashLocal(local, 0, size, algo),
      this.client.call(FilesCommand.partial, new DataFrame().writeString(remote).writeString(algo), { timeout: options.timeout }),
    ]);
    const have = num(part.readInt64());
    const theirs = part.readString();
    let offset = 0;
    if (have > 0 && have <= size && (await hashLocal(local, 0, have, algo)) === theirs) offset = have;
    signal?.throwIfAborted();
    const source = createReadStream(local, { start: offset, highWaterMark: 256 * 1024, ...(signal ? { signal } : {}) });
    const info = new DataFrame().writeString(remote).writeInt64(offset).writeInt64(size).writeString(algo).writeString(whole);
    const onProgress = options.onProgress;
    const answer = await this.client.sendBigStream(FilesCommand.upload, source as AsyncIterable<Uint8Array>, {
      size: size - offset,
      info,
      timeout: options.timeout,
      onProgress: onProgress && ((sent) => onProgress({ done: offset + sent, total: size, resumedFrom: offset })),
    });
    const stored = num(answer.readInt64());
    const hash = answer.readString();
    if (stored !== size || hash !== whole) throw new FilesError('ZS_FILES_HASH', `the server stored ${stored} bytes with ${algo} ${hash}; expected ${size} bytes with ${whole}`);
    return { size, hash, resumedFrom: offset };
  }
}

/**
 * Pulls one range of a remote file into `fh`, in order, through FilesClient.chunks(): each chunk is
 * written where it belongs (a positional write) straight from the buffer it arrived in.
 */
async function pullRange(
  files: FilesClient,
  remote: string,
  range: RangeState,
  fh: FileHandle,
  o: { chunk: number; inFlight: number; timeout: number | undefined; signal: AbortSignal | undefined; mtimeMs: number },
  progressed: (bytes: number) => void,
): Promise<void> {
  const chunks = files.chunks(remote, { start: range.done, end: range.end, chunkSize: o.chunk, inFlight: o.inFlight, timeout: o.timeout, signal: o.signal, mtimeMs: o.mtimeMs });
  for await (const bytes of chunks) {
    const at = range.done;
    let w = 0;
    while (w < bytes.length) w += (await fh.write(bytes, w, bytes.length - w, at + w)).bytesWritten;
    range.done = at + bytes.length;
    progressed(bytes.length);
  }
}

/** The file commands of the server `client` is connected to (docs/files.md). */
export function filesClient(client: Client): FilesClient {
  return new FilesClient(client);
}
