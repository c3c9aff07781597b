/**
 * Per-connection state of the browser channel, and the two ordered queues a
 * connection keeps because WebCrypto is asynchronous:
 *
 *   send()  -> out: [record promise, record promise, ...] -> awaited in order -> transport.send()
 *   frames  -> in:  [record promise, ..., stop]           -> awaited in order -> 'frames' (plaintext)
 *
 * Every record's WebCrypto call starts at once (so they run side by side),
 * and each queue is drained a whole run at a time: one await per run of
 * records, not per record.
 */
import type { CloseReason, PeerId, PeerInfo } from '../../transport/types.js';
import type { BrowserFrameBatch } from '../../transport/browser-ws.js';
import type { RecordKeys } from './records.js';
import type { WebClientHandshake } from './handshake.js';

/** Where a connection is: handshake steps, open, or going. */
export type WebPhase = 'starting' | 'hello-sent' | 'finishing' | 'open' | 'closing' | 'closed';

/** Why a connection stops, queued behind the records that came before it. */
export interface Stop {
  reason: CloseReason;
  detail: string;
  alert: number | undefined;
}

/** One queued record: its frame kind and flags, and the WebCrypto result (or a stop, in the incoming queue). */
export interface Entry {
  kind: number;
  flags: number;
  /** Plaintext bytes of an outgoing record (for backpressure). */
  bytes: number;
  result: Promise<Uint8Array> | undefined;
  stop: Stop | undefined;
}

/** The state of one connection of a WebSecureChannel. */
export interface WebPeer {
  id: PeerId;
  info: PeerInfo;
  phase: WebPhase;
  handshake: WebClientHandshake | undefined;
  sealer: RecordKeys | undefined;
  opener: RecordKeys | undefined;
  sentBytes: number;
  sentRecords: number;
  keyBorn: number;
  out: Entry[];
  /** The run of the outgoing queue in progress (resolved when the queue is empty). */
  outPump: Promise<void> | undefined;
  /** Plaintext bytes queued for encryption and not yet handed to the transport. */
  queued: number;
  highWaterMark: number;
  innerFull: boolean;
  wantsDrain: boolean;
  closeRequested: boolean;
  in: Entry[];
  inPump: Promise<void> | undefined;
  /** A stop is queued: later frames are ignored. */
  inStopped: boolean;
  timer: ReturnType<typeof setTimeout> | undefined;
  ready: { resolve: (id: PeerId) => void; reject: (e: Error) => void } | undefined;
  fingerprint: string | undefined;
  opened: boolean;
  userData: unknown;
  closeReason: CloseReason | undefined;
  closeDetail: string | undefined;
  /** The transport below closed the connection: [reason, detail], reported once the incoming queue is delivered. */
  innerClosed: [CloseReason, string] | undefined;
}

/** A new connection's state. */
export function newPeer(id: PeerId, info: PeerInfo): WebPeer {
  return {
    id,
    info,
    phase: 'starting',
    handshake: undefined,
    sealer: undefined,
    opener: undefined,
    sentBytes: 0,
    sentRecords: 0,
    keyBorn: 0,
    out: [],
    outPump: undefined,
    queued: 0,
    highWaterMark: 1024 * 1024,
    innerFull: false,
    wantsDrain: false,
    closeRequested: false,
    in: [],
    inPump: undefined,
    inStopped: false,
    timer: undefined,
    ready: undefined,
    fingerprint: undefined,
    opened: false,
    userData: undefined,
    closeReason: undefined,
    closeDetail: undefined,
    innerClosed: undefined,
  };
}

/**
 * The opened records of one run as a FrameBatch of one peer. A single
 * record is handed up as it is; several are joined into one buffer.
 */
export function plaintextBatch(peer: PeerId, kinds: number[], flags: number[], plaintexts: Uint8Array[]): BrowserFrameBatch {
  const n = plaintexts.length;
  const offsets = new Uint32Array(n);
  const lengths = new Uint32Array(n);
  let total = 0;
  for (let i = 0; i < n; i++) {
    offsets[i] = total;
    lengths[i] = plaintexts[i]!.length;
    total += lengths[i]!;
  }
  let data = plaintexts[0]!;
  if (n > 1) {
    data = new Uint8Array(total);
    for (let i = 0; i < n; i++) data.set(plaintexts[i]!, offsets[i]!);
  }
  return { count: n, peers: new Uint32Array(n).fill(peer), kinds: Uint8Array.from(kinds), flags: Uint8Array.from(flags), offsets, lengths, data };
}
