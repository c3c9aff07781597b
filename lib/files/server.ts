/**
 * The file service on a Server: `serveFiles(server, { root, readOnly, quota, perUser, ... })`
 * registers the `files.*` commands of protocol.ts (docs/files.md has their bytes).
 *
 * Downloads are ranged reads on a handle (`files.open`, then any number of `files.read` of at most
 * `maxRead` bytes at any offset, then `files.close`): the client chooses ranges, pipelines reads,
 * resumes at any offset and pulls one file over several connections. Uploads are big streams
 * (flow-controlled by the framework) written to a hidden partial file `.zspart.<name>` next to the
 * target, resumable from the partial's length, and renamed into place only when the whole file's
 * content hash matches the one the client announced.
 *
 * Every resource a peer can make the server hold is bounded (docs/limits.md, "File service"):
 * transfers (open handles + uploads) per peer, open files per server, idle handles, bytes per read,
 * entries per listing, file size, and bytes per root (quota). All file-system work is async
 * (libuv thread pool); hashing reads 1 MiB at a time.
 */
import { constants as fsc, type Stats } from 'node:fs';
import { lstat, mkdir, open, opendir, rename, rmdir, stat, unlink, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { FilesError } from '../errors.js';
import type { BigStreamIn } from '../framework/bigstream.js';
import type { Peer } from '../framework/peer.js';
import type { StreamHandler } from '../framework/registry.js';
import { FileReply, fileRepliesOn } from '../framework/reply.js';
import type { EncodedReply } from '../framework/worker-hook.js';
import type { Server } from '../framework/server.js';
import { DataFrame } from '../protocol/dataframe.js';
import { hashRange } from './hash-file.js';
import { ReadReply, replyHead } from './read-reply.js';
import { SandboxRoot, O_NOFOLLOW, checkName, fsError } from './paths.js';
import { DEFAULT_MAX_READ, FilesCommand, PARTIAL_PREFIX, checkAlgorithm, type HashAlgorithm } from './protocol.js';

/** Options of serveFiles(); every limit has a default (docs/limits.md, "File service"). */
export interface FilesOptions {
  /** The directory served (created if missing). Every name is relative to it (or to a user's root below it). */
  root: string;
  /** Refuse every change (upload, rename, delete, mkdir) with ZS_FILES_READ_ONLY. Default false. */
  readOnly?: boolean;
  /** Bytes a root may hold (partial uploads included); an upload that would pass it fails with ZS_FILES_QUOTA. Default: no quota. */
  quota?: number;
  /**
   * Per-user roots: returns the user of a peer (for example from its session), whose files live in
   * `<root>/<user>` (created on first use, with its own quota); undefined refuses the request
   * with ZS_FILES_DENIED. Without it every peer shares `root`.
   */
  perUser?: (peer: Peer) => string | undefined;
  /** Largest file an upload may create, bytes (default 64 GiB): ZS_FILES_TOO_LARGE. */
  maxFileSize?: number;
  /** Transfers (open read handles plus uploads) one peer may have at once (default 8): ZS_FILES_BUSY. */
  maxTransfersPerPeer?: number;
  /** Files the service keeps open at once over all peers (default 1,024): ZS_FILES_BUSY. */
  maxOpenFiles?: number;
  /** Largest `files.read`, bytes (default 512 KiB; the answer must fit one message): RangeError to the caller. */
  maxRead?: number;
  /**
   * `files.read`s the service runs at once over all peers (default 16). More wait their turn in
   * arrival order, holding no buffer: a read's buffer is allocated when it starts, so 1,000
   * downloads with 4 reads in flight hold 16 buffers rather than 4,000 while the thread pool
   * (4 threads by default) works through them.
   */
  maxReadsInProgress?: number;
  /** A read handle unused this long is closed, ms (default 60,000); later reads get ZS_FILES_HANDLE. */
  handleTimeout?: number;
  /** Entries one `files.list` returns at most (default 10,000); the answer says when it was cut. */
  maxListEntries?: number;
  /**
   * Answer `files.read` over native TCP connections without layers (no secure channel, no
   * compression layer) with the native loop's sendfile(2), the file's bytes never entering
   * JavaScript (default true). Other connections, and `false`, read into the answer's buffer
   * on the libuv thread pool.
   */
  sendfile?: boolean;
}

/** What serveFiles() returns: counters and a close(). */
export interface FileService {
  /** Open read handles and uploads in progress, over all peers. */
  readonly openFiles: number;
  /** `files.read`s running now (at most maxReadsInProgress). */
  readonly readsInProgress: number;
  /** `files.read`s waiting for one of the maxReadsInProgress places. */
  readonly readsWaiting: number;
  /** Closes every handle and stops the idle sweeper (the commands stay registered). */
  close(): Promise<void>;
}

interface ReadHandle {
  fh: FileHandle;
  size: number;
  name: string;
  lastUsed: number;
}

interface PeerFiles {
  handles: Map<number, ReadHandle>;
  /** Uploads and hashing requests in progress (each holds a file open). */
  uploads: number;
  nextHandle: number;
}

interface RootState {
  sandbox: SandboxRoot;
  /** Bytes under the root, computed on first need, then kept up to date by the service's own changes. */
  usage: Promise<number> | undefined;
  delta: number;
}

const TYPE_FILE = 0;
const TYPE_DIR = 1;
const TYPE_OTHER = 2;

function typeOf(st: Stats): number {
  return st.isFile() ? TYPE_FILE : st.isDirectory() ? TYPE_DIR : TYPE_OTHER;
}

function checkLimit(v: number | undefined, name: string, fallback: number): number {
  if (v === undefined) return fallback;
  if (typeof v !== 'number' || !(v > 0)) throw new RangeError(`files option ${name} must be a number > 0, got ${String(v)}`);
  return v;
}

function int(df: DataFrame, what: string): number {
  const v = df.readInt64();
  if (v < 0n || v > BigInt(Number.MAX_SAFE_INTEGER)) throw new RangeError(`${what} must be from 0 to 2^53 - 1, got ${v}`);
  return Number(v);
}

async function diskUsage(dir: string, budget: { entries: number }): Promise<number> {
  let total = 0;
  let d;
  try {
    d = await opendir(dir);
  } catch {
    return 0;
  }
  for await (const e of d) {
    if (--budget.entries < 0) break; // a bound on the walk; the rest is counted as it changes
    const p = join(dir, e.name);
    if (e.isDirectory()) total += await diskUsage(p, budget);
    else if (e.isFile()) total += (await lstat(p).catch(() => ({ size: 0 }))).size;
  }
  return total;
}

/** Registers the file commands of docs/files.md on `server`; see FilesOptions for the limits. */
export async function serveFiles(server: Server, options: FilesOptions): Promise<FileService> {
  if (!options || typeof options.root !== 'string' || options.root === '') throw new TypeError('files option root must be a directory path');
  const readOnly = options.readOnly === true;
  const quota = options.quota === undefined ? Infinity : checkLimit(options.quota, 'quota', Infinity);
  const maxFileSize = checkLimit(options.maxFileSize, 'maxFileSize', 64 * 1024 ** 3);
  const maxTransfers = checkLimit(options.maxTransfersPerPeer, 'maxTransfersPerPeer', 8);
  const maxOpenFiles = checkLimit(options.maxOpenFiles, 'maxOpenFiles', 1024);
  const maxRead = checkLimit(options.maxRead, 'maxRead', DEFAULT_MAX_READ);
  const maxReads = checkLimit(options.maxReadsInProgress, 'maxReadsInProgress', 16);
  const handleTimeout = checkLimit(options.handleTimeout, 'handleTimeout', 60_000);
  const maxListEntries = checkLimit(options.maxListEntries, 'maxListEntries', 10_000);
  const perUser = options.perUser;
  const sendfile = options.sendfile !== false;
  const baseRoot = await SandboxRoot.open(options.root, true);

  const roots = new Map<string, RootState>();
  const peers = new WeakMap<Peer, PeerFiles>();
  const livePeers = new Set<PeerFiles>();
  const uploading = new Set<string>();
  let openFiles = 0;
  /** Whole-file hashes by (device, inode, size, mtime, algorithm); insertion order makes it an LRU. */
  const hashCache = new Map<string, string>();

  async function rootOf(peer: Peer): Promise<RootState> {
    let key = '';
    if (perUser !== undefined) {
      const user = perUser(peer);
      if (user === undefined) throw new FilesError('ZS_FILES_DENIED', 'this server keeps files per user and the connection has no user; log in first');
      const segs = checkName(user);
      if (segs.length !== 1) throw new FilesError('ZS_FILES_DENIED', 'a user name for a per-user root must be one path segment');
      key = segs[0]!;
    }
    let r = roots.get(key);
    if (r === undefined) {
      const sandbox = key === '' ? baseRoot : await SandboxRoot.open(join(baseRoot.real, key), true);
      // A user's directory replaced by a symlink behind the service's back must not lead out.
      if (!baseRoot.contains(sandbox.real)) throw new FilesError('ZS_FILES_PATH', `the root of user '${key}' leads outside the service's root`);
      r = roots.get(key) ?? { sandbox, usage: undefined, delta: 0 };
      roots.set(key, r);
    }
    return r;
  }

  async function usageOf(r: RootState): Promise<number> {
    if (quota === Infinity) return 0;
    r.usage ??= diskUsage(r.sandbox.real, { entries: 1_000_000 });
    return (await r.usage) + r.delta;
  }

  function stateOf(peer: Peer): PeerFiles {
    let s = peers.get(peer);
    if (s === undefined) {
      s = { handles: new Map(), uploads: 0, nextHandle: 1 };
      peers.set(peer, s);
      livePeers.add(s);
    }
    return s;
  }

  function takeSlot(s: PeerFiles): void {
    if (s.handles.size + s.uploads >= maxTransfers) {
      throw new FilesError('ZS_FILES_BUSY', `this connection already has ${maxTransfers} transfers open (maxTransfersPerPeer); close one first`);
    }
    if (openFiles >= maxOpenFiles) throw new FilesError('ZS_FILES_BUSY', `the server has ${maxOpenFiles} files open (maxOpenFiles); retry later`);
  }

  function writable(): void {
    if (readOnly) throw new FilesError('ZS_FILES_READ_ONLY', 'this file service is read-only');
  }

  async function closeHandle(s: PeerFiles, id: number): Promise<void> {
    const h = s.handles.get(id);
    if (h === undefined) return;
    s.handles.delete(id);
    openFiles--;
    // A read answered in this same turn returned a FileReply with this descriptor's number; the
    // framework hands it to the loop (which duplicates the descriptor) in the microtasks that
    // follow. fh.close() runs close(2) on the thread pool at once, and could beat them: the loop
    // would then find the number closed (EBADF, the connection reset) or, worse, reused by another
    // file. setImmediate runs after those microtasks.
    await new Promise<void>((resolve) => setImmediate(resolve));
    await h.fh.close().catch(() => {});
  }

  async function closeAll(s: PeerFiles): Promise<void> {
    livePeers.delete(s);
    await Promise.all([...s.handles.keys()].map((id) => closeHandle(s, id)));
  }

  server.on('disconnect', (peer) => {
    const s = peers.get(peer);
    if (s !== undefined) void closeAll(s);
  });

  const sweeper = setInterval(() => {
    const idle = performance.now() - handleTimeout;
    for (const s of livePeers) for (const [id, h] of s.handles) if (h.lastUsed < idle) void closeHandle(s, id);
  }, Math.max(50, Math.min(handleTimeout / 2, 10_000)));
  sweeper.unref();

  /** Opens a regular file for reading, refusing symlinks (O_NOFOLLOW) and non-files. */
  async function openRegular(path: string, name: string): Promise<{ fh: FileHandle; st: Stats }> {
    let fh: FileHandle;
    try {
      fh = await open(path, fsc.O_RDONLY | O_NOFOLLOW);
    } catch (err) {
      throw fsError(err, name);
    }
    const st = await fh.stat();
    if (!st.isFile()) {
      await fh.close();
      throw new FilesError('ZS_FILES_PATH', `'${name}' is not a regular file`);
    }
    return { fh, st };
  }

  /**
   * Runs `work` holding a transfer slot and an open-file slot: hashing reads a whole file or range,
   * so a peer may not run more of them at once than it may have transfers.
   */
  async function withSlot<T>(peer: Peer, work: () => Promise<T>): Promise<T> {
    const s = stateOf(peer);
    takeSlot(s);
    s.uploads++;
    openFiles++;
    try {
      return await work();
    } finally {
      s.uploads--;
      openFiles--;
    }
  }

  async function wholeHash(fh: FileHandle, st: Stats, algo: HashAlgorithm): Promise<string> {
    const key = `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}:${algo}`;
    const hit = hashCache.get(key);
    if (hit !== undefined) {
      hashCache.delete(key);
      hashCache.set(key, hit);
      return hit;
    }
    const h = await hashRange(fh, 0, st.size, algo);
    hashCache.set(key, h);
    if (hashCache.size > 1024) hashCache.delete(hashCache.keys().next().value!);
    return h;
  }

  server.stream(FilesCommand.list, async (df, peer) => {
    const name = df.readString();
    const r = await rootOf(peer);
    const segs = checkName(name, true);
    const dir = await r.sandbox.resolveNoLink(segs);
    const out = new DataFrame();
    const entries: { name: string; type: number; size: number; mtimeMs: number }[] = [];
    let truncated = false;
    try {
      const d = await opendir(dir);
      for await (const e of d) {
        if (e.name.startsWith(PARTIAL_PREFIX)) continue;
        if (entries.length >= maxListEntries) {
          truncated = true;
          break;
        }
        const st = await lstat(join(dir, e.name)).catch(() => undefined);
        if (st === undefined) continue; // removed during the walk
        entries.push({ name: e.name, type: typeOf(st), size: st.isFile() ? st.size : 0, mtimeMs: st.mtimeMs });
      }
    } catch (err) {
      throw fsError(err, name || '.');
    }
    out.writeUInt32(entries.length).writeByte(truncated ? 1 : 0);
    for (const e of entries) out.writeString(e.name).writeByte(e.type).writeInt64(e.size).writeFloat64(e.mtimeMs);
    return out;
  });

  server.stream(FilesCommand.stat, async (df, peer) => {
    const name = df.readString();
    const algoText = df.eof ? '' : df.readString();
    const r = await rootOf(peer);
    const segs = checkName(name, true);
    const p = await r.sandbox.resolveNoLink(segs);
    const st = await stat(p).catch((err: unknown) => {
      throw fsError(err, name);
    });
    let hash = '';
    if (algoText !== '' && st.isFile()) {
      const algo = checkAlgorithm(algoText);
      hash = await withSlot(peer, async () => {
        const { fh, st: st2 } = await openRegular(p, name);
        try {
          return await wholeHash(fh, st2, algo);
        } finally {
          await fh.close();
        }
      });
    }
    return new DataFrame().writeByte(typeOf(st)).writeInt64(st.isFile() ? st.size : 0).writeFloat64(st.mtimeMs).writeString(hash);
  });

  server.stream(FilesCommand.hash, async (df, peer) => {
    const name = df.readString();
    const offset = int(df, 'offset');
    const length = int(df, 'length');
    const algo = checkAlgorithm(df.readString());
    const r = await rootOf(peer);
    const p = await r.sandbox.resolve(checkName(name));
    return withSlot(peer, async () => {
      const { fh, st } = await openRegular(p, name);
      try {
        const n = Math.max(0, Math.min(length, st.size - offset));
        const hash = offset === 0 && n === st.size ? await wholeHash(fh, st, algo) : await hashRange(fh, offset, n, algo);
        return new DataFrame().writeString(hash).writeInt64(n);
      } finally {
        await fh.close();
      }
    });
  });

  server.stream(FilesCommand.open, async (df, peer) => {
    const name = df.readString();
    const r = await rootOf(peer);
    const s = stateOf(peer);
    takeSlot(s);
    const p = await r.sandbox.resolve(checkName(name));
    takeSlot(s); // checked again: other opens may have finished while this one resolved
    openFiles++;
    let opened;
    try {
      opened = await openRegular(p, name);
    } catch (err) {
      openFiles--;
      throw err;
    }
    if (!peer.connected) {
      openFiles--;
      await opened.fh.close();
      throw new FilesError('ZS_FILES_HANDLE', 'the connection closed while the file was being opened');
    }
    const id = s.nextHandle++;
    s.handles.set(id, { fh: opened.fh, size: opened.st.size, name, lastUsed: performance.now() });
    return new DataFrame().writeUInt32(id).writeInt64(opened.st.size).writeFloat64(opened.st.mtimeMs);
  });

  // Reads over all peers: at most maxReads run (each with its buffer); the rest wait in order.
  let reads = 0;
  const readWaiters: (() => void)[] = [];
  const startRead = (): Promise<void> | undefined => {
    if (reads < maxReads) {
      reads++;
      return undefined;
    }
    return new Promise((resolve) => readWaiters.push(resolve)); // the place is handed over by endRead
  };
  const endRead = (): void => {
    const next = readWaiters.shift();
    if (next !== undefined) next();
    else reads--;
  };

  // The answer is a Reply already encoded around the file's bytes (read-reply.ts). The framework
  // sends an EncodedReply as it is, as it does a worker thread's; StreamHandler's public type
  // names only DataFrame, hence the cast.
  const readFile = async (df: DataFrame, peer: Peer): Promise<EncodedReply | FileReply> => {
    const id = df.readUInt32();
    const offset = int(df, 'offset');
    const length = df.readUInt32();
    if (length > maxRead) throw new RangeError(`a read may ask for at most ${maxRead} bytes (maxRead), got ${length}`);
    const noHandle = () => new FilesError('ZS_FILES_HANDLE', `no open file with handle ${id} on this connection (closed, or idle longer than ${handleTimeout} ms); open it again`);
    let h = stateOf(peer).handles.get(id);
    if (h === undefined) throw noHandle();
    h.lastUsed = performance.now();
    if (sendfile && fileRepliesOn(peer.transport)) {
      // Native TCP with no layer that must see the bytes: the loop sends the range with
      // sendfile(2), in order with the connection's other frames, and duplicates the descriptor
      // before the reply is handed over, so a close of the handle right after cannot cut it.
      const n = Math.max(0, Math.min(length, h.size - offset));
      return new FileReply(replyHead(n), h.fh.fd, offset, n);
    }
    await startRead();
    try {
      h = stateOf(peer).handles.get(id); // it may have been closed while the read waited
      if (h === undefined) throw noHandle();
      const n = Math.max(0, Math.min(length, h.size - offset));
      // The bytes are read straight into the answer's payload, behind room for its header
      // (read-reply.ts): no copy into the framework's reply writer.
      const reply = new ReadReply(n);
      while (reply.got < n) {
        const { bytesRead } = await h.fh.read(reply.buf, reply.at, n - reply.got, offset + reply.got).catch((err: unknown) => {
          throw fsError(err, h!.name);
        });
        if (bytesRead === 0) break; // the file shrank since it was opened
        reply.got += bytesRead;
      }
      h.lastUsed = performance.now();
      return reply.encoded();
    } finally {
      endRead();
    }
  };
  server.stream(FilesCommand.read, readFile as unknown as StreamHandler);

  server.stream(FilesCommand.close, async (df, peer) => {
    const s = peers.get(peer);
    if (s !== undefined) await closeHandle(s, df.readUInt32());
    return new DataFrame();
  });

  function partialPath(final: string): string {
    return join(dirname(final), PARTIAL_PREFIX + basename(final));
  }

  server.stream(FilesCommand.partial, async (df, peer) => {
    const name = df.readString();
    const algo = checkAlgorithm(df.eof ? '' : df.readString());
    const r = await rootOf(peer);
    const p = partialPath(await r.sandbox.resolve(checkName(name)));
    return withSlot(peer, async () => {
      let fh: FileHandle;
      try {
        fh = await open(p, fsc.O_RDONLY | O_NOFOLLOW);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return new DataFrame().writeInt64(0).writeString('');
        throw fsError(err, name);
      }
      try {
        const st = await fh.stat();
        return new DataFrame().writeInt64(st.size).writeString(await hashRange(fh, 0, st.size, algo));
      } finally {
        await fh.close();
      }
    });
  });

  server.bigStream(FilesCommand.upload, async (stream: BigStreamIn, peer) => {
    const info = stream.info;
    const name = info.readString();
    const offset = int(info, 'offset');
    const size = int(info, 'size');
    const algo = checkAlgorithm(info.readString());
    const expected = info.readString().toLowerCase();
    writable();
    if (expected === '') throw new FilesError('ZS_FILES_HASH', 'an upload must announce the whole file\'s content hash');
    if (size > maxFileSize) throw new FilesError('ZS_FILES_TOO_LARGE', `the file is ${size} bytes; this server takes at most ${maxFileSize} (maxFileSize)`);
    if (offset > size || stream.total !== size - offset) {
      throw new RangeError(`the stream must carry size - offset = ${size - offset} bytes, it announced ${stream.total}`);
    }
    const r = await rootOf(peer);
    const final = await r.sandbox.resolve(checkName(name));
    const temp = partialPath(final);
    const s = stateOf(peer);
    takeSlot(s);
    if (uploading.has(temp)) throw new FilesError('ZS_FILES_BUSY', `'${name}' is being uploaded by another transfer; retry when it ends`);
    uploading.add(temp);
    s.uploads++;
    openFiles++;
    let reserved = 0;
    let fh: FileHandle | undefined;
    try {
      const existing = await lstat(final).catch(() => undefined);
      if (existing !== undefined && !existing.isFile()) throw new FilesError('ZS_FILES_EXISTS', `'${name}' exists and is not a regular file`);
      fh = await open(temp, fsc.O_WRONLY | fsc.O_CREAT | O_NOFOLLOW, 0o644).catch((err: unknown) => {
        throw fsError(err, name);
      });
      const have = (await fh.stat()).size;
      if (offset > have) throw new FilesError('ZS_FILES_RESUME', `the server has ${have} bytes of '${name}', cannot resume at ${offset}; ask files.partial`);
      await fh.truncate(offset);
      r.delta += offset - have;
      const usage = await usageOf(r);
      if (usage + (size - offset) > quota) {
        throw new FilesError('ZS_FILES_QUOTA', `'${name}' needs ${size - offset} more bytes; ${Math.max(0, quota - usage)} of the quota of ${quota} are left`);
      }
      reserved = size - offset;
      r.delta += reserved;
      // Chunks are gathered into writes of about 1 MiB: one thread-pool round trip per MiB.
      let pos = offset;
      let batch: Buffer[] = [];
      let batched = 0;
      const flush = async (): Promise<void> => {
        if (batched === 0) return;
        const bufs = batch;
        const n = batched;
        batch = [];
        batched = 0;
        let done = 0;
        while (done < n) {
          const { bytesWritten } = await fh!.writev(done === 0 ? bufs : [Buffer.concat(bufs).subarray(done)], pos + done);
          done += bytesWritten;
        }
        pos += n;
      };
      try {
        for await (const chunk of stream) {
          batch.push(chunk);
          batched += chunk.length;
          if (batched >= 1024 * 1024) await flush();
        }
      } finally {
        await flush(); // what arrived before an abort stays, for a resume
      }
      await fh.close();
      fh = undefined;
      const check = await open(temp, fsc.O_RDONLY | O_NOFOLLOW);
      let got: string;
      try {
        got = await hashRange(check, 0, size, algo);
      } finally {
        await check.close();
      }
      if (got !== expected) {
        await unlink(temp).catch(() => {});
        r.delta -= size;
        reserved = 0;
        throw new FilesError('ZS_FILES_HASH', `'${name}' arrived with ${algo} ${got}, the client announced ${expected}; the partial was deleted, upload again`);
      }
      const old = await lstat(final).catch(() => undefined);
      await rename(temp, final).catch((err: unknown) => {
        throw fsError(err, name);
      });
      if (old?.isFile()) r.delta -= old.size;
      reserved = 0;
      return new DataFrame().writeInt64(size).writeString(got);
    } catch (err) {
      if (reserved > 0) {
        const now = fh !== undefined ? (await fh.stat().catch(() => ({ size }))).size : size;
        r.delta -= size - now; // give back what was reserved but never written
      }
      throw err;
    } finally {
      if (fh !== undefined) await fh.close().catch(() => {});
      uploading.delete(temp);
      s.uploads--;
      openFiles--;
    }
  });

  server.stream(FilesCommand.rename, async (df, peer) => {
    const from = df.readString();
    const to = df.readString();
    const overwrite = df.eof ? false : df.readByte() === 1;
    writable();
    const r = await rootOf(peer);
    const src = await r.sandbox.resolveNoLink(checkName(from));
    const dst = await r.sandbox.resolve(checkName(to));
    const old = await lstat(dst).catch(() => undefined);
    if (old !== undefined && !overwrite) throw new FilesError('ZS_FILES_EXISTS', `'${to}' exists; pass overwrite to replace it`);
    if (old !== undefined && !old.isFile()) throw new FilesError('ZS_FILES_EXISTS', `'${to}' exists and is not a regular file`);
    await rename(src, dst).catch((err: unknown) => {
      throw fsError(err, from);
    });
    if (old?.isFile()) r.delta -= old.size;
    return new DataFrame();
  });

  server.stream(FilesCommand.delete, async (df, peer) => {
    const name = df.readString();
    writable();
    const r = await rootOf(peer);
    const p = await r.sandbox.resolve(checkName(name));
    const st = await lstat(p).catch((err: unknown) => {
      throw fsError(err, name);
    });
    try {
      if (st.isDirectory()) await rmdir(p);
      else await unlink(p);
    } catch (err) {
      throw fsError(err, name);
    }
    if (st.isFile()) r.delta -= st.size;
    return new DataFrame();
  });

  server.stream(FilesCommand.mkdir, async (df, peer) => {
    const name = df.readString();
    writable();
    const r = await rootOf(peer);
    const segs = checkName(name);
    // One level at a time, each checked: a symlink planted in the path cannot lead the creation out.
    for (let i = 1; i <= segs.length; i++) {
      const p = await r.sandbox.resolve(segs.slice(0, i));
      const st = await lstat(p).catch(() => undefined);
      if (st === undefined) {
        await mkdir(p).catch((err: unknown) => {
          if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw fsError(err, segs.slice(0, i).join('/'));
        });
      } else if (!st.isDirectory() && !st.isSymbolicLink()) {
        throw new FilesError('ZS_FILES_EXISTS', `'${segs.slice(0, i).join('/')}' exists and is not a directory`);
      }
    }
    return new DataFrame();
  });

  return {
    get openFiles() {
      return openFiles;
    },
    get readsInProgress() {
      return reads;
    },
    get readsWaiting() {
      return readWaiters.length;
    },
    async close() {
      clearInterval(sweeper);
      await Promise.all([...livePeers].map(closeAll));
    },
  };
}
