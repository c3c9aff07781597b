/**
 * The send side of a virtual connection. A frame that fits in one fragment,
 * on a connection with nothing queued and enough credit, is written straight
 * into the tunnel's packing buffer. When nothing else waits on the tunnel, a
 * bigger frame's first fragments are written at once too (as far as credit and
 * the physical peer allow). Everything else is copied into the connection's
 * queue, which the round-robin scheduler (link.ts) drains one fragment per
 * visit; send() returns false above the connection's high-water mark or the
 * tunnel's pool limit, and 'drain' follows.
 */
import { describe } from '../bytes.js';
import { ConnectionClosedError } from '../errors.js';
import { checkFrame } from '../transport/common.js';
import type { PeerId } from '../transport/types.js';
import type { P2pvmEndpoint } from './endpoint.js';
import type { TunnelLink } from './link.js';
import { Flag, State } from './table.js';

/** Transport.send() of an endpoint. */
export function sendFrame(ep: P2pvmEndpoint, peer: PeerId, kind: number, flags: number, payload: Uint8Array): boolean {
  const t = ep.table;
  if (!(peer >= 0 && peer < t.top) || t.state[peer] !== State.Open) {
    throw new ConnectionClosedError(`p2pvm: virtual connection ${describe(peer)} is not open`);
  }
  checkFrame(kind, flags, payload);
  const link = ep.links[t.tunnel[peer]!]!;
  const len = payload.length;
  const kf = kind | (flags << 6);
  ep.counters.framesOut++;
  ep.counters.bytesOut += len;
  let q = ep.queues.get(peer);
  let sent = 0;
  if (q === undefined && !link.congested) {
    if (len <= link.fragment) {
      if (t.credit[peer]! >= len) {
        t.credit[peer]! -= len;
        link.writeData(t.remote[peer]!, kf, payload, 0, len, true);
        return true;
      }
    } else if (link.ringEmpty && t.credit[peer]! > 0 && (link.reserved === 0 || link.reserved + len <= link.peer.reassemblyCap)) {
      // Nothing else waits on this tunnel: write fragments now, as far as credit and the
      // physical peer allow, and queue (copy) only the rest.
      link.reserved += len;
      t.flags[peer]! |= Flag.Reserved;
      while (sent < len && t.credit[peer]! > 0 && !link.congested) {
        const n = Math.min(len - sent, link.fragment, t.credit[peer]!);
        link.writeData(t.remote[peer]!, kf, payload, sent, n, sent + n === len, sent === 0 && n < len ? len : -1);
        t.credit[peer]! -= n;
        sent += n;
      }
      if (sent === len) {
        link.release(peer, len);
        return true;
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
    return false;
  }
  return true;
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
