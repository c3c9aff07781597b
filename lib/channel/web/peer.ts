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
import { HandshakeError } from '../../errors.js';
import { joinedBatch, type FrameBatchWriter } from '../../transport/batch-builder.js';
import { FrameFlag } from '../../transport/types.js';
import { AlertCode, CLOSE_KIND, describeAlert, REKEY_KIND, SecureKind, TAG_BYTES } from '../wire.js';
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
  /** The server's close record authenticated: the connection's end is clean, not a truncation. */
  closeReceived: boolean;
  /** Resolves shutdown()'s wait for this peer's close. */
  closed: (() => void) | undefined;
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
    closeReceived: false,
    closed: undefined,
  };
}

/** Rejects the connect() of a peer still handshaking with HandshakeError(message); false when it was not. */
export function rejectReady(p: WebPeer, message: string): boolean {
  const ready = p.ready;
  if (!ready) return false;
  p.ready = undefined;
  ready.reject(new HandshakeError(message));
  return true;
}

/**
 * What a frame on an open connection is, as the Node channel judges it:
 * undefined for a record to open (kinds 8-63 or a bare-tag rekey record,
 * Encrypted, at most maxRecordSize + 16 bytes, or a bare-tag close record),
 * else the Stop it causes.
 */
export function classifyFrame(kind: number, flags: number, payload: Uint8Array, maxRecordSize: number): Stop | undefined {
  const max = maxRecordSize + TAG_BYTES;
  if (kind === CLOSE_KIND && flags === FrameFlag.Encrypted && payload.length === TAG_BYTES) return undefined;
  if ((flags & FrameFlag.Encrypted) !== 0 && (kind >= 8 || kind === REKEY_KIND) && payload.length <= max) {
    if (kind !== REKEY_KIND || payload.length === TAG_BYTES) return undefined;
    return { reason: 'auth', detail: `ZS_AUTH: secure channel: record of kind ${kind} failed authentication (a rekey record carries only its tag)`, alert: AlertCode.Record };
  }
  if (kind === SecureKind.Alert && flags === 0) return { reason: 'auth', detail: `secure channel: ${describeAlert(payload)}`, alert: undefined };
  const why =
    flags & FrameFlag.Encrypted && payload.length > max
      ? `record of ${payload.length} bytes exceeds maxRecordSize ${maxRecordSize} + ${TAG_BYTES}`
      : `unexpected frame kind ${kind} with flags ${flags} on an established channel`;
  return { reason: 'auth', detail: `secure channel: ${why}`, alert: AlertCode.Record };
}

/**
 * The outcome of one run of the incoming queue: the plaintexts up to the
 * first record that failed or the first stop (as one batch), the rekey
 * records among them, and why the connection stops, if it does.
 */
export function openedRun(
  peer: PeerId,
  run: readonly Entry[],
  results: readonly PromiseSettledResult<Uint8Array>[],
): { batch: FrameBatchWriter | undefined; rekeys: number; stop: Stop | undefined } {
  const kinds: number[] = [];
  const flags: number[] = [];
  const plaintexts: Uint8Array[] = [];
  let rekeys = 0;
  let stop: Stop | undefined;
  for (let k = 0; k < run.length && !stop; k++) {
    const e = run[k]!;
    const r = results[k]!;
    if (e.stop) stop = e.stop;
    else if (r.status === 'rejected') {
      stop = { reason: 'auth', detail: `ZS_AUTH: secure channel: record of kind ${e.kind} failed authentication (altered, replayed, reordered or truncated)`, alert: AlertCode.Record };
    } else if (e.kind === REKEY_KIND) rekeys++;
    else if (e.kind === CLOSE_KIND) stop = { reason: 'remote', detail: 'the peer closed the secure channel (authenticated close)', alert: undefined };
    else {
      kinds.push(e.kind);
      flags.push(e.flags);
      plaintexts.push(r.value);
    }
  }
  return { batch: plaintexts.length > 0 ? joinedBatch(new Uint32Array(plaintexts.length).fill(peer), kinds, flags, plaintexts) : undefined, rekeys, stop };
}

