/**
 * SecureChannel: a Transport that wraps another Transport and gives every
 * connection its own keys. Layers above use it exactly like the transport it
 * wraps (native TCP, Node net, WebSocket, P2PVM, memory); it only changes what
 * travels underneath:
 *
 * - On a new connection it runs the handshake (handshake.ts) and emits 'open'
 *   only once it is complete. The client side checks the server's Ed25519
 *   identity against the pinned fingerprints, when given.
 * - Each application frame (kinds 8-63) travels as one AEAD record (aead.ts)
 *   with FrameFlag.Encrypted set; 'frames' hands up plaintext in batches, one
 *   native call per run of records of one peer.
 * - A record that fails to open closes the peer with reason 'auth'; nothing of
 *   it, or of anything after it, reaches the application.
 * - Each direction moves to its next key after `rekeyBytes` bytes or
 *   `rekeyInterval` ms, signalled in-band by a rekey record.
 * - close(peer) sends a close record (a bare-tag record of kind 4) before the
 *   transport closes, so the other side can tell a clean close from a cut
 *   connection: a transport that ends after the handshake without one is
 *   reported with reason 'auth' and detail 'truncated: no authenticated close'.
 * - A client needs `pin` (or an explicit `insecureAcceptAnyServer: true`); a
 *   server caps handshakes in progress (`maxHandshakes`) and answers
 *   ClientHellos through a fair HandshakeQueue (handshake-queue.ts), one
 *   ClientHello per connection.
 * - Over a transport that runs the `seal` stage itself (Transport.runsStages:
 *   NativeTcpTransport), the keys go down to it with offloadRecords() once
 *   derived, with the `offload` option, and from then on this class passes
 *   plaintext (offload.ts). The frame pipeline (lib/framework/pipeline.ts)
 *   sets `offload` from the transport's answer.
 *
 * secure-peer.ts has the per-connection state and the handshake steps.
 * Peer ids are the wrapped transport's. Peers that fail the handshake never
 * emit 'open' or 'close' here (their closes are counted in stats()); a
 * connect() to such a server rejects with HandshakeError.
 */
import { EventEmitter } from 'node:events';
import { AuthError, ConnectionClosedError, HandshakeError } from '../errors.js';
import { allocBytes } from '../platform.js';
import { FrameBatchWriter } from '../transport/batch-builder.js';
import { TransportCounters } from '../transport/common.js';
import { checkApplicationFrame, checkClientPins, newSecureStats } from './channel-options.js';
import { FrameFlag } from '../transport/types.js';
import type {
  CloseReason,
  ConnectOptions,
  Endpoint,
  FrameBatch,
  ListenOptions,
  PeerId,
  PeerInfo,
  Transport,
  TransportEvents,
  TransportStats,
} from '../transport/types.js';
import { REKEY_KIND, TAG_BYTES, type CipherSuite } from './aead.js';
import { AlertCode, ClientHandshake, describeAlert, encodeAlert, HandshakeAlert, SecureKind, type ServerIdentity } from './handshake.js';
import { addressKey, HandshakeQueue } from './handshake-queue.js';
import { allOpened, takeOpened } from './offload.js';
import { handshakeStep, newSecurePeer, serverInstall, serverRespond, serverRespondOffThread, type SecurePeer } from './secure-peer.js';
import { CLOSE_KIND, TRUNCATED_DETAIL } from './wire.js';
import { MAX_RECORDS_PER_KEY, resolveSecureOptions, type ResolvedSecureOptions, type SecureChannelOptions, type SecureChannelStats } from './options.js';

/** How long shutdown() waits for open peers to close after their close records, in ms. */
const SHUTDOWN_DRAIN_MS = 1000;

/** A Transport decorator that encrypts and authenticates every frame; see the file comment. */
export class SecureChannel extends EventEmitter<TransportEvents> implements Transport {
  readonly name: string;
  /** Every frame handed up was opened and authenticated (Transport.authenticated). */
  readonly authenticated = true;
  readonly #inner: Transport;
  readonly #identity: ServerIdentity | undefined;
  readonly #suites: readonly CipherSuite[];
  readonly #rekeyBytes: number;
  readonly #rekeyInterval: number;
  readonly #handshakeTimeout: number;
  readonly #maxRecord: number;
  readonly #options: ResolvedSecureOptions;
  readonly #peers = new Map<PeerId, SecurePeer>();
  readonly #pendingConnects = new Map<PeerId, Promise<PeerId>>();
  readonly #counters = new TransportCounters();
  readonly #secure: SecureChannelStats = newSecureStats();
  readonly #queue: HandshakeQueue;
  /** Server side: accepted connections still handshaking, by remote address, oldest first (maxHandshakes). */
  readonly #handshaking = new Map<string, PeerId[]>();
  #handshakingCount = 0;
  #inBatch = false;
  #deferred: [PeerId, CloseReason, string][] = [];
  #sealScratch = Buffer.allocUnsafe(64 * 1024);
  readonly #out = new FrameBatchWriter('copy', allocBytes);
  readonly #bytes: [number] = [0];
  readonly #isOffloaded = (peer: PeerId): boolean => {
    const p = this.#peers.get(peer);
    return p !== undefined && p.offloaded && p.phase === 'open';
  };

  constructor(transport: Transport, options: SecureChannelOptions = {}) {
    super();
    if (!transport || typeof transport.send !== 'function') throw new TypeError('transport must be a Transport');
    const o = resolveSecureOptions(options);
    this.#suites = o.suites;
    this.#rekeyBytes = o.rekeyBytes;
    this.#rekeyInterval = o.rekeyInterval;
    this.#handshakeTimeout = o.handshakeTimeout;
    this.#maxRecord = o.maxRecordSize;
    this.#identity = o.identity;
    this.#options = o;
    // A channel that cannot accept connections only connects: refuse an unpinned client now, not at its first connect().
    if (!o.identity) checkClientPins(o, 'new SecureChannel');
    this.#queue = new HandshakeQueue(o.handshakeRate, o.handshakeRatePerIp);
    this.#inner = transport;
    this.name = `secure(${transport.name})`;
    transport.on('open', (peer, info) => this.#onOpen(peer, info));
    transport.on('frames', (batch) => this.#onFrames(batch));
    transport.on('close', (peer, reason, detail) => this.#onClose(peer, reason, detail));
    transport.on('drain', (peer) => {
      if (this.#peers.get(peer)?.phase === 'open') this.emit('drain', peer);
    });
    transport.on('error', (error) => this.emit('error', error));
  }

  async listen(endpoint: Endpoint, options?: ListenOptions): Promise<Endpoint> {
    if (!this.#identity) throw new TypeError('SecureChannel needs options.identity (a ServerIdentity) to accept connections');
    return this.#inner.listen(endpoint, options);
  }

  /** Transport.stopListening: passed down (false when the transport below has none). */
  stopListening(port: number): Promise<boolean> {
    return this.#inner.stopListening?.(port) ?? Promise.resolve(false);
  }

  /**
   * Connects and resolves once the handshake is complete. Rejects with TypeError, before
   * connecting, when neither `pin` nor `insecureAcceptAnyServer: true` was given.
   */
  async connect(endpoint: Endpoint, options?: ConnectOptions): Promise<PeerId> {
    checkClientPins(this.#options, 'SecureChannel.connect');
    const peer = await this.#inner.connect(endpoint, options);
    const ready = this.#pendingConnects.get(peer);
    if (!ready) throw new ConnectionClosedError(`secure channel: peer ${peer} closed before its handshake began`);
    this.#pendingConnects.delete(peer);
    return ready;
  }

  send(peer: PeerId, kind: number, flags: number, payload: Uint8Array): boolean {
    const p = this.#peers.get(peer);
    if (!p || p.phase !== 'open' || p.closeSent) throw new ConnectionClosedError(`secure channel: peer ${peer} is not open`);
    checkApplicationFrame(kind, flags, payload, this.#maxRecord, this.#options.framesChecked);
    this.#counters.framesOut++;
    this.#counters.bytesOut += payload.length;
    if (p.offloaded) return this.#inner.send(peer, kind, flags, payload);
    if (p.sentBytes >= this.#rekeyBytes || p.sentRecords >= MAX_RECORDS_PER_KEY || Date.now() - p.keyBorn >= this.#rekeyInterval) {
      this.#rekey(peer, p);
    }
    const need = payload.length + TAG_BYTES;
    if (this.#sealScratch.length < need) this.#sealScratch = Buffer.allocUnsafe(Math.max(need, this.#sealScratch.length * 2));
    const record = p.sealer!.seal(kind, flags, payload, this.#sealScratch);
    p.sentBytes += payload.length;
    p.sentRecords++;
    return this.#inner.send(peer, kind, flags | FrameFlag.Encrypted, record);
  }

  /**
   * Closes a peer. Graceful (the default) on an open connection: the close record goes out
   * after the frames already sent, so the other side reports 'remote' rather than a
   * truncation. `abort` sends no close record: the other side sees the connection cut.
   */
  close(peer: PeerId, abort = false): void {
    const p = this.#peers.get(peer);
    if (!p) return;
    if (!abort) this.#sendClose(peer, p);
    this.#inner.close(peer, abort);
  }

  /** Stops reading from a peer (Transport.pause), when the transport below can. */
  pause(peer: PeerId): void {
    this.#inner.pause?.(peer);
  }

  /** Undoes one pause() (Transport.resume). */
  resume(peer: PeerId): void {
    this.#inner.resume?.(peer);
  }

  getUserData(peer: PeerId): unknown {
    return this.#openPeer(peer)?.userData;
  }

  setUserData(peer: PeerId, value: unknown): void {
    const p = this.#openPeer(peer);
    if (p) p.userData = value;
  }

  peerInfo(peer: PeerId): PeerInfo | undefined {
    return this.#openPeer(peer)?.info;
  }

  /** The fingerprint of the server a client-side peer is connected to (undefined on the server side). */
  remoteFingerprint(peer: PeerId): string | undefined {
    return this.#openPeer(peer)?.remoteFingerprint;
  }

  stats(): TransportStats {
    return this.#counters.snapshot();
  }

  /** Handshakes, rekeys and authentication failures since this channel was made. */
  secureStats(): SecureChannelStats {
    return { ...this.#secure };
  }

  /**
   * Sends every open peer its close record and closes it gracefully, waits up to
   * SHUTDOWN_DRAIN_MS for those closes (a transport's shutdown may drop what is still queued,
   * and the peers would then see a truncation), then shuts the transport below down. Peers
   * closed this way are reported with reason 'shutdown'.
   */
  async shutdown(): Promise<void> {
    const closing: Promise<void>[] = [];
    for (const [peer, p] of this.#peers) {
      if (p.job) this.#queue.cancel(p.job); // no handshake starts on a transport that is going
      p.job = undefined;
      if (p.phase !== 'open' || p.closeSent || p.closeReceived) continue;
      this.#sendClose(peer, p);
      p.closeReason ??= 'shutdown';
      p.closeDetail ??= 'this side shut down (authenticated close)';
      closing.push(new Promise((resolve) => (p.closed = resolve)));
      this.#closeInner(peer);
    }
    if (closing.length > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([Promise.all(closing), new Promise((r) => (timer = setTimeout(r, SHUTDOWN_DRAIN_MS)))]);
      clearTimeout(timer);
    }
    await this.#inner.shutdown();
  }

  /** The close record of an open connection, once (docs/security.md, "Authenticated close"). */
  #sendClose(peer: PeerId, p: SecurePeer): void {
    if (p.phase !== 'open' || p.closeSent || p.closeReceived) return;
    p.closeSent = true;
    try {
      if (p.offloaded) this.#inner.send(peer, CLOSE_KIND, 0, new Uint8Array(0));
      else this.#inner.send(peer, CLOSE_KIND, FrameFlag.Encrypted, p.sealer!.seal(CLOSE_KIND, 0, new Uint8Array(0), this.#sealScratch));
    } catch {
      // The connection is already going; its close reports it.
    }
  }

  #openPeer(peer: PeerId): SecurePeer | undefined {
    const p = this.#peers.get(peer);
    return p?.phase === 'open' ? p : undefined;
  }

  #rekey(peer: PeerId, p: SecurePeer): void {
    const record = p.sealer!.seal(REKEY_KIND, 0, new Uint8Array(0), this.#sealScratch);
    this.#inner.send(peer, REKEY_KIND, FrameFlag.Encrypted, record);
    p.sealer!.rekey();
    p.sentBytes = 0;
    p.sentRecords = 0;
    p.keyBorn = Date.now();
    this.#secure.rekeysSent++;
  }

  #onOpen(peer: PeerId, info: PeerInfo): void {
    const p = newSecurePeer(info);
    this.#peers.set(peer, p);
    p.timer = setTimeout(() => this.#fail(peer, p, 'timeout', 'secure channel handshake timed out', AlertCode.Timeout), this.#handshakeTimeout);
    if (info.accepted) {
      if (!this.#identity) this.#fail(peer, p, 'auth', 'secure channel: this side has no server identity', AlertCode.Handshake);
      else this.#admit(peer, p);
      return;
    }
    const ready = new Promise<PeerId>((resolve, reject) => (p.ready = { resolve, reject }));
    ready.catch(() => undefined); // observed by connect(); a failure before that must not go unhandled
    this.#pendingConnects.set(peer, ready);
    p.client = new ClientHandshake(this.#suites);
    this.#inner.send(peer, SecureKind.ClientHello, 0, p.client.hello);
  }

  #onClose(peer: PeerId, reason: CloseReason, detail: string): void {
    const p = this.#peers.get(peer);
    if (!p) return;
    this.#peers.delete(peer);
    p.closed?.();
    this.#wipe(peer, p);
    if (p.phase === 'open' && reason === 'remote' && !p.closeReceived && !p.closeSent) {
      // The other side's transport ended cleanly, but without its close record: records may have been cut.
      p.closeReason = 'auth';
      p.closeDetail = `${TRUNCATED_DETAIL} (the connection ended after the handshake without the peer's close record; its last records may have been cut): ${detail}`;
      this.#secure.truncations++;
    }
    const finalReason = p.closeReason ?? reason;
    const finalDetail = p.closeDetail ?? detail;
    this.#counters.closed(finalReason);
    // A record the transport could not open (offloaded peers) is this channel's auth failure too.
    if (p.offloaded && p.phase === 'open' && reason === 'auth') this.#secure.authFailures++;
    if (p.ready) {
      p.ready.reject(new HandshakeError(`secure channel: connection closed during the handshake (${finalReason}): ${finalDetail}`));
      return;
    }
    if (!p.opened) return;
    if (this.#inBatch) this.#deferred.push([peer, finalReason, finalDetail]);
    else this.emit('close', peer, finalReason, finalDetail);
  }

  /**
   * Closes a peer because of the secure channel: sends an alert (unless the
   * peer sent one), then closes gracefully so the alert goes out first.
   */
  #fail(peer: PeerId, p: SecurePeer, reason: CloseReason, detail: string, alert?: number): void {
    if (p.phase === 'closing' || !this.#peers.has(peer)) return;
    const wasOpen = p.phase === 'open';
    p.phase = 'closing';
    p.closeReason = reason;
    p.closeDetail = detail;
    if (!wasOpen) this.#secure.handshakeFailures++;
    if (reason === 'auth' && wasOpen) this.#secure.authFailures++;
    if (reason === 'refused') this.#secure.handshakesRefused++;
    // Nothing more is sealed or opened for this peer: its secrets go now, not when the transport reports the close.
    this.#wipe(peer, p);
    if (alert !== undefined) {
      try {
        this.#inner.send(peer, SecureKind.Alert, 0, encodeAlert(alert, detail));
      } catch {
        // The connection is already going; the close below reports it.
      }
    }
    if (p.ready) {
      const ready = p.ready;
      p.ready = undefined;
      ready.reject(new HandshakeError(detail));
    }
    this.#closeInner(peer);
  }

  /** Closes a peer below, gracefully; a transport that is already shut down has nothing left to close. */
  #closeInner(peer: PeerId): void {
    try {
      this.#inner.close(peer);
    } catch {
      // Shut down or already closed: its 'close' event, if any, reports it.
    }
  }

  #handshakeFrame(peer: PeerId, p: SecurePeer, kind: number, flags: number, payload: Uint8Array): void {
    if (kind <= 1) return; // transport pings may come at any time; they are the transport's business
    if (kind === SecureKind.Alert && flags === 0) {
      this.#fail(peer, p, 'auth', `secure channel handshake: ${describeAlert(payload)}`);
      return;
    }
    if (kind === SecureKind.ClientHello && p.info.accepted && p.phase !== 'await-client-hello') {
      this.#secondHello(peer, p);
      return;
    }
    try {
      if (handshakeStep(this.#inner, this.#options, peer, p, kind, flags, payload)) this.#established(peer, p);
      else if (p.phase === 'hello-queued' && !p.job) this.#queueHello(peer, p);
    } catch (err) {
      // Any fault here is this peer's failed handshake; nothing escapes into the transport below.
      const message = err instanceof HandshakeError ? err.message : `secure channel handshake failed: ${(err as Error).message}`;
      this.#fail(peer, p, 'auth', message, err instanceof HandshakeAlert ? err.alert : AlertCode.Handshake);
    }
  }

  /** One handshake per connection: a replayed or repeated ClientHello closes it ('protocol') before it costs any key agreement. */
  #secondHello(peer: PeerId, p: SecurePeer): void {
    this.#fail(peer, p, 'protocol', 'secure channel handshake: a second ClientHello on one connection (one handshake per connection)', AlertCode.Handshake);
  }

  /**
   * Server side: counts a new connection against maxHandshakes. At the cap, room is made by
   * closing the newest handshake of the address that holds the most ('refused', alert 7), unless
   * the new connection's own address holds the most: then the new one is refused.
   */
  #admit(peer: PeerId, p: SecurePeer): void {
    const address = addressKey(p.info.remoteAddress);
    if (this.#handshakingCount >= this.#options.maxHandshakes) {
      let fattest: string | undefined;
      let most = 0;
      for (const [a, list] of this.#handshaking) {
        if (list.length > most) {
          most = list.length;
          fattest = a;
        }
      }
      const own = this.#handshaking.get(address)?.length ?? 0;
      const why = `secure channel: too many handshakes in progress (maxHandshakes ${this.#options.maxHandshakes}); try again later`;
      if (fattest === undefined || own + 1 >= most) {
        this.#fail(peer, p, 'refused', why, AlertCode.Busy);
        return;
      }
      const list = this.#handshaking.get(fattest)!;
      const victim = list[list.length - 1]!;
      this.#fail(victim, this.#peers.get(victim)!, 'refused', `${why} (made room for another address)`, AlertCode.Busy);
    }
    p.handshaking = true;
    this.#handshakingCount++;
    const list = this.#handshaking.get(address);
    if (list) list.push(peer);
    else this.#handshaking.set(address, [peer]);
  }

  /** Server side: the connection no longer counts against maxHandshakes. */
  #leaveHandshake(peer: PeerId, p: SecurePeer): void {
    if (!p.handshaking) return;
    p.handshaking = false;
    this.#handshakingCount--;
    const address = addressKey(p.info.remoteAddress);
    const list = this.#handshaking.get(address);
    if (!list) return;
    const at = list.indexOf(peer);
    if (at >= 0) list.splice(at, 1);
    if (list.length === 0) this.#handshaking.delete(address);
  }

  /** Server side: the checked ClientHello waits for its turn in the HandshakeQueue. */
  #queueHello(peer: PeerId, p: SecurePeer): void {
    const job = {
      address: addressKey(p.info.remoteAddress),
      run: () => {
        p.job = undefined;
        if (p.phase !== 'hello-queued' || this.#peers.get(peer) !== p) return;
        try {
          if (this.#options.handshakeOffThread) this.#respondOffThread(peer, p);
          else serverRespond(this.#inner, this.#options, peer, p);
        } catch (err) {
          const message = err instanceof HandshakeError ? err.message : `secure channel handshake failed: ${(err as Error).message}`;
          this.#fail(peer, p, 'auth', message, err instanceof HandshakeAlert ? err.alert : AlertCode.Handshake);
        }
      },
    };
    if (!this.#options.handshakeQueue) {
      job.run();
      return;
    }
    p.job = job;
    this.#queue.push(job);
  }

  /**
   * The handshake's computation on the libuv thread pool; the keys are installed and ServerHello
   * sent when it comes back, if the connection still waits for it (else the secrets are wiped).
   * The connection sends nothing meanwhile (its client waits for ServerHello), so its records stay
   * in order; handshakes of different connections may finish in any order.
   */
  #respondOffThread(peer: PeerId, p: SecurePeer): void {
    p.phase = 'hello-computing';
    serverRespondOffThread(this.#options, p, (err, result) => {
      if (p.phase !== 'hello-computing' || this.#peers.get(peer) !== p) {
        result?.c2s.fill(0);
        result?.s2c.fill(0);
        return;
      }
      try {
        if (err !== null) throw err;
        serverInstall(this.#inner, this.#options, peer, p, result!);
      } catch (e) {
        const message = e instanceof HandshakeError ? e.message : `secure channel handshake failed: ${(e as Error).message}`;
        this.#fail(peer, p, 'auth', message, e instanceof HandshakeAlert ? e.alert : AlertCode.Handshake);
      }
    });
  }

  /**
   * Every secret this side still holds for a connection that is going: the queued handshake,
   * the client's ephemeral key, the record keys (AeadContext.close() wipes them).
   */
  #wipe(peer: PeerId, p: SecurePeer): void {
    clearTimeout(p.timer);
    p.timer = undefined;
    if (p.job) this.#queue.cancel(p.job);
    p.job = undefined;
    p.hello = undefined;
    p.client?.dispose();
    p.client = undefined;
    p.sealer?.close();
    p.opener?.close();
    this.#leaveHandshake(peer, p);
  }

  /** The peer's close record authenticated: a clean close ('remote'); this side closes too. */
  #closeReceived(peer: PeerId, p: SecurePeer): void {
    if (p.phase !== 'open') return;
    p.closeReceived = true;
    p.phase = 'closing';
    p.closeReason = 'remote';
    p.closeDetail = 'the peer closed the secure channel (authenticated close)';
    this.#wipe(peer, p);
    this.#closeInner(peer);
  }

  #established(peer: PeerId, p: SecurePeer): void {
    this.#leaveHandshake(peer, p);
    clearTimeout(p.timer);
    p.timer = undefined;
    p.phase = 'open';
    p.opened = true;
    p.keyBorn = Date.now();
    this.#secure.handshakes++;
    this.#counters.connections++;
    const ready = p.ready;
    p.ready = undefined;
    this.emit('open', peer, p.info);
    ready?.resolve(peer);
  }

  /** A frame to open on an established channel: an application or rekey record, or a bare-tag close record. */
  #isRecord(kind: number, flags: number, length: number): boolean {
    return (flags & FrameFlag.Encrypted) !== 0 && ((kind >= 8 || kind === REKEY_KIND) ? length <= this.#maxRecord + TAG_BYTES : kind === CLOSE_KIND && length === TAG_BYTES);
  }

  #onFrames(batch: FrameBatch): void {
    if (allOpened(batch, this.#isOffloaded, this.#bytes)) {
      // Every frame was opened by the transport below: hand the batch up as it is.
      this.#counters.framesIn += batch.count;
      this.#counters.bytesIn += this.#bytes[0];
      this.emit('frames', batch);
      return;
    }
    const { count, peers, kinds, flags, offsets, lengths, data } = batch;
    const out = this.#out;
    out.reset();
    out.room(count, data.length);
    this.#inBatch = true;
    try {
      let i = 0;
      while (i < count) {
        const peer = peers[i]!;
        const p = this.#peers.get(peer);
        if (!p || p.phase === 'closing') {
          i++;
          continue;
        }
        if (p.phase !== 'open') {
          this.#handshakeFrame(peer, p, kinds[i]!, flags[i]!, data.subarray(offsets[i]!, offsets[i]! + lengths[i]!));
          i++;
          continue;
        }
        if (p.offloaded) {
          const payload = data.subarray(offsets[i]!, offsets[i]! + lengths[i]!);
          if (!takeOpened(out, peer, kinds[i]!, flags[i]!, payload)) this.#controlFrame(peer, p, kinds[i]!, flags[i]!, lengths[i]!, payload);
          i++;
          continue;
        }
        let j = i;
        // A run ends after a close record: nothing the peer sends after its last record is opened.
        while (j < count && peers[j] === peer && this.#isRecord(kinds[j]!, flags[j]!, lengths[j]!)) if (kinds[j++] === CLOSE_KIND) break;
        if (j === i) {
          this.#controlFrame(peer, p, kinds[i]!, flags[i]!, lengths[i]!, data.subarray(offsets[i]!, offsets[i]! + lengths[i]!));
          i++;
          continue;
        }
        let opened: number;
        try {
          opened = p.opener!.openBatch(data, offsets.subarray(i, j), lengths.subarray(i, j), kinds.subarray(i, j), flags.subarray(i, j), out.data, out.used);
        } catch (err) {
          // OpenSSL itself failed (not an authentication failure): close this peer, keep the others.
          this.#fail(peer, p, 'auth', `secure channel: ${(err as Error).message}`, AlertCode.Record);
          i = j;
          continue;
        }
        for (let k = i; k < i + opened; k++) {
          if (kinds[k] === REKEY_KIND) this.#secure.rekeysReceived++;
          else if (kinds[k] === CLOSE_KIND) this.#closeReceived(peer, p);
          else out.commit(peer, kinds[k]!, flags[k]! & ~FrameFlag.Encrypted, lengths[k]! - TAG_BYTES);
        }
        if (opened < j - i) {
          const err = new AuthError(`secure channel: record of kind ${kinds[i + opened]} failed authentication (altered, replayed, reordered or truncated)`);
          this.#fail(peer, p, 'auth', `${err.code}: ${err.message}`, AlertCode.Record);
        }
        i = j;
      }
      if (out.count > 0) {
        this.#counters.framesIn += out.count;
        this.#counters.bytesIn += out.bytes;
        this.emit('frames', out.view());
      }
    } finally {
      this.#inBatch = false;
      const closes = this.#deferred;
      this.#deferred = [];
      for (const [peer, reason, detail] of closes) this.emit('close', peer, reason, detail);
    }
  }

  /** A frame on an open connection that is not an application or rekey record. */
  #controlFrame(peer: PeerId, p: SecurePeer, kind: number, flags: number, length: number, payload: Uint8Array): void {
    if (kind <= 1) return; // ping/pong belong to the transport below; never handed up unauthenticated
    if (kind === SecureKind.Alert && flags === 0) {
      this.#fail(peer, p, 'auth', `secure channel: ${describeAlert(payload)}`);
      return;
    }
    if (p.offloaded && kind === CLOSE_KIND && flags === 0 && length === 0) {
      // The transport opened and authenticated the peer's close record.
      this.#closeReceived(peer, p);
      return;
    }
    if (kind === SecureKind.ClientHello && p.info.accepted) {
      this.#secondHello(peer, p);
      return;
    }
    const why =
      flags & FrameFlag.Encrypted && length > this.#maxRecord + TAG_BYTES
        ? `record of ${length} bytes exceeds maxRecordSize ${this.#maxRecord} + ${TAG_BYTES}`
        : `unexpected frame kind ${kind} with flags ${flags} on an established channel`;
    this.#fail(peer, p, 'auth', `secure channel: ${why}`, AlertCode.Record);
  }

}
