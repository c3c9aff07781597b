/**
 * AES-256-GCM records of one direction on WebCrypto: the same bytes as the
 * native AeadContext (../aead.ts) for the suite WebCrypto has (it has no
 * ChaCha20-Poly1305).
 *
 *   key ‖ iv = HKDF-Expand(secret, "zs1 traffic", 44)
 *   nonce(n) = iv with its last 8 bytes XORed with n (big-endian)
 *   aad      = record length (u32 little-endian, tag included) ‖ kind | flags << 6
 *   next     = HKDF-Expand(secret, "zs1 rekey", 32)
 *
 * WebCrypto is asynchronous, but a record's sequence number (its nonce) is
 * taken when run() is called, so records are numbered in call order whatever
 * order WebCrypto finishes them in; the caller awaits them in that order.
 * The next key is derived ahead of time, so rekey() switches at once and
 * records after a rekey record start without waiting. Only when a second
 * rekey comes before that derivation is done are later records held (on a
 * copy of their bytes) behind a gate until it is.
 */
import { AuthError, ZsError } from '../../errors.js';
import { TAG_BYTES } from '../wire.js';
import { hkdfExpand, hmacKey, type Key, type Subtle } from './subtle.js';

/** One direction's key: the AES-GCM key, its IV, and the secret the next key comes from. */
interface TrafficKey {
  key: Key;
  iv: Uint8Array;
  secret: Key;
}

const noop = (): void => undefined;

async function trafficKey(subtle: Subtle, secret: Key, usage: 'encrypt' | 'decrypt'): Promise<TrafficKey> {
  const both = await hkdfExpand(subtle, secret, 'zs1 traffic', 44);
  try {
    const key = await subtle.importKey('raw', both.subarray(0, 32), { name: 'AES-GCM' }, false, [usage]);
    return { key, iv: both.slice(32, 44), secret };
  } finally {
    both.fill(0);
  }
}

async function followingKey(subtle: Subtle, current: TrafficKey, usage: 'encrypt' | 'decrypt'): Promise<TrafficKey> {
  const next = await hkdfExpand(subtle, current.secret, 'zs1 rekey', 32);
  try {
    return trafficKey(subtle, await hmacKey(subtle, next), usage);
  } finally {
    next.fill(0);
  }
}

/**
 * One direction of a connection: 'seal' encrypts records, 'open' decrypts
 * them. See the file comment for the ordering rules.
 */
export class RecordKeys {
  readonly direction: 'seal' | 'open';
  readonly #subtle: Subtle;
  readonly #usage: 'encrypt' | 'decrypt';
  #current: TrafficKey;
  #seq = 0;
  #next: TrafficKey | undefined;
  #nextPromise!: Promise<TrafficKey>;
  #gate: Promise<void> | undefined;
  readonly #aad = new Uint8Array(5);

  private constructor(subtle: Subtle, direction: 'seal' | 'open', current: TrafficKey) {
    this.#subtle = subtle;
    this.direction = direction;
    this.#usage = direction === 'seal' ? 'encrypt' : 'decrypt';
    this.#current = current;
    this.#prepareNext();
  }

  /** The keys of a direction from its 32-byte traffic secret (an HMAC key, as the handshake hands it over). */
  static async create(subtle: Subtle, direction: 'seal' | 'open', secret: Key): Promise<RecordKeys> {
    const current = await trafficKey(subtle, secret, direction === 'seal' ? 'encrypt' : 'decrypt');
    return new RecordKeys(subtle, direction, current);
  }

  /** Records started under the current key. */
  get sequence(): number {
    return this.#seq;
  }

  /**
   * Seals (or opens) the next record: `data` is the plaintext (or the record
   * as received), `kind` and `flags` those of its frame (flags as sent by the
   * caller for sealing, Encrypted is added; as received for opening). The
   * bytes of `data` are read before run() returns, so the caller may reuse
   * them. Opening rejects with AuthError when the record does not
   * authenticate.
   */
  run(kind: number, flags: number, data: Uint8Array): Promise<Uint8Array> {
    const out = this.#gate ? this.#gate.then(((copy) => () => this.#crypt(kind, flags, copy))(new Uint8Array(data))) : this.#crypt(kind, flags, data);
    out.catch(noop); // the caller observes it in order; one left behind by a closed connection must not go unhandled
    return out;
  }

  /** Moves the records started after this call to the next key (call it right after run() of a rekey record). */
  rekey(): void {
    if (!this.#gate && this.#next) {
      this.#switch();
      return;
    }
    const gate = (this.#gate ?? Promise.resolve()).then(() => this.#nextPromise).then(() => this.#switch());
    this.#gate = gate;
    gate.then(() => {
      if (this.#gate === gate) this.#gate = undefined;
    }, noop);
  }

  #prepareNext(): void {
    this.#next = undefined;
    this.#nextPromise = followingKey(this.#subtle, this.#current, this.#usage);
    this.#nextPromise.then((k) => (this.#next = k), noop);
  }

  #switch(): void {
    if (!this.#next) throw new ZsError('ZS_CRYPTO', 'secure channel: the next record key was not derived');
    this.#current = this.#next;
    this.#seq = 0;
    this.#prepareNext();
  }

  #crypt(kind: number, flags: number, data: Uint8Array): Promise<Uint8Array> {
    const seq = this.#seq++;
    const { key, iv } = this.#current;
    const nonce = iv.slice();
    const high = Math.floor(seq / 2 ** 32);
    for (let i = 0; i < 4; i++) {
      nonce[11 - i]! ^= (seq >>> (8 * i)) & 255;
      nonce[7 - i]! ^= (high >>> (8 * i)) & 255;
    }
    const sealing = this.direction === 'seal';
    const length = sealing ? data.length + TAG_BYTES : data.length;
    const aad = this.#aad;
    aad[0] = length & 255;
    aad[1] = (length >>> 8) & 255;
    aad[2] = (length >>> 16) & 255;
    aad[3] = length >>> 24;
    aad[4] = (kind & 0x3f) | (((sealing ? flags | 2 : flags) & 3) << 6);
    const params = { name: 'AES-GCM', iv: nonce, additionalData: aad, tagLength: 128 };
    if (sealing) return this.#subtle.encrypt(params, key, data).then((b) => new Uint8Array(b));
    if (data.length < TAG_BYTES) return Promise.reject(new AuthError(`record of ${data.length} bytes is shorter than its ${TAG_BYTES}-byte tag`));
    return this.#subtle.decrypt(params, key, data).then(
      (b) => new Uint8Array(b),
      () => {
        throw new AuthError(`record of kind ${kind} (sequence ${seq}) failed authentication`);
      },
    );
  }
}
