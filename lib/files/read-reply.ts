/**
 * The answer of `files.read` built around the file's bytes: a Reply payload (docs/protocol.md,
 * "Messages": id u32, then a DataFrame of one Bytes value) whose buffer is allocated once, with
 * room for the header in front, so the file is read straight into the bytes that are sent.
 *
 * Encoding the answer as a DataFrame instead would copy every chunk into the framework's shared
 * reply writer, which grows to the next power of two above the message (a 512 KiB buffer for a
 * 256 KiB chunk). The framework takes an already encoded reply as it takes a worker thread's
 * (EncodedReply, with four bytes of room for the request id at the start).
 */
import { EncodedReply } from '../framework/worker-hook.js';
import { DataType } from '../protocol/dataframe-values.js';

/** Room for the header: id (4), value count (1), type (1), byte length (a varint of at most 5). */
const HEAD_ROOM = 11;

/** A `files.read` answer under construction: read `got` bytes into `buf` at `at`, then encoded(). */
export class ReadReply {
  /** The whole buffer; the file's bytes go from HEAD_ROOM on. */
  readonly buf: Buffer;
  /** Bytes of the file read so far. */
  got = 0;

  /** An answer for at most `max` bytes of the file. */
  constructor(max: number) {
    this.buf = Buffer.allocUnsafe(HEAD_ROOM + max);
  }

  /** Where the next bytes of the file go in `buf`. */
  get at(): number {
    return HEAD_ROOM + this.got;
  }

  /**
   * The Reply payload of the `got` bytes read: the header is written right in front of them
   * (its length varint takes 1 to 5 bytes, so the payload starts 0 to 4 bytes into `buf`).
   */
  encoded(): EncodedReply {
    const head = replyHead(this.got);
    const start = HEAD_ROOM - head.length;
    this.buf.set(head, start);
    return new EncodedReply(this.buf.subarray(start, HEAD_ROOM + this.got));
  }
}

/**
 * The bytes of a `files.read` answer in front of `length` bytes of the file: room for the id
 * (zero; the framework writes it), a DataFrame of one value (count 1, type Bytes, length varint).
 * Also what the native sendfile path sends before the file range.
 */
export function replyHead(length: number): Uint8Array {
  const head = [0, 0, 0, 0, 1, DataType.Bytes];
  let v = length;
  while (v >= 0x80) {
    head.push((v & 0x7f) | 0x80);
    v >>>= 7;
  }
  head.push(v);
  return Uint8Array.from(head);
}
