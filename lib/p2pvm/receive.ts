/**
 * The receive side of a virtual connection: DATA, DATA_MORE and DATA_START
 * packets become frames. A whole frame is delivered without copying (the
 * FrameBatch entry points into the physical batch); a frame in several
 * fragments is reassembled into a buffer that grows with the fragments that
 * arrived (never allocated at the declared length up front) and delivered in a
 * batch of its own, after the frames before it. Credit goes back once a batch
 * has been delivered (grantCredits), except to connections this side does not
 * read (paused, or held back by their own send queue: flags NO_CREDIT), which
 * get theirs when they are read again (grantNow).
 */
import type { P2pvmEndpoint } from './endpoint.js';
import type { FrameBatch } from '../transport/types.js';
import type { TunnelLink } from './link.js';
import { NO_CREDIT, State } from './table.js';
import { Packet } from './wire.js';
import { abortOversize, own } from './connections.js';

/**
 * One DATA (last = true), DATA_MORE, or DATA_START (total = the frame's length,
 * otherwise -1) packet.
 */
export function onData(ep: P2pvmEndpoint, link: TunnelLink, dst: number, kf: number, d: Buffer, off: number, len: number, last: boolean, total: number): void {
  const i = own(ep, link, dst);
  if (i < 0) return;
  const t = ep.table;
  const st = t.state[i];
  if (st === State.Draining || st === State.Closing) return; // closed here; the other side has not seen CLOSE yet
  if (st !== State.Open) return link.fail(`data for connection ${dst} that is not open`);
  // Credit goes back after the batch was delivered (grantCredits), so a sender that ignores
  // credit overruns the window within one batch and is caught here.
  const owed = t.owed[i]! + len;
  if (owed > ep.options.window) return link.fail(`credit overrun on connection ${dst} (${owed} > ${ep.options.window})`);
  const half = ep.options.window >>> 1;
  if (owed >= half && owed - len < half) ep.creditDue.push(i);
  t.owed[i] = owed;
  let p = ep.partials.get(i);
  if (total >= 0) {
    if (p !== undefined) return link.fail(`DATA_START on connection ${dst} while a frame is still incomplete`);
    if (total <= len) return link.fail(`DATA_START on connection ${dst} declares ${total} bytes but carries ${len}`);
    if (total > ep.options.maxFrameSize) return abortOversize(ep, link, i, total);
    link.rxPartialBytes += total;
    link.rxPartialCount++;
    if (link.rxPartialBytes > ep.options.reassemblyLimit && link.rxPartialCount > 1) {
      return link.fail(`partly received frames exceed the reassembly limit of ${ep.options.reassemblyLimit} bytes`);
    }
    // The declared total is a claim: room for what came (and as much again), grown as more comes.
    p = { buf: Buffer.allocUnsafe(Math.min(total, Math.max(FIRST_PARTIAL, 2 * len))), filled: len, total, kf, since: Date.now() };
    d.copy(p.buf, 0, off, off + len);
    ep.partials.set(i, p);
    ep.watchPartials();
    return;
  }
  if (p === undefined) {
    if (last) return ep.rx.refer(i, kf & 63, kf >>> 6, off, len);
    return link.fail(`DATA_MORE on connection ${dst} without DATA_START`);
  }
  if (p.kf !== kf) return link.fail(`fragment of connection ${dst} changed kind or flags mid-frame`);
  const filled = p.filled + len;
  if (last ? filled !== p.total : filled >= p.total) {
    return link.fail(`fragments of connection ${dst} do not add up to the declared ${p.total} bytes`);
  }
  if (filled > p.buf.length) {
    const grown = Buffer.allocUnsafe(Math.min(p.total, Math.max(filled, 2 * p.buf.length)));
    p.buf.copy(grown, 0, 0, p.filled);
    p.buf = grown;
  }
  d.copy(p.buf, p.filled, off, off + len);
  p.filled = filled;
  if (!last) return;
  dropReceive(ep, link, i);
  ep.rxFlush();
  ep.counters.framesIn++;
  ep.counters.bytesIn += filled;
  ep.emit('frames', {
    count: 1,
    peers: new Uint32Array([i]),
    kinds: new Uint8Array([kf & 63]),
    flags: new Uint8Array([kf >>> 6]),
    offsets: new Uint32Array(1),
    lengths: new Uint32Array([filled]),
    data: p.buf,
  });
}

/** Grants credit for what the application consumed in this batch (docs/p2pvm.md, "Credits"). */
export function grantCredits(ep: P2pvmEndpoint): void {
  const t = ep.table;
  const half = ep.options.window >>> 1;
  const due = ep.creditDue;
  ep.creditDue = [];
  for (const i of due) {
    const owed = t.owed[i]!;
    if (owed < half || (t.state[i] !== State.Open && t.state[i] !== State.Draining)) continue;
    if (t.flags[i]! & NO_CREDIT) continue; // granted by grantNow() once it is read again
    const link = ep.links[t.tunnel[i]!];
    if (link?.phase !== 'open') continue;
    link.writePair(Packet.Credit, t.remote[i]!, owed);
    t.owed[i] = 0;
  }
}

/** Grants connection `i` the credit it is owed, now (it is read again after a pause or backpressure). */
export function grantNow(ep: P2pvmEndpoint, i: number): void {
  const t = ep.table;
  const owed = t.owed[i]!;
  if (owed === 0 || t.flags[i]! & NO_CREDIT || (t.state[i] !== State.Open && t.state[i] !== State.Draining)) return;
  const link = ep.links[t.tunnel[i]!];
  if (link?.phase !== 'open') return;
  link.writePair(Packet.Credit, t.remote[i]!, owed);
  t.owed[i] = 0;
}

/** Forgets a connection's partly received frame (it closed). */
export function dropReceive(ep: P2pvmEndpoint, link: TunnelLink, i: number): void {
  const p = ep.partials.get(i);
  if (!p) return;
  ep.partials.delete(i);
  link.rxPartialBytes -= p.total;
  link.rxPartialCount--;
}

/** First buffer of a frame in several fragments, unless the frame or its first fragment says less/more. */
const FIRST_PARTIAL = 64 * 1024;

