/**
 * The per-connection state of a SecureChannel (secure.ts) and the handshake
 * steps that take it from the first hello to an established channel: the
 * server checks ClientHello and queues it (handshake-queue.ts), answers it with
 * ServerHello when its turn comes (serverRespond) and checks ClientFinished, the
 * client checks ServerHello (and the server's pinned identity) and sends
 * ClientFinished. Each step installs the record keys where they belong (in
 * AEAD contexts here, or down in the transport with record offload,
 * offload.ts) and wipes the secrets. handshake.ts has the messages and the
 * key schedule; the channel keeps the timers, the alerts and the events.
 */
import { AuthError } from '../errors.js';
import { FrameFlag, type CloseReason, type PeerId, type PeerInfo, type Transport } from '../transport/types.js';
import { AeadContext, TAG_BYTES, type CipherSuite } from './aead.js';
import { AlertCode, ClientHandshake, HandshakeAlert, parseClientHello, SecureKind } from './handshake.js';
import type { HandshakeJob } from './handshake-queue.js';
import { offloadRecords } from './offload.js';
import type { ResolvedSecureOptions } from './options.js';

/** Where a connection stands, from its transport's open to its close. */
export type Phase = 'await-client-hello' | 'hello-queued' | 'hello-computing' | 'client-hello-sent' | 'await-finished' | 'open' | 'closing';

/** What a SecureChannel keeps per connection. */
export interface SecurePeer {
  phase: Phase;
  info: PeerInfo;
  client: ClientHandshake | undefined;
  sealer: AeadContext | undefined;
  opener: AeadContext | undefined;
  /** The transport below seals and opens this peer's records (offload.ts). */
  offloaded: boolean;
  sentBytes: number;
  sentRecords: number;
  keyBorn: number;
  timer: NodeJS.Timeout | undefined;
  ready: { resolve: (id: PeerId) => void; reject: (e: Error) => void } | undefined;
  remoteFingerprint: string | undefined;
  /** 'open' was emitted for this peer, so layers above must also see its 'close'. */
  opened: boolean;
  userData: unknown;
  closeReason: CloseReason | undefined;
  closeDetail: string | undefined;
  /** Server side: this accepted connection counts against maxHandshakes (until it opens or closes). */
  handshaking: boolean;
  /** Server side: the ClientHello (a copy) and the suite chosen, while it waits in the HandshakeQueue. */
  hello: Uint8Array | undefined;
  suite: CipherSuite | undefined;
  job: HandshakeJob | undefined;
  /** The peer's close record arrived: its transport's end is a clean close, not a truncation. */
  closeReceived: boolean;
  /** This side sent its close record: it sends nothing more. */
  closeSent: boolean;
  /** Resolves shutdown()'s wait for this peer's close. */
  closed: (() => void) | undefined;
}

/** The state of a connection its transport just opened (`info.accepted`: the server side). */
export function newSecurePeer(info: PeerInfo): SecurePeer {
  return {
    phase: info.accepted ? 'await-client-hello' : 'client-hello-sent',
    info,
    client: undefined,
    sealer: undefined,
    opener: undefined,
    offloaded: false,
    sentBytes: 0,
    sentRecords: 0,
    keyBorn: 0,
    timer: undefined,
    ready: undefined,
    remoteFingerprint: undefined,
    opened: false,
    userData: undefined,
    closeReason: undefined,
    closeDetail: undefined,
    handshaking: false,
    hello: undefined,
    suite: undefined,
    job: undefined,
    closeReceived: false,
    closeSent: false,
    closed: undefined,
  };
}

/**
 * Gives `p` its record keys: hands them to `transport` when record offload is
 * on and the transport takes them, else makes the AEAD contexts. Then wipes
 * both secrets.
 */
function takeKeys(
  transport: Transport,
  o: ResolvedSecureOptions,
  peer: PeerId,
  p: SecurePeer,
  suite: CipherSuite,
  sealSecret: Uint8Array,
  openSecret: Uint8Array,
): void {
  try {
    p.offloaded = offloadRecords(transport, peer, suite, sealSecret, openSecret, o);
    if (!p.offloaded) {
      p.sealer = new AeadContext(suite, 'seal', { secret: sealSecret });
      p.opener = new AeadContext(suite, 'open', { secret: openSecret });
    }
  } finally {
    sealSecret.fill(0);
    openSecret.fill(0);
  }
}

/**
 * The server's answer to a queued ClientHello, when its turn in the
 * HandshakeQueue comes: the key agreement and signature (one native call),
 * the record keys, then ServerHello. Throws HandshakeAlert when the client's
 * key is refused.
 */
export function serverRespond(transport: Transport, o: ResolvedSecureOptions, peer: PeerId, p: SecurePeer): void {
  const hello = p.hello!;
  p.hello = undefined;
  serverInstall(transport, o, peer, p, o.identity!.respond(hello, p.suite!));
}

/**
 * serverRespond() with the computation on the libuv thread pool (handshakeOffThread): `done` runs
 * on the JS thread once the keys are computed, with the result or the error; the caller checks
 * that the connection still waits for it and then calls serverInstall().
 */
export function serverRespondOffThread(
  o: ResolvedSecureOptions,
  p: SecurePeer,
  done: (err: Error | null, result?: { serverHello: Buffer; c2s: Buffer; s2c: Buffer }) => void,
): void {
  const hello = p.hello!;
  p.hello = undefined;
  o.identity!.respondAsync(hello, p.suite!, done);
}

/** Installs the record keys of a computed server handshake, then sends ServerHello. */
export function serverInstall(
  transport: Transport,
  o: ResolvedSecureOptions,
  peer: PeerId,
  p: SecurePeer,
  result: { serverHello: Buffer; c2s: Buffer; s2c: Buffer },
): void {
  // Before ServerHello goes out: no record of the client can exist yet.
  takeKeys(transport, o, peer, p, p.suite!, result.s2c, result.c2s);
  p.phase = 'await-finished';
  transport.send(peer, SecureKind.ServerHello, 0, result.serverHello);
}

/**
 * One handshake frame (neither a transport ping nor an alert) of a connection
 * that is not open yet: checks it against `p.phase`, moves `p` on and sends
 * the next handshake message through `transport`. True when the channel is
 * now established (the caller emits 'open'). Throws HandshakeAlert, or another
 * error, when the frame is unexpected or does not check out.
 */
export function handshakeStep(
  transport: Transport,
  o: ResolvedSecureOptions,
  peer: PeerId,
  p: SecurePeer,
  kind: number,
  flags: number,
  payload: Uint8Array,
): boolean {
  if (p.phase === 'await-client-hello' && kind === SecureKind.ClientHello && flags === 0) {
    // Checked at once (cheap); answered when the HandshakeQueue gives it its turn (the caller queues it).
    p.suite = parseClientHello(payload, o.suites).suite;
    p.hello = new Uint8Array(payload); // a copy: the batch is lent (Buffer's slice() would be a view)
    p.phase = 'hello-queued';
    return false;
  }
  if (p.phase === 'await-finished' && kind === SecureKind.ClientFinished && p.offloaded) {
    // Only a record that authenticated reaches here from an offloaded transport; it must be a bare tag.
    if (flags !== 0 || payload.length !== 0) throw new HandshakeAlert(AlertCode.Handshake, 'secure channel handshake: ClientFinished must be a bare tag');
    return true;
  }
  if (p.phase === 'await-finished' && kind === SecureKind.ClientFinished && flags === FrameFlag.Encrypted) {
    try {
      if (payload.length !== TAG_BYTES) throw new AuthError('ClientFinished must be a bare tag');
      p.opener!.open(kind, flags, payload, Buffer.alloc(0));
    } catch (err) {
      if (!(err instanceof AuthError)) throw err;
      throw new HandshakeAlert(AlertCode.Handshake, 'secure channel handshake: ClientFinished does not authenticate (the client derived other keys)');
    }
    return true;
  }
  if (p.phase === 'client-hello-sent' && kind === SecureKind.ServerHello && flags === 0) {
    const client = p.client!;
    p.client = undefined;
    const done = client.finish(payload, o.pins);
    // Before ClientFinished goes out: the server seals nothing before it has it.
    takeKeys(transport, o, peer, p, done.suite, done.c2s, done.s2c);
    p.remoteFingerprint = done.fingerprint;
    if (p.offloaded) transport.send(peer, SecureKind.ClientFinished, 0, new Uint8Array(0));
    else transport.send(peer, SecureKind.ClientFinished, FrameFlag.Encrypted, p.sealer!.seal(SecureKind.ClientFinished, 0, new Uint8Array(0)));
    return true;
  }
  throw new HandshakeAlert(AlertCode.Handshake, `secure channel handshake: unexpected frame kind ${kind} (flags ${flags}) while ${p.phase}`);
}
