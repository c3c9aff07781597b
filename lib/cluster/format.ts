/**
 * The wire format of the cluster bus: subject names, the binary layouts of fan-out, directed
 * send and call messages, and the limits' defaults. docs/cluster.md ("Subjects and messages")
 * is the same text for people; a node in another language can be written from it. Every
 * number is big-endian. Nothing here does I/O.
 */

/** UTF-8 bytes of `s` (this service runs in Node only, so Buffer does it). */
function utf8Encode(s: string): Uint8Array {
  return Buffer.from(s, 'utf8');
}

function utf8Decode(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.length).toString('utf8');
}

/** Version byte of every binary bus message; a node drops messages of another version. */
export const BUS_VERSION = 1;

/** Longest room name, in UTF-8 bytes. */
export const MAX_ROOM_NAME_BYTES = 128;
/** Longest node id, in UTF-8 bytes (it travels in one length byte). */
export const MAX_NODE_BYTES = 200;

/** Limits of one Server's cluster; docs/limits.md ("Cluster"). */
export interface ClusterLimits {
  /** Rooms one peer may be in at once; join() beyond fails with ZS_CLUSTER_LIMIT. Default 64. */
  maxRoomsPerPeer: number;
  /** Rooms with at least one local member in this process; join() of a new room beyond fails with ZS_CLUSTER_LIMIT. Default 10000. */
  maxRooms: number;
  /** Cross-process calls this process waits for at once; more fail at once with ZS_BUSY. Default 1024. */
  maxPendingCalls: number;
  /** Largest message this process puts on the bus, bytes (and never above the NATS server's max_payload); beyond: ZS_CLUSTER_LIMIT. Default 1 MiB. */
  maxBusMessage: number;
}

/** The limits' defaults (docs/limits.md, "Cluster"). */
export const defaultClusterLimits: Readonly<ClusterLimits> = Object.freeze({
  maxRoomsPerPeer: 64,
  maxRooms: 10_000,
  maxPendingCalls: 1024,
  maxBusMessage: 1024 * 1024,
});

/** Default ms between two presence heartbeats of a node. */
export const DEFAULT_PRESENCE_INTERVAL = 1000;
/** A node not heard from for this many heartbeat intervals is dropped from presence. */
export const PRESENCE_EXPIRY_INTERVALS = 3;
/** Changes of the online count are published at most this often, ms (coalesced). */
export const PRESENCE_COALESCE = 100;
/** Default ms a scatter-gather presence question waits for the nodes' answers. */
export const DEFAULT_ASK_TIMEOUT = 500;
/** Default ms of a cross-process call. */
export const DEFAULT_CALL_TIMEOUT = 10_000;

/**
 * A subject token for a room or node name: the name itself when it is made only of
 * [A-Za-z0-9_-] (readable subjects), otherwise `~` and the base64url of its UTF-8 bytes. A plain
 * token never starts with `~`, so the two forms cannot collide.
 */
export function subjectToken(name: string): string {
  return /^[A-Za-z0-9_-]+$/.test(name) ? name : `~${Buffer.from(name, 'utf8').toString('base64url')}`;
}

/** The subjects of group `group`. */
export function subjects(group: string): {
  all: string;
  presence: string;
  ask: string;
  room(name: string): string;
  node(node: string): string;
  call(node: string): string;
} {
  const p = `zs.cluster.${subjectToken(group)}`;
  return {
    all: `${p}.all`,
    presence: `${p}.presence`,
    ask: `${p}.ask`,
    room: (name) => `${p}.room.${subjectToken(name)}`,
    node: (node) => `${p}.node.${subjectToken(node)}`,
    call: (node) => `${p}.call.${subjectToken(node)}`,
  };
}

/** Fan-out message (`.all`, `.room.<r>`): version, kind, origin node, payload. */
export function encodeFanOut(kind: number, origin: Uint8Array, payload: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(3 + origin.length + payload.length);
  out[0] = BUS_VERSION;
  out[1] = kind;
  out[2] = origin.length;
  out.set(origin, 3);
  out.set(payload, 3 + origin.length);
  return out;
}

/** Decodes a fan-out message; null when it is not one of this version. The payload is a view of `data`. */
export function decodeFanOut(data: Uint8Array): { kind: number; origin: string; payload: Uint8Array } | null {
  if (data.length < 3 || data[0] !== BUS_VERSION) return null;
  const n = data[2]!;
  if (data.length < 3 + n) return null;
  return { kind: data[1]!, origin: utf8Decode(data.subarray(3, 3 + n)), payload: data.subarray(3 + n) };
}

/** Directed send (`.node.<n>`): version, kind, local peer id, payload. */
export function encodeDirect(kind: number, peer: number, payload: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(6 + payload.length);
  out[0] = BUS_VERSION;
  out[1] = kind;
  out.writeUInt32BE(peer, 2);
  out.set(payload, 6);
  return out;
}

/** Decodes a directed message; null when it is not one of this version. The payload is a view of `data`. */
export function decodeDirect(data: Uint8Array): { kind: number; peer: number; payload: Uint8Array } | null {
  if (data.length < 6 || data[0] !== BUS_VERSION) return null;
  const b = Buffer.from(data.buffer, data.byteOffset, data.length);
  return { kind: data[1]!, peer: b.readUInt32BE(2), payload: data.subarray(6) };
}

/** Complete-buffer payload of a fan-out or directed message of kind Buffer: name length, name, data. */
export function encodeNamedData(name: string, data: Uint8Array): Uint8Array {
  const nb = utf8Encode(name);
  const out = new Uint8Array(1 + nb.length + data.length);
  out[0] = nb.length;
  out.set(nb, 1);
  out.set(data, 1 + nb.length);
  return out;
}

/** Decodes a complete-buffer payload; null when it is too short. `data` is a view. */
export function decodeNamedData(payload: Uint8Array): { name: string; data: Uint8Array } | null {
  if (payload.length < 1 || payload.length < 1 + payload[0]!) return null;
  const n = payload[0]!;
  return { name: utf8Decode(payload.subarray(1, 1 + n)), data: payload.subarray(1 + n) };
}

/** Call request (`.call.<n>`): version, kind (8 console, 9 stream), peer id, timeout ms, name, body. */
export function encodeCall(kind: number, peer: number, timeout: number, name: Uint8Array, body: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(11 + name.length + body.length);
  out[0] = BUS_VERSION;
  out[1] = kind;
  out.writeUInt32BE(peer, 2);
  out.writeUInt32BE(Math.min(timeout, 0xffffffff), 6);
  out[10] = name.length;
  out.set(name, 11);
  out.set(body, 11 + name.length);
  return out;
}

/** Decodes a call request; null when it is not one of this version or too short. */
export function decodeCall(data: Uint8Array): { kind: number; peer: number; timeout: number; name: string; body: Uint8Array } | null {
  if (data.length < 11 || data[0] !== BUS_VERSION) return null;
  const b = Buffer.from(data.buffer, data.byteOffset, data.length);
  const n = data[10]!;
  if (data.length < 11 + n) return null;
  return { kind: data[1]!, peer: b.readUInt32BE(2), timeout: b.readUInt32BE(6), name: utf8Decode(data.subarray(11, 11 + n)), body: data.subarray(11 + n) };
}

/** The error of a call answer: code, message and (for a failure the peer reported) its remote code. */
export interface CallFailure {
  code: string;
  message: string;
  remoteCode?: string;
}

/** Call answer: status 0 and the body, or status 1 and a JSON CallFailure. */
export function encodeCallAnswer(body: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(1 + body.length);
  out[0] = 0;
  out.set(body, 1);
  return out;
}

/** A failed call's answer: status 1 and the JSON CallFailure. */
export function encodeCallFailure(failure: CallFailure): Buffer {
  return Buffer.concat([Buffer.from([1]), Buffer.from(JSON.stringify(failure), 'utf8')]);
}

/** Decodes a call answer; a malformed one reads as the failure ZS_CLUSTER_PROTOCOL. */
export function decodeCallAnswer(data: Uint8Array): { ok: true; body: Uint8Array } | { ok: false; failure: CallFailure } {
  if (data.length >= 1 && data[0] === 0) return { ok: true, body: data.subarray(1) };
  try {
    const f = JSON.parse(utf8Decode(data.subarray(1))) as CallFailure;
    if (typeof f.code === 'string' && typeof f.message === 'string') return { ok: false, failure: f };
  } catch {
    // fall through: a malformed answer is reported as such
  }
  return { ok: false, failure: { code: 'ZS_CLUSTER_PROTOCOL', message: 'malformed call answer on the cluster bus' } };
}

/** What one node publishes on `.presence` (JSON): its counts, or `bye` when it leaves. */
export interface PresenceMessage {
  v: 1;
  node: string;
  online: number;
  endpoints: Record<string, number>;
  /** ms until the next heartbeat at the latest. */
  interval: number;
  bye?: true;
}

/** A scatter-gather question on `.ask` (JSON): the room counts of every node, or of one room. */
export interface AskMessage {
  v: 1;
  rooms?: true;
  room?: string;
}

/** A node's answer to an AskMessage (JSON). */
export interface AskAnswer {
  v: 1;
  node: string;
  online: number;
  endpoints: Record<string, number>;
  /** Local member count of each asked room (only rooms with members). */
  rooms: Record<string, number>;
  /** The answer left the rooms out: they did not fit in maxBusMessage. */
  truncated?: true;
}

/** The UTF-8 JSON of a presence, ask or answer message. */
export function encodeJson(value: unknown): Uint8Array {
  return utf8Encode(JSON.stringify(value));
}

/** Parses a JSON bus message; null when it is not JSON or not of this version. */
export function decodeJson<T extends { v: number }>(data: Uint8Array): T | null {
  try {
    const v = JSON.parse(utf8Decode(data)) as T;
    return v !== null && typeof v === 'object' && v.v === BUS_VERSION ? v : null;
  } catch {
    return null;
  }
}
