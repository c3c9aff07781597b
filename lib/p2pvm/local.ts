/**
 * The connection life cycle as THIS side drives it: opening a virtual
 * connection (CONNECT, then ACCEPT or REFUSE or a timeout) and closing one
 * (CLOSE at once, or after its queued frames when graceful). What the other
 * side drives is in connections.ts.
 */
import { describe } from '../bytes.js';
import { ConnectError, ConnectionClosedError, TimeoutError } from '../errors.js';
import type { ConnectOptions, Endpoint, PeerId } from '../transport/types.js';
import type { P2pvmEndpoint } from './endpoint.js';
import type { TunnelLink } from './link.js';
import { checkAddress, checkPort } from './listen-table.js';
import { closedEvent } from './connections.js';
import { dropReceive } from './receive.js';
import { dropSend } from './send.js';
import { State } from './table.js';
import { CloseCode, entryKey, formatAddress, Packet } from './wire.js';

/**
 * Opens a virtual connection to (host, port) of the other side. Fails at once
 * with ConnectError when no tunnel's remote table has that entry.
 */
export function connectVirtual(ep: P2pvmEndpoint, endpoint: Endpoint, options: ConnectOptions): Promise<PeerId> {
  const address = checkAddress(endpoint);
  const port = checkPort(endpoint.port, false);
  const timeout = options.timeout ?? 10_000;
  if (typeof timeout !== 'number' || !(timeout > 0) || timeout > 2 ** 31 - 1) {
    throw new RangeError(`options.timeout must be a number of ms from 1 to 2147483647, got ${describe(timeout)}`);
  }
  const key = entryKey(address, port);
  let link: TunnelLink | undefined;
  let entry = -1;
  for (const l of ep.links) {
    if (l?.phase !== 'open') continue;
    const e = l.remoteIndex.get(key);
    if (e !== undefined) {
      link = l;
      entry = e;
      break;
    }
  }
  if (!link) {
    return Promise.reject(new ConnectError(`p2pvm: nothing listens on [${formatAddress(address)}]:${port} on the other side (connection refused)`));
  }
  const i = ep.table.size < ep.options.maxConnections ? ep.table.alloc() : -1;
  if (i < 0) return Promise.reject(new ConnectError(`p2pvm: too many virtual connections (${ep.table.size})`));
  const t = ep.table;
  t.state[i] = State.Connecting;
  t.tunnel[i] = link.index;
  t.entry[i] = entry;
  link.writeConnect(t.wireId(i), address, port);
  return new Promise<PeerId>((resolve, reject) => {
    const timer = setTimeout(() => connectTimedOut(ep, i), timeout);
    ep.pending.set(i, { resolve, reject, timer });
  });
}

/** Closes a virtual connection: queued frames go out first unless abort is true. */
export function closeVirtual(ep: P2pvmEndpoint, peer: PeerId, abort: boolean): void {
  const t = ep.table;
  if (!(peer >= 0 && peer < t.top)) return;
  const st = t.state[peer];
  const link = ep.links[t.tunnel[peer]!];
  if (st === State.Connecting) {
    const p = ep.pending.get(peer)!;
    ep.pending.delete(peer);
    clearTimeout(p.timer);
    t.state[peer] = State.Abandoned;
    p.reject(new ConnectionClosedError('p2pvm: closed while connecting'));
    return;
  }
  if (st !== State.Open || !link) return;
  dropReceive(ep, link, peer);
  ep.userData.delete(peer);
  if (abort || !ep.queues.has(peer)) {
    dropSend(ep, link, peer);
    t.state[peer] = State.Closing;
    link.writeCode(Packet.Close, t.remote[peer]!, abort ? CloseCode.Abort : CloseCode.Graceful);
  } else {
    t.state[peer] = State.Draining;
  }
  closedEvent(ep, link, peer, 'local', abort ? 'closed by this side (abort)' : 'closed by this side');
}

function connectTimedOut(ep: P2pvmEndpoint, i: number): void {
  const p = ep.pending.get(i);
  if (!p) return;
  ep.pending.delete(i);
  ep.table.state[i] = State.Abandoned;
  p.reject(new TimeoutError('p2pvm: connect timed out'));
}
