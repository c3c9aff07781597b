/**
 * Record offload: the part of SecureChannel that hands a connection's record
 * keys to a transport that runs the pipeline's `seal` stage itself (it says
 * so with Transport.runsStages; NativeTcpTransport does it in its I/O loop,
 * native/core/io_secure.cc, and takes the keys with offloadRecords), and
 * takes the plaintext frames it then receives.
 *
 * The hand-over happens where no record from the peer can be in flight, so no
 * record is ever opened twice or by the wrong side: a server hands over before
 * it sends ServerHello (the client cannot seal anything before it has that), a
 * client before it sends ClientFinished (the server sends no record before it
 * has that). docs/security.md, "Offload to the transport", has the details.
 */
import type { FrameBatch, PeerId, Transport } from '../transport/types.js';
import { FrameFlag } from '../transport/types.js';
import { SUITE_IDS, type CipherSuite } from './aead.js';
import type { FrameBatchWriter } from '../transport/batch-builder.js';
import { MAX_RECORDS_PER_KEY, type ResolvedSecureOptions } from './options.js';

/**
 * Hands `peer`'s record keys (the traffic secrets it seals and opens with) to
 * `transport` when offload is on and the transport can take them. True when
 * the transport now seals and opens this peer's records.
 */
export function offloadRecords(
  transport: Transport,
  peer: PeerId,
  suite: CipherSuite,
  sealSecret: Uint8Array,
  openSecret: Uint8Array,
  o: ResolvedSecureOptions,
): boolean {
  if (!o.offload || transport.offloadRecords === undefined) return false;
  // The one capability question: a transport that does not run the seal stage is not handed keys.
  if (transport.runsStages?.({ compress: false, seal: true }).seal !== true) return false;
  return transport.offloadRecords(peer, {
    suite: SUITE_IDS[suite],
    sealSecret,
    openSecret,
    maxRecordSize: o.maxRecordSize,
    rekeyBytes: o.rekeyBytes,
    maxRecordsPerKey: MAX_RECORDS_PER_KEY,
    rekeyInterval: o.rekeyInterval,
  });
}

/**
 * True when `batch` has frames and every one is an application frame the transport
 * opened (`opened(peer)`: the peer is offloaded and established): the channel
 * then hands the batch up as it is, without copying a byte. Returns the
 * payload bytes in `bytes[0]`.
 */
export function allOpened(batch: FrameBatch, opened: (peer: PeerId) => boolean, bytes: [number]): boolean {
  const { count, peers, kinds, flags, lengths } = batch;
  if (count === 0) return false;
  let total = 0;
  for (let i = 0; i < count; i++) {
    if (kinds[i]! < 8 || flags[i]! & FrameFlag.Encrypted || !opened(peers[i]!)) return false;
    total += lengths[i]!;
  }
  bytes[0] = total;
  return true;
}

/**
 * A frame of an offloaded peer on an established channel: an application
 * frame (the transport opened and authenticated it) is copied into `out` and
 * true returned; anything else is for the channel's control path (false).
 */
export function takeOpened(out: FrameBatchWriter, peer: PeerId, kind: number, flags: number, payload: Uint8Array): boolean {
  if (kind < 8 || flags & FrameFlag.Encrypted) return false;
  out.add(peer, kind, flags, payload, 0, payload.length);
  return true;
}
