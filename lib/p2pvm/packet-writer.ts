/**
 * LinkWriter: the outgoing half of a P2PVM tunnel link. It packs many packets
 * (docs/p2pvm.md, "Packets") into one buffer and sends them as ONE physical
 * frame of kind P2PVM_FRAME_KIND when the buffer fills or the link's turn ends;
 * a big DATA fragment goes out as a second part of the same frame with
 * `sendv`, uncopied. TunnelLink (link.ts) extends it with the scheduler,
 * keepalive and the receiving side.
 */
import type { PeerId } from '../transport/types.js';
import type { P2pvmEndpoint } from './endpoint.js';
import { DATA_PREFIX, HEADER, HELLO_FIXED, P2PVM_FRAME_KIND, P2PVM_VERSION, Packet, START_PREFIX } from './wire.js';

/** What one side of a tunnel declares in HELLO/WELCOME. */
export interface LinkParams {
  /** Credit, in bytes, granted to each new virtual connection for data sent TO this side. */
  window: number;
  /** Largest fragment payload this side accepts. */
  maxFragment: number;
  /** Bytes of partly received frames this side keeps per tunnel. */
  reassemblyCap: number;
}

export type LinkPhase = 'hello-sent' | 'hello-wait' | 'accepting' | 'open' | 'closed';

/**
 * Fragments at least this long go to a physical transport with sendv() as a separate part
 * instead of being copied into the packing buffer; smaller ones are cheaper to pack.
 */
const GATHER_MIN = 4096;
const MAX_TEXT = 1024;

/** The packet writer of one tunnel link; see the file comment. */
export abstract class LinkWriter {
  phase: LinkPhase;
  /** Set when the physical peer pushed back (send returned false); cleared on its 'drain'. */
  congested = false;
  packetsOut = 0;
  physicalFramesOut = 0;
  lastTx = Date.now();
  #out: Buffer;
  #outLen = 0;

  constructor(
    readonly ep: P2pvmEndpoint,
    readonly physPeer: PeerId,
    phase: LinkPhase,
  ) {
    this.phase = phase;
    this.#out = Buffer.allocUnsafe(Math.max(ep.options.batchBytes, ep.options.maxFragmentSize + 64, 8192));
  }

  /** Makes sure the packed packets leave at the end of this turn. */
  abstract schedule(): void;

  /** The physical transport threw on send: the link is closed. */
  protected abstract sendFailed(err: Error): void;

  /** Starts a packet of `type` with a body of `body` bytes; returns the body offset in the out buffer. */
  #begin(type: number, body: number): number {
    if (this.#outLen + HEADER + body > this.#out.length) this.flushOut();
    const at = this.#outLen;
    this.#out.writeUInt32LE(((body << 8) | type) >>> 0, at);
    this.#outLen = at + HEADER + body;
    this.packetsOut++;
    this.schedule();
    return at + HEADER;
  }

  /** Sends the packed packets as one physical frame. */
  flushOut(): void {
    this.#flush(null);
  }

  /** flushOut(), with `tail` (the payload of the last packet's header) appended by the transport. */
  #flush(tail: Uint8Array | null): void {
    if (this.#outLen === 0 || this.phase === 'closed') {
      this.#outLen = 0;
      return;
    }
    const chunk = this.#out.subarray(0, this.#outLen);
    this.#outLen = 0;
    this.physicalFramesOut++;
    this.lastTx = Date.now();
    let ok: boolean;
    try {
      const t = this.ep.transport;
      ok = tail === null ? t.send(this.physPeer, P2PVM_FRAME_KIND, 0, chunk) : t.sendv!(this.physPeer, P2PVM_FRAME_KIND, 0, [chunk, tail]);
    } catch (err) {
      this.sendFailed(err as Error);
      return;
    }
    if (!ok) this.congested = true;
  }

  writeHandshake(type: number, own: LinkParams, token: Uint8Array): void {
    const at = this.#begin(type, HELLO_FIXED + token.length);
    const o = this.#out;
    o.writeUInt16LE(P2PVM_VERSION, at);
    o.writeUInt16LE(0, at + 2);
    o.writeUInt32LE(own.window, at + 4);
    o.writeUInt32LE(own.maxFragment, at + 8);
    o.writeUInt32LE(own.reassemblyCap, at + 12);
    o.set(token, at + HELLO_FIXED);
  }

  writeText(type: number, text: string): void {
    const bytes = Buffer.from(text.slice(0, MAX_TEXT));
    this.#out.set(bytes, this.#begin(type, bytes.length));
  }

  writeEntry(type: number, address: Uint8Array, port: number): void {
    const at = this.#begin(type, 18);
    this.#out.set(address, at);
    this.#out.writeUInt16LE(port, at + 16);
  }

  writeConnect(src: number, address: Uint8Array, port: number): void {
    const at = this.#begin(Packet.Connect, 22);
    this.#out.writeUInt32LE(src, at);
    this.#out.set(address, at + 4);
    this.#out.writeUInt16LE(port, at + 20);
  }

  /** ACCEPT (dst, src) and CREDIT (dst, bytes): two u32s. */
  writePair(type: number, a: number, b: number): void {
    const at = this.#begin(type, 8);
    this.#out.writeUInt32LE(a, at);
    this.#out.writeUInt32LE(b, at + 4);
  }

  /** REFUSE and CLOSE: dst u32, code u8. */
  writeCode(type: number, dst: number, code: number): void {
    const at = this.#begin(type, 5);
    this.#out.writeUInt32LE(dst, at);
    this.#out[at + 4] = code;
  }

  writeCloseAck(dst: number): void {
    this.#out.writeUInt32LE(dst, this.#begin(Packet.CloseAck, 4));
  }

  writeEcho(type: number, token: number): void {
    const at = this.#begin(type, 8);
    this.#out.writeUInt32LE(token >>> 0, at);
    this.#out.writeUInt32LE(0, at + 4);
  }

  writeBye(): void {
    this.#out[this.#begin(Packet.Bye, 1)] = 0;
  }

  /** DATA (a whole frame, or the last fragment), DATA_MORE (a middle fragment), DATA_START (the first of several; total = frame length). */
  writeData(dst: number, kf: number, src: Uint8Array, offset: number, length: number, last: boolean, total = -1): void {
    const start = total >= 0;
    const prefix = start ? START_PREFIX : DATA_PREFIX;
    const type = start ? Packet.DataStart : last ? Packet.Data : Packet.DataMore;
    const bytes = length === src.length ? src : src.subarray(offset, offset + length);
    if (length >= GATHER_MIN && this.ep.transport.sendv !== undefined) {
      // A big fragment is not copied into the packing buffer: the packets packed so far and this
      // packet's header go out with the payload as a second part, which the physical transport
      // copies once into its frame (one copy per byte fewer than packing it here).
      if (this.#outLen + HEADER + prefix + length > this.#out.length) this.flushOut();
      const at = this.#outLen;
      const o = this.#out;
      o.writeUInt32LE((((prefix + length) << 8) | type) >>> 0, at);
      o.writeUInt32LE(dst, at + HEADER);
      o[at + HEADER + 4] = kf;
      if (start) o.writeUInt32LE(total, at + HEADER + 5);
      this.#outLen = at + HEADER + prefix;
      this.packetsOut++;
      this.#flush(bytes);
      return;
    }
    const at = this.#begin(type, prefix + length);
    const o = this.#out;
    o.writeUInt32LE(dst, at);
    o[at + 4] = kf;
    if (start) o.writeUInt32LE(total, at + 5);
    if (length > 0) o.set(bytes, at + prefix);
  }
}
