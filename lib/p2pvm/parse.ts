/**
 * The P2PVM packet parser: walks the packets of one physical frame, checks
 * every header and fixed body size before reading, checks that the packet is
 * valid in the tunnel's phase, and hands it to the connection life cycle
 * (connections.ts), the receive path (receive.ts) or the tunnel (endpoint).
 * Any violation fails the tunnel through link.fail(); nothing throws.
 */
import { onAccept, onClose, onCloseAck, onConnect, onCredit, onRefuse, onRemoteEntry } from './connections.js';
import type { LinkParams, TunnelLink } from './link.js';
import { onData } from './receive.js';
import { BODY_SIZE, DATA_PREFIX, HEADER, HELLO_FIXED, MAX_BODY, P2PVM_VERSION, Packet, START_PREFIX } from './wire.js';

/** Parses one physical frame's packets; stops at the first violation. */
export function parsePackets(link: TunnelLink, data: Buffer, offset: number, length: number): void {
  const end = offset + length;
  let off = offset;
  while (off < end) {
    if (end - off < HEADER) return link.fail('truncated packet header');
    const h = data.readUInt32LE(off);
    const type = h & 0xff;
    const body = h >>> 8;
    off += HEADER;
    if (body > end - off) return link.fail(`packet of type ${type} runs past the end of its frame`);
    if (type < Packet.Hello || type > Packet.DataStart) return link.fail(`unknown packet type ${type}`);
    const fixed = BODY_SIZE[type]!;
    if (fixed >= 0 && body !== fixed) return link.fail(`packet of type ${type} has ${body} body bytes, expected ${fixed}`);
    link.packetsIn++;
    packet(link, type, data, off, body);
    if (link.phase === 'closed') return;
    off += body;
  }
}

function packet(link: TunnelLink, type: number, d: Buffer, at: number, body: number): void {
  const ep = link.ep;
  if (link.phase !== 'open') {
    if (type === Packet.Hello && link.phase === 'hello-wait') return hello(link, d, at, body, true);
    if (type === Packet.Welcome && link.phase === 'hello-sent') return hello(link, d, at, body, false);
    if (type === Packet.Reject && link.phase === 'hello-sent') return ep.onReject(link, d.toString('utf8', at, at + body));
    return link.fail(`packet of type ${type} before the tunnel handshake completed`);
  }
  switch (type) {
    case Packet.Listen:
    case Packet.Unlisten:
      return onRemoteEntry(ep, link, type === Packet.Listen, d.subarray(at, at + 16), d.readUInt16LE(at + 16));
    case Packet.Connect:
      return onConnect(ep, link, d.readUInt32LE(at), d.subarray(at + 4, at + 20), d.readUInt16LE(at + 20));
    case Packet.Accept:
      return onAccept(ep, link, d.readUInt32LE(at), d.readUInt32LE(at + 4));
    case Packet.Refuse:
      return onRefuse(ep, link, d.readUInt32LE(at), d[at + 4]!);
    case Packet.Data:
    case Packet.DataMore:
      if (body < DATA_PREFIX) return link.fail('data packet shorter than its 5-byte prefix');
      if (body - DATA_PREFIX > ep.options.maxFragmentSize) {
        return link.fail(`oversize fragment of ${body - DATA_PREFIX} bytes (limit ${ep.options.maxFragmentSize})`);
      }
      return onData(ep, link, d.readUInt32LE(at), d[at + 4]!, d, at + DATA_PREFIX, body - DATA_PREFIX, type === Packet.Data, -1);
    case Packet.DataStart:
      if (body < START_PREFIX) return link.fail('DATA_START shorter than its 9-byte prefix');
      if (body - START_PREFIX > ep.options.maxFragmentSize) {
        return link.fail(`oversize fragment of ${body - START_PREFIX} bytes (limit ${ep.options.maxFragmentSize})`);
      }
      return onData(ep, link, d.readUInt32LE(at), d[at + 4]!, d, at + START_PREFIX, body - START_PREFIX, false, d.readUInt32LE(at + 5));
    case Packet.Credit:
      return onCredit(ep, link, d.readUInt32LE(at), d.readUInt32LE(at + 4));
    case Packet.Close:
      return onClose(ep, link, d.readUInt32LE(at), d[at + 4]!);
    case Packet.CloseAck:
      return onCloseAck(ep, link, d.readUInt32LE(at));
    case Packet.Echo:
      return link.writeEcho(Packet.EchoReply, d.readUInt32LE(at));
    case Packet.EchoReply: {
      const done = link.echoes.get(d.readUInt32LE(at));
      if (done) {
        link.echoes.delete(d.readUInt32LE(at));
        done(Date.now());
      }
      return;
    }
    case Packet.Bye:
      return ep.closeLink(link, 'remote', 'the other side closed the tunnel');
    case Packet.Error:
      return ep.closeLink(link, 'protocol', `the other side reported: ${d.toString('utf8', at, at + body)}`);
    default:
      return link.fail(`packet of type ${type} is not valid on an open tunnel`);
  }
}

function hello(link: TunnelLink, d: Buffer, at: number, body: number, isHello: boolean): void {
  if (body < HELLO_FIXED) return link.fail('handshake packet shorter than 16 bytes');
  const version = d.readUInt16LE(at);
  if (version !== P2PVM_VERSION) return link.fail(`unsupported protocol version ${version}`);
  const params: LinkParams = {
    window: d.readUInt32LE(at + 4),
    maxFragment: d.readUInt32LE(at + 8),
    reassemblyCap: d.readUInt32LE(at + 12),
  };
  if (params.maxFragment < 1 || params.maxFragment > MAX_BODY - DATA_PREFIX || params.window < params.maxFragment || params.window > 0x7fffffff) {
    return link.fail(`bad handshake parameters (window ${params.window}, maxFragment ${params.maxFragment})`);
  }
  if (isHello) link.ep.onHello(link, params, Buffer.from(d.subarray(at + HELLO_FIXED, at + body)));
  else link.ep.onWelcome(link, params);
}
