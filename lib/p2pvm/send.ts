/**
 * The send side of a virtual connection. A frame that fits in one fragment,
 * on a connection with nothing queued and enough credit, is written straight
 * into the tunnel's packing buffer. When nothing else waits on the tunnel, a
 * bigger frame's first fragments are written at once too (as far as credit and
 * the physical peer allow). Everything else is copied into the connection's
 * queue, which the round-robin scheduler (link.ts) drains one fragment per
 * visit; send() returns false above the connection's high-water mark or the
 * tunnel's pool limit, and 'drain' follows. Above its high-water mark an
 * accepted connection is also given no more credit (its sender is held back)
 * until it drains. A send that would take the connection's queue past
 * maxSendQueue, or the tunnel's past twice poolLimit, queues nothing and
 * closes the connection with 'slow-consumer' (from a microtask).
 */
import { describe } from '../bytes.js';
import { ConnectionClosedError } from '../errors.js';
import { checkFrame } from '../transport/common.js';
import type { PeerId } from '../transport/types.js';
import type { P2pvmEndpoint } from './endpoint.js';
import type { TunnelLink } from './link.js';
import { grantNow } from './receive.js';
import { Flag, State } from './table.js';

/** Transport.send() of an endpoint. */
export function sendFrame(ep: P2pvmEndpoint, peer: PeerId, kind: number, flags: number, payload: Uint8Array): boolean {
  const t = ep.table;
  if (!(peer >= 0 && peer < t.top) || t.state[peer] !== State.Open) {
    throw new ConnectionClosedError(`p2pvm: virtual connection ${describe(peer)} is not open`);
  }
  checkFrame(kind, flags, payload);
  if (t.flags[peer]! & Flag.Doomed) return false;
  const link = ep.links[t.tunnel[peer]!]!;
  const len = payload.length;
  const kf = kind | (flags << 6);
  let q = ep.queues.get(peer);
  const queued = q?.bytes ?? 0;
  const capped = (t.flags[peer]! & Flag.Accepted) !== 0 || ep.capConnected;
  if (capped && queued + len > ep.options.maxSendQueue) {
    doom(ep, link, peer, `${queued} bytes waited and ${len} more would pass maxSendQueue ${ep.options.maxSendQueue} (the other side grants no credit)`);
    return false;
  }
  // A frame that can be written through now (credit, nothing queued, tunnel free) adds nothing to
  // the tunnel's queue; any other would, and the tunnel's queue is capped at twice poolLimit.
  if (link.queuedBytes + len > 2 * ep.options.poolLimit && (q !== undefined || t.credit[peer]! < len || link.congested)) {
    doom(ep, link, peer, `the tunnel's ${link.queuedBytes} queued bytes and ${len} more would pass twice poolLimit ${ep.options.poolLimit}`);
    return false;
  }
  ep.counters.framesOut++;
  ep.counters.bytesOut += len;
  let sent = 0;
  // Write through when the tunnel is free, and also while the physical peer pushes back as long as
  // nothing else waits here and the overcommit stays within one high-water mark: the physical
  // transport queues it anyway, so this spares a copy without letting one sender starve others.
  const hwm = ep.options.highWaterMark;
  if (q === undefined && (!link.congested || (link.ringEmpty && link.overcommit < hwm))) {
    if (len <= link.fragment) {
      if (t.credit[peer]! >= len) {
        t.credit[peer]! -= len;
        if (link.congested) link.overcommit += len;
        link.writeData(t.remote[peer]!, kf, payload, 0, len, true);
        return writtenThrough(link, peer);
      }
    } else if (link.ringEmpty && t.credit[peer]! > 0 && (link.reserved === 0 || link.reserved + len <= link.peer.reassemblyCap)) {
      // A frame of several fragments: write as far as credit and the overcommit allow, queue (copy)
      // only the rest.
      link.reserved += len;
      t.flags[peer]! |= Flag.Reserved;
      while (sent < len && t.credit[peer]! > 0 && (!link.congested || link.overcommit < hwm)) {
        const n = Math.min(len - sent, link.fragment, t.credit[peer]!);
        if (link.congested) link.overcommit += n;
        link.writeData(t.remote[peer]!, kf, payload, sent, n, sent + n === len, sent === 0 && n < len ? len : -1);
        t.credit[peer]! -= n;
        sent += n;
      }
      if (sent === len) {
        link.release(peer, len);
        return writtenThrough(link, peer);
      }
    }
  }
  const rest = len - sent;
  const copy = Buffer.allocUnsafe(rest);
  copy.set(sent === 0 ? payload : payload.subarray(sent));
  if (q === undefined) {
    q = { frames: [], kf: [], head: 0, offset: 0, base: sent, bytes: 0 };
    ep.queues.set(peer, q);
  }
  q.frames.push(copy);
  q.kf.push(kf);
  q.bytes += rest;
  link.queuedBytes += rest;
  if (!(t.flags[peer]! & (Flag.InRing | Flag.Parked))) link.ringPush(peer);
  link.schedule();
  if (q.bytes > ep.options.highWaterMark || link.queuedBytes > ep.options.poolLimit) {
    if (!(t.flags[peer]! & Flag.WantsDrain)) {
      t.flags[peer]! |= Flag.WantsDrain;
      link.drainWaiters.push(peer);
    }
    // Held back: an accepted connection gets no credit while its own replies pile up.
    if (q.bytes > ep.options.highWaterMark && t.flags[peer]! & Flag.Accepted) t.flags[peer]! |= Flag.Backpressured;
    return false;
  }
  return true;
}

/** Marks `peer` doomed (send() returns false from now on) and closes it with 'slow-consumer' from a microtask. */
function doom(ep: P2pvmEndpoint, link: TunnelLink, peer: PeerId, detail: string): void {
  const t = ep.table;
  t.flags[peer]! |= Flag.Doomed;
  queueMicrotask(() => {
    if (t.state[peer] !== State.Open || !(t.flags[peer]! & Flag.Doomed) || link.phase !== 'open') return;
    ep.abortConnection(link, peer, 'slow-consumer', detail);
  });
}

/** Clears a connection's backpressure hold once its queue drained; it is granted its credit again. */
export function unblock(ep: P2pvmEndpoint, i: number): void {
  const t = ep.table;
  if (!(t.flags[i]! & Flag.Backpressured)) return;
  t.flags[i]! &= ~Flag.Backpressured;
  grantNow(ep, i);
}

/** Forgets a connection's queued frames (it closed) and its reassembly reservation. */
export function dropSend(ep: P2pvmEndpoint, link: TunnelLink, i: number): void {
  const q = ep.queues.get(i);
  const t = ep.table;
  if (t.flags[i]! & Flag.Reserved) link.release(i, q!.base + q!.frames[q!.head]!.length);
  link.forget(i);
  if (q) {
    link.queuedBytes -= q.bytes;
    ep.queues.delete(i);
  }
}

/** send()'s answer after writing a whole frame through: false once the overcommit is used up. */
function writtenThrough(link: TunnelLink, peer: PeerId): boolean {
  if (!link.congested || link.overcommit < link.ep.options.highWaterMark) return true;
  const t = link.ep.table;
  if (!(t.flags[peer]! & Flag.WantsDrain)) {
    t.flags[peer]! |= Flag.WantsDrain;
    link.drainWaiters.push(peer);
  }
  return false;
}
