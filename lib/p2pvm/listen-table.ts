/**
 * The local listen table of a P2PVM endpoint — the (IPv6 address, port)
 * pairs this side accepts virtual connections on, pushed to the other side of
 * every tunnel — and the argument checks of an endpoint address.
 */
import { describe } from '../bytes.js';
import { ConnectError } from '../errors.js';
import type { Admission } from '../transport/admission.js';
import type { Endpoint, PeerInfo } from '../transport/types.js';
import { entryKey, formatAddress, parseAddress } from './wire.js';

/** One (address, port) this side listens on; entries are never reused, so an index stays valid. */
export interface ListenEntry {
  address: Buffer;
  host: string;
  port: number;
  /** The frozen PeerInfo shared by every connection accepted on this entry, made on first use. */
  info?: Readonly<PeerInfo>;
  /** Admission of connections to this entry (listen()'s ListenOptions). */
  admission?: Admission;
}

const FIRST_EPHEMERAL = 49152;

/** See the file comment. */
export class ListenTable {
  readonly entries: ListenEntry[] = [];
  readonly #index = new Map<string, number>();
  #nextPort = FIRST_EPHEMERAL;

  /** Adds an entry (port 0 picks a free port from 49152 up); ConnectError when it exists. */
  add(address: Buffer, port: number): ListenEntry {
    if (port === 0) {
      for (let n = 0; n < 16384 && this.#index.has(entryKey(address, this.#nextPort)); n++) this.#bump();
      port = this.#nextPort;
      this.#bump();
    }
    const key = entryKey(address, port);
    if (this.#index.has(key)) throw new ConnectError(`p2pvm: [${formatAddress(address)}]:${port} is already listening`);
    const entry = { address, host: formatAddress(address), port };
    this.entries.push(entry);
    this.#index.set(key, this.entries.length - 1);
    return entry;
  }

  /** Removes an entry; false when it was not there. */
  remove(address: Buffer, port: number): boolean {
    return this.#index.delete(entryKey(address, port));
  }

  /** The index of a listened entry, or undefined. */
  lookup(address: Uint8Array, port: number): number | undefined {
    return this.#index.get(entryKey(address, port));
  }

  /** The entries listened on now. */
  *live(): IterableIterator<ListenEntry> {
    for (const e of this.#index.values()) yield this.entries[e]!;
  }

  #bump(): void {
    this.#nextPort = this.#nextPort >= 65535 ? FIRST_EPHEMERAL : this.#nextPort + 1;
  }
}

/** The 16 address bytes of `endpoint.host`, or TypeError/RangeError naming the bad field. */
export function checkAddress(endpoint: Endpoint): Buffer {
  if (typeof endpoint !== 'object' || endpoint === null) throw new TypeError(`endpoint must be { host, port }, got ${describe(endpoint)}`);
  if (typeof endpoint.host !== 'string') throw new TypeError(`endpoint.host must be an IPv6 or IPv4 address string, got ${describe(endpoint.host)}`);
  const a = parseAddress(endpoint.host);
  if (!a) throw new RangeError(`endpoint.host must be an IPv6 or IPv4 address, got "${endpoint.host.slice(0, 60)}"`);
  return a;
}

/** `endpoint.port` checked to be 1–65535 (0 allowed when `allowZero`). */
export function checkPort(port: unknown, allowZero: boolean): number {
  const min = allowZero ? 0 : 1;
  if (typeof port !== 'number' || !Number.isInteger(port) || port < min || port > 65535) {
    throw new RangeError(`endpoint.port must be an integer from ${min} to 65535, got ${describe(port)}`);
  }
  return port;
}
