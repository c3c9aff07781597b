/**
 * The message codec of the command framework: the frame kinds 8–19 and the
 * bytes of each (docs/protocol.md, "Messages"). Encoders write into one
 * shared ByteWriter and return a view of it; the view is valid until the next
 * encode, which is enough because Transport.send() copies (or writes) the
 * payload before it returns. So sending a message allocates nothing once the
 * writer has grown to its working size.
 *
 *   request kinds carry  id u32 | name (u8 length, UTF-8) | body
 *   direct kinds carry   name | body            (no id: no reply)
 *   replies carry        id u32 | body          (the body's form follows the request's kind)
 */
import { ByteWriter } from './bytes-io.js';
import type { DataFrame } from './dataframe.js';
import { DecodeError } from '../errors.js';
import { utf8Encode } from '../platform.js';

/** Frame kinds of the framework's messages. */
/**
 * The frame kind of P2PVM tunnel packets (docs/p2pvm.md). A tunnel can share a
 * connection with the framework, so the framework ignores frames of this kind.
 */
export const TUNNEL_FRAME_KIND = 63;

export const MessageKind = {
  /** id, name, UTF-8 text; answered by Reply (text) or Error. */
  Console: 8,
  /** id, name, DataFrame; answered by Reply (DataFrame) or Error. */
  Stream: 9,
  /** name, UTF-8 text; never answered. */
  DirectConsole: 10,
  /** name, DataFrame; never answered. */
  DirectStream: 11,
  /** id, flags, name, total u32, first bytes; the rest follows in BufferMore. */
  Buffer: 12,
  /** id, further bytes of a complete buffer. */
  BufferMore: 13,
  /** id, name, total u64, info DataFrame: opens a big stream. */
  BigBegin: 14,
  /** id, bytes of a big stream (never more than the receiver granted). */
  BigChunk: 15,
  /** id, credit u32: the receiver allows that many more bytes of big stream `id`. */
  BigCredit: 16,
  /** id, UTF-8 reason: the sender gives up big stream `id`. */
  BigAbort: 17,
  /** id, body: the answer to request `id`. */
  Reply: 18,
  /** id, code (u8 length, ASCII), UTF-8 message: request `id` failed. */
  Error: 19,
} as const;

/** Bit 0 of a Buffer message's flags byte: the sender wants a Reply. */
export const BUFFER_WANTS_REPLY = 0x01;

/** Longest command name in bytes (the length is one byte). */
export const MAX_NAME_BYTES = 255;

const writer = new ByteWriter(64 * 1024);
const nameCache = new Map<string, Uint8Array>();

/** The UTF-8 bytes of a command name, checked (RangeError) and cached. */
export function nameBytes(name: string): Uint8Array {
  let b = nameCache.get(name);
  if (b !== undefined) return b;
  if (typeof name !== 'string' || name.length === 0) {
    throw new RangeError(`command name must be a non-empty string, got ${JSON.stringify(name)}`);
  }
  b = utf8Encode(name);
  if (b.length > MAX_NAME_BYTES) throw new RangeError(`command name must be at most ${MAX_NAME_BYTES} UTF-8 bytes, got ${b.length}`);
  if (nameCache.size < 4096) nameCache.set(name, b);
  return b;
}

function head(id: number, name: Uint8Array | null): ByteWriter {
  const w = writer;
  w.reset();
  if (id >= 0) w.u32(id);
  if (name !== null) {
    w.u8(name.length);
    w.raw(name);
  }
  return w;
}

/** Console or DirectConsole (id < 0) message. */
export function encodeConsole(id: number, name: Uint8Array, text: string): Uint8Array {
  const w = head(id, name);
  w.text(text);
  return w.bytes();
}

/** Stream or DirectStream (id < 0) message. */
export function encodeStream(id: number, name: Uint8Array, frame: DataFrame): Uint8Array {
  const w = head(id, name);
  frame.encodeTo(w);
  return w.bytes();
}

/** The first message of a complete buffer. */
export function encodeBufferBegin(id: number, flags: number, name: Uint8Array, total: number, first: Uint8Array): Uint8Array {
  const w = writer;
  w.reset();
  w.u32(id);
  w.u8(flags);
  w.u8(name.length);
  w.raw(name);
  w.u32(total);
  w.raw(first);
  return w.bytes();
}

/** BufferMore, BigChunk: id and raw bytes. */
export function encodeIdBytes(id: number, data: Uint8Array): Uint8Array {
  const w = head(id, null);
  w.raw(data);
  return w.bytes();
}

/** BigBegin. */
export function encodeBigBegin(id: number, name: Uint8Array, total: bigint, info: DataFrame): Uint8Array {
  const w = head(id, name);
  w.u64(total);
  info.encodeTo(w);
  return w.bytes();
}

/** BigCredit. */
export function encodeCredit(id: number, credit: number): Uint8Array {
  const w = head(id, null);
  w.u32(credit);
  return w.bytes();
}

/** BigAbort (and any id + text body). */
export function encodeIdText(id: number, text: string): Uint8Array {
  const w = head(id, null);
  w.text(text);
  return w.bytes();
}

/** Reply with a DataFrame body. */
export function encodeReplyFrame(id: number, frame: DataFrame): Uint8Array {
  const w = head(id, null);
  frame.encodeTo(w);
  return w.bytes();
}

/** Error reply. `code` is ASCII, at most 255 bytes. */
export function encodeError(id: number, code: string, message: string): Uint8Array {
  const w = head(id, null);
  const c = code.slice(0, 255);
  w.u8(c.length);
  for (let i = 0; i < c.length; i++) w.u8(c.charCodeAt(i) & 0xff); // latin1
  w.text(message);
  return w.bytes();
}

/** Throws the DecodeError of a message too short for its header. */
export function truncated(kind: number): never {
  throw new DecodeError('truncated', `message of kind ${kind} is shorter than its header`);
}
