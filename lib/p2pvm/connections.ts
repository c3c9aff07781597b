/**
 * The connection life cycle as the other side drives it: one function per
 * packet type (CONNECT, ACCEPT, REFUSE, CREDIT, CLOSE, CLOSE_ACK, LISTEN and
 * UNLISTEN), each checking that the packet's connection id belongs to the
 * tunnel it came on and that the connection is in a state where the packet is
 * valid. Anything else is a protocol violation that fails the tunnel.
 */
import type { AcceptInfo, CloseReason } from '../transport/types.js';
import type { AdmitVerdict } from '../transport/admission.js';
import type { P2pvmEndpoint } from './endpoint.js';
import type { TunnelLink } from './link.js';
import { Flag, State } from './table.js';
import { CloseCode, entryKey, formatAddress, Packet, RefuseCode } from './wire.js';
import { ConnectError, ConnectionClosedError } from '../errors.js';
import { dropReceive } from './receive.js';
import { dropSend } from './send.js';

/** LISTEN (add) or UNLISTEN: the other side's listen table changed. */
export function onRemoteEntry(_ep: P2pvmEndpoint, link: TunnelLink, add: boolean, address: Buffer, port: number): void {
  const key = entryKey(address, port);
  if (!add) {
    link.remoteIndex.delete(key);
    return;
  }
  if (link.remoteIndex.has(key)) return;
  if (link.remoteEntries.length >= 65536) return link.fail('more than 65536 listen entries');
  link.remoteEntries.push({ address: Buffer.from(address), host: formatAddress(address), port });
  link.remoteIndex.set(key, link.remoteEntries.length - 1);
}

/**
 * CONNECT: accept into a new slot when the entry is listened on and its admission (listen()'s
 * ListenOptions) says yes, else REFUSE. While an async accept hook decides, nothing is allocated:
 * the other side cannot send data before ACCEPT, so there is nothing to hold.
 */
export function onConnect(ep: P2pvmEndpoint, link: TunnelLink, src: number, address: Buffer, port: number): void {
  const e = ep.listening.lookup(address, port);
  if (e === undefined) return link.writeCode(Packet.Refuse, src, RefuseCode.NotListening);
  if (ep.shut) return link.writeCode(Packet.Refuse, src, RefuseCode.ShuttingDown);
  const entry = ep.listening.entries[e]!;
  const admission = entry.admission;
  if (admission === undefined) return acceptConnect(ep, link, src, e);
  const info: AcceptInfo = { remoteAddress: link.remoteAddress, remotePort: 0, localAddress: entry.host, localPort: entry.port };
  const verdict = admission.admit(info);
  if (verdict === true) return acceptConnect(ep, link, src, e);
  if (typeof verdict === 'string') return refuseConnect(ep, link, src, verdict);
  void verdict.then((v: AdmitVerdict) => {
    if (link.phase !== 'open' || ep.shut) {
      if (v === true) admission.release(link.remoteAddress);
      if (link.phase === 'open') link.writeCode(Packet.Refuse, src, RefuseCode.ShuttingDown);
      return;
    }
    if (v === true) acceptConnect(ep, link, src, e);
    else refuseConnect(ep, link, src, v);
  });
}

function refuseConnect(ep: P2pvmEndpoint, link: TunnelLink, src: number, reason: Exclude<AdmitVerdict, true>): void {
  ep.counters.closed('refused');
  ep.refusals[reason]++;
  link.writeCode(Packet.Refuse, src, RefuseCode.Refused);
}

/** Takes a slot for an admitted CONNECT and answers ACCEPT (REFUSE when the table is full). */
function acceptConnect(ep: P2pvmEndpoint, link: TunnelLink, src: number, e: number): void {
  const t = ep.table;
  const i = t.size < ep.options.maxConnections ? t.alloc() : -1;
  if (i < 0) {
    ep.listening.entries[e]!.admission?.release(link.remoteAddress);
    return link.writeCode(Packet.Refuse, src, RefuseCode.Full);
  }
  t.state[i] = State.Open;
  t.flags[i] = Flag.Accepted;
  t.tunnel[i] = link.index;
  t.remote[i] = src;
  t.credit[i] = link.peer.window;
  t.entry[i] = e;
  link.writePair(Packet.Accept, src, t.wireId(i));
  ep.counters.connections++;
  ep.emit('open', i, ep.info(i));
}

/** ACCEPT: a connect of ours succeeded (or, if abandoned, is closed at once). */
export function onAccept(ep: P2pvmEndpoint, link: TunnelLink, dst: number, src: number): void {
  const i = own(ep, link, dst);
  if (i < 0) return;
  const t = ep.table;
  if (t.state[i] === State.Abandoned) {
    t.remote[i] = src;
    t.state[i] = State.Closing;
    return link.writeCode(Packet.Close, src, CloseCode.Graceful);
  }
  if (t.state[i] !== State.Connecting) return link.fail(`ACCEPT for connection ${dst} that is not connecting`);
  t.state[i] = State.Open;
  t.remote[i] = src;
  t.credit[i] = link.peer.window;
  const p = ep.pending.get(i)!;
  ep.pending.delete(i);
  clearTimeout(p.timer);
  ep.counters.connections++;
  ep.emit('open', i, ep.info(i));
  p.resolve(i);
}

/** REFUSE: a connect of ours failed. */
export function onRefuse(ep: P2pvmEndpoint, link: TunnelLink, dst: number, code: number): void {
  const i = own(ep, link, dst);
  if (i < 0) return;
  const t = ep.table;
  const st = t.state[i];
  if (st !== State.Connecting && st !== State.Abandoned) return link.fail(`REFUSE for connection ${dst} that is not connecting`);
  const entry = link.remoteEntries[t.entry[i]!];
  t.free(i);
  if (st === State.Abandoned) return;
  const p = ep.pending.get(i)!;
  ep.pending.delete(i);
  clearTimeout(p.timer);
  const why =
    code === RefuseCode.Full
      ? 'is full'
      : code === RefuseCode.ShuttingDown
        ? 'is shutting down'
        : code === RefuseCode.Refused
          ? 'did not admit it (connection caps or its accept hook)'
          : 'does not listen there';
  p.reject(new ConnectError(`p2pvm: connection to [${entry?.host}]:${entry?.port} refused: the other side ${why}`));
}

/** CREDIT: the other side consumed data; wake the connection in the scheduler. */
export function onCredit(ep: P2pvmEndpoint, link: TunnelLink, dst: number, bytes: number): void {
  const i = own(ep, link, dst);
  if (i < 0) return;
  const t = ep.table;
  const st = t.state[i];
  if (st === State.Closing) return;
  if (st !== State.Open && st !== State.Draining) return link.fail(`CREDIT for connection ${dst} that is not open`);
  const c = t.credit[i]! + bytes;
  if (c > 0x7fffffff) return link.fail(`credit of connection ${dst} overflows`);
  t.credit[i] = c;
  if (ep.queues.has(i) && !(t.flags[i]! & (Flag.InRing | Flag.Parked))) {
    link.ringPush(i);
    link.schedule();
  }
}

/** CLOSE: the other side closed a connection; acknowledge and free the slot. */
export function onClose(ep: P2pvmEndpoint, link: TunnelLink, dst: number, code: number): void {
  const i = own(ep, link, dst);
  if (i < 0) return;
  const t = ep.table;
  const st = t.state[i];
  if (st === State.Closing) return t.free(i); // both sides closed at once: each CLOSE acks the other
  if (st !== State.Open && st !== State.Draining) return link.fail(`CLOSE for connection ${dst} that is not open`);
  ep.rxFlush();
  dropReceive(ep, link, i);
  dropSend(ep, link, i);
  ep.userData.delete(i);
  link.writeCloseAck(t.remote[i]!);
  if (st === State.Draining) return t.free(i);
  const reason: CloseReason = code === CloseCode.Graceful ? 'remote' : code === CloseCode.Oversize ? 'oversize' : 'reset';
  closedEvent(ep, link, i, reason, code === CloseCode.Graceful ? 'the other side closed the connection' : `the other side aborted the connection (code ${code})`);
  t.free(i);
}

/**
 * An open connection closed: counts it, releases what it held (its admission, its pause count)
 * and emits 'close'. Called once per connection, where it leaves the open state, before the
 * slot is freed (the slot's flags and entry are still valid).
 */
export function closedEvent(ep: P2pvmEndpoint, link: TunnelLink, i: number, reason: CloseReason, detail: string): void {
  const t = ep.table;
  if (t.flags[i]! & Flag.Accepted) ep.listening.entries[t.entry[i]!]?.admission?.release(link.remoteAddress);
  ep.pauses.delete(i);
  ep.counters.closed(reason);
  ep.emit('close', i, reason, detail);
}

/** CLOSE_ACK: the other side will send nothing more for this slot; free it. */
export function onCloseAck(ep: P2pvmEndpoint, link: TunnelLink, dst: number): void {
  const i = own(ep, link, dst);
  if (i < 0) return;
  if (ep.table.state[i] !== State.Closing) return link.fail(`CLOSE_ACK for connection ${dst} that is not closing`);
  ep.table.free(i);
}

/** The slot of a wire id that belongs to `link`; fails the tunnel and returns -1 otherwise. */
export function own(ep: P2pvmEndpoint, link: TunnelLink, wire: number): number {
  const i = ep.table.lookup(wire);
  if (i >= 0 && ep.table.tunnel[i] === link.index) return i;
  link.fail(`unknown connection id ${wire}`);
  return -1;
}

/** Closes a connection whose incoming frame is bigger than maxFrameSize. */
export function abortOversize(ep: P2pvmEndpoint, link: TunnelLink, i: number, size: number): void {
  abortConnection(ep, link, i, 'oversize', `frame of ${size} bytes exceeds maxFrameSize ${ep.options.maxFrameSize}`);
}

/**
 * Closes open connection `i` at once with `reason` (a limit it hit): drops what it queued or
 * partly received, sends CLOSE (code oversize for 'oversize', abort otherwise) and emits 'close'.
 */
export function abortConnection(ep: P2pvmEndpoint, link: TunnelLink, i: number, reason: CloseReason, detail: string): void {
  const t = ep.table;
  if (t.state[i] !== State.Open) return;
  dropSend(ep, link, i);
  dropReceive(ep, link, i);
  ep.userData.delete(i);
  t.state[i] = State.Closing;
  link.writeCode(Packet.Close, t.remote[i]!, reason === 'oversize' ? CloseCode.Oversize : CloseCode.Abort);
  closedEvent(ep, link, i, reason, detail);
}

/**
 * The tunnel is gone: every connection it carried closes at once, with one reason. Pending
 * connects reject with ConnectionClosedError; open connections emit 'close'; the rest (draining,
 * closing, abandoned) are freed silently, since the application already saw them close.
 */
export function closeConnectionsOf(ep: P2pvmEndpoint, link: TunnelLink, reason: CloseReason, detail: string): void {
  const t = ep.table;
  for (let i = 0; i < t.top; i++) {
    const st = t.state[i];
    if (st === State.Free || t.tunnel[i] !== link.index) continue;
    ep.queues.delete(i);
    ep.partials.delete(i);
    ep.userData.delete(i);
    if (st === State.Open) closedEvent(ep, link, i, reason, detail);
    t.free(i);
    if (st === State.Connecting) {
      const p = ep.pending.get(i)!;
      ep.pending.delete(i);
      clearTimeout(p.timer);
      p.reject(new ConnectionClosedError(`p2pvm: ${detail}`));
    }
  }
}
