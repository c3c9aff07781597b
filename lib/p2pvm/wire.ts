/**
 * The bytes of P2PVM (docs/p2pvm.md): the one frame kind that carries it, the
 * packet types, the packet header, and IPv6 endpoint encoding.
 *
 * Every P2PVM packet travels inside a physical frame of kind P2PVM_FRAME_KIND;
 * one physical frame holds one or more whole packets back to back, so many
 * small packets (a million round trips) cost few physical frames. A packet is
 * a 4-byte header — u32 LE whose low 8 bits are the type and high 24 bits the
 * body length — followed by the body.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { TUNNEL_FRAME_KIND } from '../protocol/messages.js';

/** The physical frame kind that carries P2PVM packets (the framework owns 8–62). */
export const P2PVM_FRAME_KIND = TUNNEL_FRAME_KIND;

/** Protocol version sent in HELLO/WELCOME. */
export const P2PVM_VERSION = 1;

/** Bytes of a packet header. */
export const HEADER = 4;

/** Largest packet body: the header's length field is 24 bits. */
export const MAX_BODY = 0xffffff;

/** Packet types (docs/p2pvm.md, "Packets"). */
export const Packet = {
  Hello: 1,
  Welcome: 2,
  Reject: 3,
  Listen: 4,
  Unlisten: 5,
  Connect: 6,
  Accept: 7,
  Refuse: 8,
  Data: 9,
  DataMore: 10,
  Credit: 11,
  Close: 12,
  CloseAck: 13,
  Echo: 14,
  EchoReply: 15,
  Bye: 16,
  Error: 17,
  DataStart: 18,
} as const;

/** Body bytes of the fixed-size packets; -1 for variable-size ones. */
export const BODY_SIZE: readonly number[] = (() => {
  const s = new Array<number>(19).fill(-1);
  s[Packet.Listen] = 18;
  s[Packet.Unlisten] = 18;
  s[Packet.Connect] = 22;
  s[Packet.Accept] = 8;
  s[Packet.Refuse] = 5;
  s[Packet.Credit] = 8;
  s[Packet.Close] = 5;
  s[Packet.CloseAck] = 4;
  s[Packet.Echo] = 8;
  s[Packet.EchoReply] = 8;
  s[Packet.Bye] = 1;
  return s;
})();

/** Bytes of HELLO/WELCOME before the token: version u16, reserved u16, window, maxFragment, reassemblyCap (u32 each). */
export const HELLO_FIXED = 16;

/** Bytes of a DATA/DATA_MORE body before the payload: destination id u32, kind-and-flags u8. */
export const DATA_PREFIX = 5;

/** Bytes of a DATA_START body before the payload: destination id u32, kind-and-flags u8, frame length u32. */
export const START_PREFIX = 9;

/** REFUSE codes. */
export const RefuseCode = { NotListening: 1, Full: 2, ShuttingDown: 3, Refused: 4 } as const;

/** CLOSE codes. */
export const CloseCode = { Graceful: 0, Abort: 1, Oversize: 2 } as const;

/** Virtual connection ids on the wire: slot index in the low 22 bits, generation in the high 10. */
export const INDEX_BITS = 22;
export const MAX_INDEX = (1 << INDEX_BITS) - 1;
export const GEN_MASK = 0x3ff;

/**
 * Parses an IPv6 (or IPv4, mapped to ::ffff:a.b.c.d) address into 16 bytes.
 * Returns null when the text is not an address.
 */
export function parseAddress(host: string): Buffer | null {
  let text = host;
  if (text.startsWith('[') && text.endsWith(']')) text = text.slice(1, -1);
  const out = Buffer.alloc(16);
  if (isIPv4(text)) {
    out[10] = 0xff;
    out[11] = 0xff;
    text.split('.').forEach((p, i) => (out[12 + i] = Number(p)));
    return out;
  }
  const zone = text.indexOf('%');
  if (zone >= 0) text = text.slice(0, zone);
  if (!isIPv6(text)) return null;
  // Expand an embedded IPv4 tail into two hex groups, then the '::' gap.
  const v4 = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (v4) {
    const b = v4.slice(1).map(Number);
    text = text.slice(0, v4.index) + `${((b[0]! << 8) | b[1]!).toString(16)}:${((b[2]! << 8) | b[3]!).toString(16)}`;
  }
  const [head, tail] = text.includes('::') ? text.split('::') : [text, undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...new Array<string>(8 - h.length - t.length).fill('0'), ...t];
  if (groups.length !== 8) return null;
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2));
  return out;
}

/** Formats 16 address bytes as canonical IPv6 text (RFC 5952: lower case, longest zero run as '::'). */
export function formatAddress(bytes: Uint8Array): string {
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((bytes[i]! << 8) | bytes[i + 1]!);
  let bestAt = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestAt = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestAt < 0) return hex.join(':');
  return `${hex.slice(0, bestAt).join(':')}::${hex.slice(bestAt + bestLen).join(':')}`;
}

/** The key of a listen entry: 16 address bytes as hex, a slash, the port. */
export function entryKey(address: Uint8Array, port: number): string {
  return `${Buffer.from(address.buffer, address.byteOffset, 16).toString('hex')}/${port}`;
}
