/**
 * AEAD records in native code: one `AeadContext` seals (or opens) the records
 * of one direction of one connection with AES-256-GCM or ChaCha20-Poly1305,
 * through the OpenSSL that Node itself ships (native/core/aead.cc).
 *
 * A record is the payload of one frame: ciphertext then a 16-byte tag. Its
 * nonce is the direction's IV XOR the record's sequence number, and its
 * associated data is the frame header (length and kind/flags byte), so a
 * record that is altered, moved to another kind, replayed, dropped or
 * reordered fails to open. docs/security.md has the exact bytes.
 *
 * The batch forms seal or open many records of one peer in one native call;
 * a record of kind REKEY_KIND inside a batch switches the context to the next
 * key right after it, so a rekey never splits a batch.
 */
import { AuthError, ConnectionClosedError, ZsError } from '../errors.js';
import { native, type NativeAeadContext } from '../native.js';
import { checkBytes } from '../bytes.js';
import { SUITE_IDS, TAG_BYTES, type CipherSuite } from './wire.js';

export { REKEY_KIND, SUITE_IDS, suiteOf, TAG_BYTES, type CipherSuite } from './wire.js';

/** Keying material of an AeadContext: a 32-byte traffic secret, or a raw key and IV. */
export type AeadKeying = { secret: Uint8Array } | { key: Uint8Array; iv: Uint8Array };

function codeError(what: string, code: number): ZsError {
  const reason = code === -4 ? 'the sequence number or a length reached its limit' : 'OpenSSL reported a failure';
  return new ZsError('ZS_CRYPTO', `${what}: ${reason} (code ${code})`);
}

/**
 * One direction of a secure connection. Not for use by several connections:
 * its sequence number is the connection's. Every method except close() throws
 * once close() has been called.
 */
export class AeadContext {
  /** Which algorithm this context uses. */
  readonly suite: CipherSuite;
  /** 'seal' contexts encrypt, 'open' contexts decrypt. */
  readonly direction: 'seal' | 'open';
  #ctx: NativeAeadContext | undefined;

  constructor(suite: CipherSuite, direction: 'seal' | 'open', keying: AeadKeying) {
    const id = SUITE_IDS[suite];
    if (id === undefined) throw new RangeError(`suite must be 'aes-256-gcm' or 'chacha20-poly1305', got ${String(suite)}`);
    if (direction !== 'seal' && direction !== 'open') throw new RangeError(`direction must be 'seal' or 'open', got ${String(direction)}`);
    const N = native();
    if ('secret' in keying) {
      const secret = checkBytes(keying.secret, 'keying.secret');
      if (secret.length !== 32) throw new RangeError(`keying.secret must be 32 bytes, got ${secret.length}`);
      this.#ctx = new N.AeadContext(id, direction === 'seal', secret);
    } else {
      const key = checkBytes(keying.key, 'keying.key');
      const iv = checkBytes(keying.iv, 'keying.iv');
      if (key.length !== 32) throw new RangeError(`keying.key must be 32 bytes, got ${key.length}`);
      if (iv.length !== 12) throw new RangeError(`keying.iv must be 12 bytes, got ${iv.length}`);
      this.#ctx = new N.AeadContext(id, direction === 'seal', key, iv);
    }
    this.suite = suite;
    this.direction = direction;
  }

  #live(): NativeAeadContext {
    if (!this.#ctx) throw new ConnectionClosedError('AeadContext used after close()');
    return this.#ctx;
  }

  /** Records sealed or opened under the current key. */
  get sequence(): number {
    return this.#live().sequence();
  }

  /**
   * Seals `plaintext` as the payload of a frame of `kind` with `flags`
   * (FrameFlag bits; Encrypted is implied and added to the header). Writes
   * `plaintext.length + 16` bytes to `out` at `outOffset` (default: a new
   * Buffer) and returns the record.
   */
  seal(kind: number, flags: number, plaintext: Uint8Array, out?: Uint8Array, outOffset = 0): Uint8Array {
    const ctx = this.#live();
    const data = checkBytes(plaintext, 'plaintext');
    const dst = out ?? Buffer.allocUnsafe(data.length + TAG_BYTES);
    checkKind(kind, flags);
    if (outOffset < 0 || outOffset + data.length + TAG_BYTES > dst.length) throw new RangeError('out is too small for the record');
    const n = ctx.seal(kind, flags | 2, data, 0, data.length, dst, outOffset);
    if (n < 0) throw codeError('seal', n);
    return dst.subarray(outOffset, outOffset + n);
  }

  /**
   * Opens one record of a frame of `kind` with `flags` (as received, with
   * Encrypted set) into `out` (default: a new Buffer) and returns the
   * plaintext. Throws AuthError when the record does not authenticate (then
   * the sequence number does not move and nothing of the record is returned).
   */
  open(kind: number, flags: number, record: Uint8Array, out?: Uint8Array, outOffset = 0): Uint8Array {
    const ctx = this.#live();
    const data = checkBytes(record, 'record');
    checkKind(kind, flags);
    if (data.length < TAG_BYTES) throw new AuthError(`record of ${data.length} bytes is shorter than its ${TAG_BYTES}-byte tag`);
    const dst = out ?? Buffer.allocUnsafe(data.length - TAG_BYTES);
    if (outOffset < 0 || outOffset + data.length - TAG_BYTES > dst.length) throw new RangeError('out is too small for the plaintext');
    const n = ctx.open(kind, flags, data, 0, data.length, dst, outOffset);
    if (n === -1) throw new AuthError(`record of kind ${kind} (sequence ${ctx.sequence()}) failed authentication`);
    if (n < 0) throw codeError('open', n);
    return dst.subarray(outOffset, outOffset + n);
  }

  /**
   * Seals records `data[offsets[i] .. + lengths[i])` of frame `kinds[i]` with
   * `flags[i]` (Encrypted is added) into `out` at `outOffset`, back to back
   * (each 16 bytes longer than its plaintext). Returns the bytes written.
   */
  sealBatch(
    data: Uint8Array,
    offsets: Uint32Array,
    lengths: Uint32Array,
    kinds: Uint8Array,
    flags: Uint8Array,
    out: Uint8Array,
    outOffset = 0,
  ): number {
    const n = this.#live().sealRecords(data, offsets, lengths, kinds, flags, out, outOffset);
    if (n < 0) throw codeError('sealBatch', n);
    return n;
  }

  /**
   * Opens records laid out like the transport delivered them, writing the
   * plaintexts back to back into `out` at `outOffset`. Returns how many
   * opened: `offsets.length` when all did, else the index of the first record
   * that failed (its plaintext and everything after it are not written).
   */
  openBatch(
    data: Uint8Array,
    offsets: Uint32Array,
    lengths: Uint32Array,
    kinds: Uint8Array,
    flags: Uint8Array,
    out: Uint8Array,
    outOffset = 0,
  ): number {
    const n = this.#live().openRecords(data, offsets, lengths, kinds, flags, out, outOffset);
    if (n < 0) throw codeError('openBatch', n);
    return n;
  }

  /** Moves to the next key (only for contexts made from a traffic secret). */
  rekey(): void {
    const rc = this.#live().rekey();
    if (rc < 0) throw codeError('rekey', rc);
  }

  /** Frees the native context and wipes its keys; later calls throw. Calling close() again does nothing. */
  close(): void {
    this.#ctx?.close();
    this.#ctx = undefined;
  }
}

function checkKind(kind: number, flags: number): void {
  if (!Number.isInteger(kind) || kind < 0 || kind > 63) throw new RangeError(`kind must be an integer from 0 to 63, got ${String(kind)}`);
  if (!Number.isInteger(flags) || flags < 0 || flags > 3) throw new RangeError(`flags must be FrameFlag bits (0 to 3), got ${String(flags)}`);
}
