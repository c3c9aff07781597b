/**
 * The file service's sandbox: turns a name a peer sent into a path inside one root, or refuses it.
 *
 * A name is relative, '/'-separated, NFC-normalised; it may not be absolute, contain NUL, control
 * characters or backslashes, have empty, '.' or '..' segments, or name a partial upload's hidden
 * temporary file. After the lexical check, the real path of the parent directory must lie inside
 * the root's real path (so a directory symlink cannot lead out), and files are opened with
 * O_NOFOLLOW (so a symlink as the last component is refused rather than followed).
 */
import { constants as fsc } from 'node:fs';
import { lstat, mkdir, realpath } from 'node:fs/promises';
import { join, sep } from 'node:path';
import { FilesError } from '../errors.js';
import { PARTIAL_PREFIX } from './protocol.js';

/** Longest name accepted, in UTF-16 units (Linux PATH_MAX is 4096 bytes). */
export const MAX_NAME_LENGTH = 1024;
/** Longest segment in UTF-8 bytes (NAME_MAX on Linux). */
const MAX_SEGMENT_BYTES = 255;

/** O_NOFOLLOW where the platform has it (0 elsewhere: the realpath check still holds). */
export const O_NOFOLLOW = fsc.O_NOFOLLOW ?? 0;

function refuse(name: string, why: string): never {
  throw new FilesError('ZS_FILES_PATH', `refused name '${JSON.stringify(name.slice(0, 80)).slice(1, -1)}': ${why}`);
}

/**
 * The segments of a checked, NFC-normalised relative name; `''` (or `'.'`) is the root itself and
 * gives no segments only when `allowRoot` is set.
 */
export function checkName(name: unknown, allowRoot = false): string[] {
  if (typeof name !== 'string') throw new FilesError('ZS_FILES_PATH', `a name must be a string, got ${typeof name}`);
  if (name.length > MAX_NAME_LENGTH) refuse(name, `longer than ${MAX_NAME_LENGTH} characters`);
  if (name === '' || name === '.') {
    if (allowRoot) return [];
    refuse(name, 'names the root itself');
  }
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f\\]/.test(name)) refuse(name, 'contains NUL, a control character or a backslash');
  if (name.startsWith('/')) refuse(name, 'absolute paths are not allowed; names are relative to the root');
  const nfc = name.normalize('NFC');
  const segments = nfc.split('/');
  if (segments[segments.length - 1] === '' && segments.length > 1) segments.pop(); // 'dir/' names 'dir'
  for (const s of segments) {
    if (s === '' ) refuse(name, 'empty segment (//)');
    if (s === '.' || s === '..') refuse(name, `'${s}' segments are not allowed`);
    if (s.startsWith(PARTIAL_PREFIX)) refuse(name, `names starting with '${PARTIAL_PREFIX}' are reserved for partial uploads`);
    if (Buffer.byteLength(s) > MAX_SEGMENT_BYTES) refuse(name, `a segment is longer than ${MAX_SEGMENT_BYTES} bytes`);
  }
  return segments;
}

/** One sandbox root, as a real path (symlinks in the root's own path resolved once). */
export class SandboxRoot {
  /** The real path of the root. */
  readonly real: string;

  private constructor(real: string) {
    this.real = real;
  }

  /** Opens `dir` (created when `create` is set) as a sandbox root. */
  static async open(dir: string, create = false): Promise<SandboxRoot> {
    if (create) await mkdir(dir, { recursive: true });
    const real = await realpath(dir);
    return new SandboxRoot(real);
  }

  /** True when `p` is the root or inside it. */
  contains(p: string): boolean {
    return p === this.real || p.startsWith(this.real.endsWith(sep) ? this.real : this.real + sep);
  }

  /**
   * The absolute path of checked `segments`, after checking that its parent's real path lies in
   * the root (ZS_FILES_PATH if a symlink leads out, ZS_FILES_NOT_FOUND if the parent is missing).
   * The last component itself is not resolved: callers open it with O_NOFOLLOW or lstat it.
   */
  async resolve(segments: readonly string[]): Promise<string> {
    if (segments.length === 0) return this.real;
    const parent = join(this.real, ...segments.slice(0, -1));
    let parentReal: string;
    try {
      parentReal = await realpath(parent);
    } catch (err) {
      throw fsError(err, segments.slice(0, -1).join('/') || '.');
    }
    if (!this.contains(parentReal)) refuse(segments.join('/'), 'leads outside the root through a symlink');
    return join(parentReal, segments[segments.length - 1]!);
  }

  /** Like resolve(), and also refuses a last component that is a symlink (for stat, list, rmdir). */
  async resolveNoLink(segments: readonly string[]): Promise<string> {
    const p = await this.resolve(segments);
    if (segments.length === 0) return p;
    try {
      const st = await lstat(p);
      if (st.isSymbolicLink()) refuse(segments.join('/'), 'is a symlink; the file service does not follow them');
    } catch (err) {
      if (err instanceof FilesError) throw err;
      throw fsError(err, segments.join('/'));
    }
    return p;
  }
}

/** Turns a node:fs error into a FilesError that names the file (never the server's real path). */
export function fsError(err: unknown, name: string): FilesError {
  if (err instanceof FilesError) return err;
  const code = (err as NodeJS.ErrnoException)?.code;
  switch (code) {
    case 'ENOENT':
      return new FilesError('ZS_FILES_NOT_FOUND', `'${name}' does not exist`);
    case 'EEXIST':
    case 'ENOTEMPTY':
      return new FilesError('ZS_FILES_EXISTS', `'${name}' exists${code === 'ENOTEMPTY' ? ' and is a directory that is not empty' : ''}`);
    case 'ELOOP':
      return new FilesError('ZS_FILES_PATH', `'${name}' is a symlink; the file service does not follow them`);
    case 'EISDIR':
      return new FilesError('ZS_FILES_PATH', `'${name}' is a directory`);
    case 'ENOTDIR':
      return new FilesError('ZS_FILES_PATH', `a parent of '${name}' is not a directory`);
    case 'ENOSPC':
    case 'EDQUOT':
      return new FilesError('ZS_FILES_QUOTA', `no space left on the server's disk for '${name}'`);
    default:
      return new FilesError('ZS_FILES_IO', `file system error on '${name}': ${code ?? (err as Error)?.message ?? String(err)}`);
  }
}
