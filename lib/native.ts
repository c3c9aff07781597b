/**
 * Loads the native addon.
 *
 * Search order: `prebuilds/<platform>-<arch>/zserver.node` inside the package
 * (shipped in the npm tarball), then `build/Release/zserver.node` (a build
 * from source), then `$ZSERVER_NATIVE` when that variable names a file. When
 * none loads, the error names the platform, the Node version and the command
 * that builds the addon from source.
 *
 * Every other module reaches native code through `native()`, typed by
 * `NativeBinding`; nothing outside lib/ touches the raw addon.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NativeLoadError } from './errors.js';

/**
 * Called once per batch by a TcpLoop (native/binding/tcp.cc). The arrays are
 * reused for the next batch; `eventRecords` holds 4 int32 per event.
 */
export type TcpBatchCallback = (
  frames: number,
  events: number,
  data: Buffer,
  peers: Uint32Array,
  kinds: Uint8Array,
  flags: Uint8Array,
  offsets: Uint32Array,
  lengths: Uint32Array,
  eventRecords: Int32Array,
) => void;

/** The native I/O loop of the TCP transport (see native/binding/tcp.cc for the contract). */
export interface TcpLoopHandle {
  listen(host: string, port: number, reusePort: boolean, options: Float64Array): number;
  connect(
    host: string,
    port: number,
    localHost: string | null,
    timeoutMs: number,
    tag: number,
    options: Float64Array,
  ): number;
  submit(
    data: Uint8Array,
    count: number,
    ops: Uint8Array,
    peers: Uint32Array,
    kindBytes: Uint8Array,
    lens: Uint32Array,
  ): void;
  peerAddress(peer: number): [string, number, string, number] | undefined;
  shutdown(): void;
  ref(): void;
  unref(): void;
  destroy(): void;
}

/** The raw functions of the addon (see native/binding). Internal: use the typed wrappers. */
export interface NativeBinding {
  readonly napiVersion: number;
  readonly TcpLoop: { new (onBatch: TcpBatchCallback, threaded: boolean): TcpLoopHandle; readonly slotSize: number };
  md5(data: Uint8Array, offset: number, length: number): Buffer;
  crc32(data: Uint8Array, offset: number, length: number): number;
  crc32c(data: Uint8Array, offset: number, length: number): number;
  xxh64(data: Uint8Array, offset: number, length: number, seed: bigint): bigint;
  md5Batch(data: Uint8Array, offsets: Uint32Array, lengths: Uint32Array, out: Uint8Array): number;
  crc32Batch(data: Uint8Array, offsets: Uint32Array, lengths: Uint32Array, out: Uint32Array): number;
  crc32cBatch(data: Uint8Array, offsets: Uint32Array, lengths: Uint32Array, out: Uint32Array): number;
  xxh64Batch(
    data: Uint8Array,
    offsets: Uint32Array,
    lengths: Uint32Array,
    out: BigUint64Array,
    seed: bigint,
  ): number;
}

const require = createRequire(import.meta.url);

/** The package's root folder: the nearest ancestor holding zserver's package.json. */
export function packageRoot(from: string = dirname(fileURLToPath(import.meta.url))): string {
  let dir = from;
  for (;;) {
    const manifest = join(dir, 'package.json');
    if (existsSync(manifest)) {
      try {
        if ((JSON.parse(readFileSync(manifest, 'utf8')) as { name?: string }).name === 'zserver') return dir;
      } catch {
        // Not JSON; keep walking up.
      }
    }
    const parent = dirname(dir);
    if (parent === dir) throw new NativeLoadError(`zserver: no package.json of zserver above ${from}`);
    dir = parent;
  }
}

/** The paths the loader tries, in order, for a package rooted at `root`. */
export function nativeCandidates(root: string): string[] {
  const list = [
    join(root, 'prebuilds', `${process.platform}-${process.arch}`, 'zserver.node'),
    join(root, 'build', 'Release', 'zserver.node'),
  ];
  const forced = process.env.ZSERVER_NATIVE;
  if (forced) list.unshift(forced);
  return list;
}

/**
 * Loads the first candidate that exists and loads. Throws `NativeLoadError`
 * listing what was tried and how to build from source when none does.
 */
export function loadNative(candidates: string[]): NativeBinding {
  const tried: string[] = [];
  for (const file of candidates) {
    if (!existsSync(file)) {
      tried.push(`${file} (missing)`);
      continue;
    }
    try {
      return require(file) as NativeBinding;
    } catch (err) {
      tried.push(`${file} (${(err as Error).message.split('\n')[0]})`);
    }
  }
  throw new NativeLoadError(
    `zserver: no native addon for ${process.platform}-${process.arch} on Node ${process.version} ` +
      `(Node-API ${process.versions.napi}). Tried:\n  ${tried.join('\n  ')}\n` +
      `Build it from source with \`npm rebuild zserver\` (in the package folder: \`npm run build:native\`); ` +
      `that needs cmake and a C++17 compiler.`,
  );
}

let binding: NativeBinding | undefined;

/** The loaded addon, loaded on first use. */
export function native(): NativeBinding {
  binding ??= loadNative(nativeCandidates(packageRoot()));
  return binding;
}
