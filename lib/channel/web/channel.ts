/**
 * WebSecureChannel: the client side of the secure channel (docs/security.md)
 * on WebCrypto, for browsers. It wraps a connect-only transport
 * (BrowserWsTransport in a page; any Transport in Node) and is one itself, with
 * the same methods and events, so it drops in where the transport was:
 *
 *   const channel = new WebSecureChannel(new BrowserWsTransport(), { pin });
 *   const peer = await channel.connect('wss://example.com/zserver'); // after the handshake
 *   channel.send(peer, 8, 0, bytes);
 *
 * It speaks to an unchanged Node SecureChannel server: the same handshake, the
 * same AES-256-GCM records (the only suite it offers: WebCrypto has no
 * ChaCha20-Poly1305), the same rekeying, alerts and close reasons. What
 * differs is inside: WebCrypto answers with promises, so each connection
 * keeps its records in two ordered queues (peer.ts) and hands frames up and
 * down in the order they were given, a run at a time.
 *
 * A client must give `pin` or opt out with `insecureAcceptAnyServer: true`
 * (the constructor throws TypeError otherwise). close() sends the close
 * record; a connection that ends after the handshake without the server's is
 * reported as truncated ('auth'), as on the Node channel.
 *
 * Errors match the Node channel: connect() rejects with HandshakeError (code
 * ZS_HANDSHAKE) when the handshake fails or WebCrypto lacks X25519 or
 * Ed25519; a record that fails to open closes the peer with reason 'auth' and
 * a detail starting 'ZS_AUTH:'.
 */
import { ConnectionClosedError, HandshakeError } from '../../errors.js';
import { TransportCounters } from '../../transport/common.js';
import { FrameFlag } from '../../transport/types.js';
import type { BrowserFrameBatch, BrowserTransportEvents } from '../../transport/browser-ws.js';
import type { CloseReason, ConnectOptions, Endpoint, PeerId, PeerInfo, TransportStats } from '../../transport/types.js';
import { checkApplicationFrame, checkClientPins, newSecureStats, rekeyDue, resolveChannelOptions, type ResolvedChannelOptions, type SecureChannelStats } from '../channel-options.js';
import { AlertCode, CLOSE_KIND, describeAlert, encodeAlert, HandshakeAlert, REKEY_KIND, SecureKind, TRUNCATED_DETAIL } from '../wire.js';
import { WebEventEmitter as WebEmitter } from '../../web-emitter.js';
import { WebClientHandshake } from './handshake.js';
import { classifyFrame, newPeer, openedRun, rejectReady, type Entry, type WebPeer } from './peer.js';
import { checkSecureCurves, pageSubtle, type Subtle } from './subtle.js';
import type { WebChannelTransport, WebSecureChannelOptions } from './types.js';

const EMPTY = new Uint8Array(0);
/** How long shutdown() waits for open peers to close after their close records, in ms. */
const SHUTDOWN_DRAIN_MS = 1000;

/** The browser client of the secure channel; see the file comment. */
export class WebSecureChannel<E = Endpoint> extends WebEmitter<BrowserTransportEvents> {
  readonly name: string;
  /** Every frame handed up was opened and authenticated (Transport.authenticated). */
  readonly authenticated = true;
  readonly #inner: WebChannelTransport<E>;
  readonly #o: ResolvedChannelOptions;
  readonly #subtle: Subtle | undefined;
  readonly #peers = new Map<PeerId, WebPeer>();
  readonly #pendingConnects = new Map<PeerId, Promise<PeerId>>();
  readonly #counters = new TransportCounters();
  readonly #secure: SecureChannelStats = newSecureStats();

  constructor(transport: WebChannelTransport<E>, options: WebSecureChannelOptions = {}) {
    super();
    if (!transport || typeof transport.send !== 'function') throw new TypeError('transport must be a Transport (a BrowserWsTransport in a page)');
    this.#o = resolveChannelOptions(options, ['aes-256-gcm']);
    if (this.#o.suites.some((s) => s !== 'aes-256-gcm')) {
      throw new RangeError("options.suites: the browser channel has only 'aes-256-gcm' (WebCrypto has no ChaCha20-Poly1305)");
    }
    checkClientPins(this.#o, 'new WebSecureChannel');
    this.#subtle = options.subtle;
    this.#inner = transport;
    this.name = `web-secure(${transport.name})`;
    transport.on('open', (peer, info) => this.#onOpen(peer, info));
    transport.on('frames', (batch) => this.#onFrames(batch));
    transport.on('close', (peer, reason, detail) => this.#onClose(peer, reason, detail));
    transport.on('drain', (peer) => {
      const p = this.#peers.get(peer);
      if (!p) return;
      p.innerFull = false;
      this.#checkDrain(p);
    });
    transport.on('error', (error) => this.emit('error', error));
  }

  /** Always rejects: the browser channel is the client side only (serve with SecureChannel). */
  async listen(): Promise<Endpoint> {
    throw new TypeError('WebSecureChannel only connects; serve the secure channel with SecureChannel on Node');
  }

  /**
   * Checks that WebCrypto has X25519 and Ed25519 (HandshakeError naming what
   * is missing otherwise, before any connection is made), connects, and
   * resolves once the handshake is complete.
   */
  async connect(endpoint: E, options?: ConnectOptions): Promise<PeerId> {
    await checkSecureCurves(this.#subtle ?? pageSubtle());
    const peer = await this.#inner.connect(endpoint, options);
    const ready = this.#pendingConnects.get(peer);
    if (!ready) throw new ConnectionClosedError(`secure channel: peer ${peer} closed before its handshake began`);
    this.#pendingConnects.delete(peer);
    const p = this.#peers.get(peer);
    if (p && options?.highWaterMark !== undefined) p.highWaterMark = options.highWaterMark;
    return ready;
  }

  /**
   * Queues one application frame (kind 8-63) for encryption. Returns false
   * when the peer's plaintext waiting for WebCrypto or the transport is above
   * its high-water mark ('drain' follows). The payload may be reused as soon
   * as send() returns.
   */
  send(peer: PeerId, kind: number, flags: number, payload: Uint8Array): boolean {
    const p = this.#peers.get(peer);
    if (!p || p.phase !== 'open' || p.closeRequested) throw new ConnectionClosedError(`secure channel: peer ${peer} is not open`);
    checkApplicationFrame(kind, flags, payload, this.#o.maxRecordSize);
    if (rekeyDue(p, this.#o)) {
      this.#queueOut(p, REKEY_KIND, 0, EMPTY);
      p.sealer!.rekey();
      p.sentBytes = 0;
      p.sentRecords = 0;
      p.keyBorn = Date.now();
      this.#secure.rekeysSent++;
    }
    this.#queueOut(p, kind, flags, payload);
    p.sentBytes += payload.length;
    p.sentRecords++;
    p.queued += payload.length;
    this.#counters.framesOut++;
    this.#counters.bytesOut += payload.length;
    if (p.innerFull || p.queued > p.highWaterMark) {
      p.wantsDrain = true;
      return false;
    }
    return true;
  }

  /**
   * Closes a peer: gracefully after the frames already sent, then the close record, are
   * encrypted and handed down, unless abort is true (no close record: the server sees the
   * connection cut).
   */
  close(peer: PeerId, abort = false): void {
    const p = this.#peers.get(peer);
    if (!p || p.phase === 'closed') return;
    if (!abort) this.#sendClose(p);
    p.closeRequested = true;
    if (abort || !p.outPump) this.#inner.close(peer, abort);
  }

  /** Queues the close record of an open connection, once (docs/security.md, "Authenticated close"). */
  #sendClose(p: WebPeer): void {
    if (p.phase !== 'open' || p.closeRequested || p.closeReceived) return;
    this.#queueOut(p, CLOSE_KIND, 0, EMPTY);
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

  /** The fingerprint of the server a peer is connected to. */
  remoteFingerprint(peer: PeerId): string | undefined {
    return this.#openPeer(peer)?.fingerprint;
  }

  stats(): TransportStats {
    return this.#counters.snapshot();
  }

  /** Handshakes, rekeys and authentication failures since this channel was made. */
  secureStats(): SecureChannelStats {
    return { ...this.#secure };
  }

  /** Hands down what is already queued for encryption and every open peer's close record, then shuts the transport down. */
  async shutdown(): Promise<void> {
    const closing: Promise<void>[] = [];
    for (const p of [...this.#peers.values()]) {
      if (p.phase !== 'open' || p.closeRequested) continue;
      closing.push(new Promise((resolve) => (p.closed = resolve)));
      this.close(p.id); // the close record after what is queued, then a graceful close
      p.closeReason ??= 'shutdown';
      p.closeDetail ??= 'this side shut down (authenticated close)';
    }
    await Promise.all([...this.#peers.values()].map((p) => p.outPump));
    if (closing.length > 0) {
      // A transport's shutdown may drop what it still holds: give the closes a moment to finish first.
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([Promise.all(closing), new Promise((r) => (timer = setTimeout(r, SHUTDOWN_DRAIN_MS)))]);
      clearTimeout(timer);
    }
    await this.#inner.shutdown();
  }

  #openPeer(peer: PeerId): WebPeer | undefined {
    const p = this.#peers.get(peer);
    return p?.phase === 'open' ? p : undefined;
  }

  #onOpen(peer: PeerId, info: PeerInfo): void {
    const stale = this.#peers.get(peer);
    if (stale) this.#finalize(stale, stale.innerClosed?.[0] ?? 'reset', stale.innerClosed?.[1] ?? 'replaced by a new connection');
    const p = newPeer(peer, info);
    this.#peers.set(peer, p);
    const ready = new Promise<PeerId>((resolve, reject) => (p.ready = { resolve, reject }));
    ready.catch(() => undefined); // observed by connect(); a failure before that must not go unhandled
    this.#pendingConnects.set(peer, ready);
    p.timer = setTimeout(() => this.#fail(p, 'timeout', 'secure channel handshake timed out', AlertCode.Timeout), this.#o.handshakeTimeout);
    if (info.accepted) {
      this.#fail(p, 'auth', 'secure channel: WebSecureChannel is the client side and cannot accept connections', AlertCode.Handshake);
      return;
    }
    const subtle = this.#subtle ?? pageSubtle();
    WebClientHandshake.start(subtle, this.#o.suites).then(
      (handshake) => {
        if (p.phase !== 'starting') return;
        p.handshake = handshake;
        p.phase = 'hello-sent';
        this.#inner.send(peer, SecureKind.ClientHello, 0, handshake.hello);
      },
      (err: Error) => this.#fail(p, 'auth', `secure channel handshake: ${err.message}`, AlertCode.Handshake),
    );
  }

  #onClose(peer: PeerId, reason: CloseReason, detail: string): void {
    const p = this.#peers.get(peer);
    if (!p) return;
    p.innerClosed = [reason, detail];
    // Records that arrived before a close from the other side are still being opened: hand them up
    // first. After close() on this side, nothing more is handed up (as on the Node channel).
    if (p.phase === 'closing' || !p.inPump || p.closeRequested) this.#finalize(p, reason, detail);
  }

  #finalize(p: WebPeer, reason: CloseReason, detail: string): void {
    if (p.phase === 'closed') return;
    if (p.phase === 'open' && reason === 'remote' && !p.closeRequested && !p.closeReceived) {
      // The server's transport ended cleanly, but without its close record: records may have been cut.
      p.closeReason = 'auth';
      p.closeDetail = `${TRUNCATED_DETAIL} (the connection ended after the handshake without the peer's close record; its last records may have been cut): ${detail}`;
      this.#secure.truncations++;
    }
    p.phase = 'closed';
    p.closed?.();
    if (this.#peers.get(p.id) === p) this.#peers.delete(p.id);
    clearTimeout(p.timer);
    p.handshake = undefined; // its ephemeral key is a non-extractable CryptoKey: dropping it is all there is to do
    const finalReason = p.closeReason ?? reason;
    const finalDetail = p.closeDetail ?? detail;
    this.#counters.closed(finalReason);
    if (rejectReady(p, `secure channel: connection closed during the handshake (${finalReason}): ${finalDetail}`)) return;
    if (p.opened) this.emit('close', p.id, finalReason, finalDetail);
  }

  /** Closes a peer because of the secure channel: sends an alert when given, then closes gracefully. */
  #fail(p: WebPeer, reason: CloseReason, detail: string, alert?: number): void {
    if (p.phase === 'closing' || p.phase === 'closed') return;
    const wasOpen = p.phase === 'open';
    p.phase = 'closing';
    p.closeReason = reason;
    p.closeDetail = detail;
    if (!wasOpen) this.#secure.handshakeFailures++;
    if (reason === 'auth' && wasOpen) this.#secure.authFailures++;
    clearTimeout(p.timer);
    if (alert !== undefined) {
      try {
        this.#inner.send(p.id, SecureKind.Alert, 0, encodeAlert(alert, detail));
      } catch {
        // The connection is already going; the close below reports it.
      }
    }
    rejectReady(p, detail);
    p.handshake = undefined;
    if (p.innerClosed) this.#finalize(p, ...p.innerClosed);
    else this.#inner.close(p.id);
  }

  #onFrames(batch: BrowserFrameBatch): void {
    const { count, peers, kinds, flags, offsets, lengths, data } = batch;
    for (let i = 0; i < count; i++) {
      const p = this.#peers.get(peers[i]!);
      if (!p || p.phase === 'closing' || p.phase === 'closed') continue;
      const kind = kinds[i]!;
      const payload = data.subarray(offsets[i]!, offsets[i]! + lengths[i]!);
      if (p.phase === 'open') this.#recordFrame(p, kind, flags[i]!, payload);
      else this.#handshakeFrame(p, kind, flags[i]!, payload);
    }
  }

  #handshakeFrame(p: WebPeer, kind: number, flags: number, payload: Uint8Array): void {
    if (kind <= 1) return; // transport pings may come at any time; they are the transport's business
    if (kind === SecureKind.Alert && flags === 0) {
      this.#fail(p, 'auth', `secure channel handshake: ${describeAlert(payload)}`);
      return;
    }
    if (p.phase !== 'hello-sent' || kind !== SecureKind.ServerHello || flags !== 0) {
      this.#fail(p, 'auth', `secure channel handshake: unexpected frame kind ${kind} (flags ${flags}) while ${p.phase}`, AlertCode.Handshake);
      return;
    }
    p.phase = 'finishing';
    p.handshake!.finishRecords(new Uint8Array(payload), this.#o.pins) // a copy: the batch is lent, and a Buffer's slice() is a view
      .then((done) => {
        if (p.phase !== 'finishing') return;
        p.handshake = undefined;
        p.sealer = done.sealer;
        p.opener = done.opener;
        p.fingerprint = done.fingerprint;
        this.#queueOut(p, SecureKind.ClientFinished, 0, EMPTY);
        this.#established(p);
      })
      .catch((err: Error) => {
        const message = err instanceof HandshakeError ? err.message : `secure channel handshake failed: ${err.message}`;
        this.#fail(p, 'auth', message, err instanceof HandshakeAlert ? err.alert : AlertCode.Handshake);
      });
  }

  #established(p: WebPeer): void {
    clearTimeout(p.timer);
    p.timer = undefined;
    p.phase = 'open';
    p.opened = true;
    p.keyBorn = Date.now();
    this.#secure.handshakes++;
    this.#counters.connections++;
    const ready = p.ready;
    p.ready = undefined;
    this.emit('open', p.id, p.info);
    ready?.resolve(p.id);
  }

  /** A frame on an open connection: a record starts opening now; anything else stops the connection once the records before it are delivered. */
  #recordFrame(p: WebPeer, kind: number, flags: number, payload: Uint8Array): void {
    if (kind <= 1 || p.inStopped) return; // ping/pong belong to the transport below; never handed up unauthenticated
    const stop = classifyFrame(kind, flags, payload, this.#o.maxRecordSize);
    if (stop) {
      p.inStopped = true;
      this.#queueIn(p, { kind, flags, bytes: 0, result: undefined, stop });
      return;
    }
    this.#queueIn(p, { kind, flags: flags & ~FrameFlag.Encrypted, bytes: 0, result: p.opener!.run(kind, flags, payload), stop: undefined });
    if (kind === REKEY_KIND) p.opener!.rekey();
    if (kind === CLOSE_KIND) p.inStopped = true; // the peer's last record: nothing after it is opened
  }

  #queueOut(p: WebPeer, kind: number, flags: number, plaintext: Uint8Array): void {
    p.out.push({ kind, flags, bytes: plaintext.length, result: p.sealer!.run(kind, flags, plaintext), stop: undefined });
    p.outPump ??= Promise.resolve().then(() => this.#drainOut(p));
  }

  #queueIn(p: WebPeer, entry: Entry): void {
    p.in.push(entry);
    p.inPump ??= Promise.resolve().then(() => this.#drainIn(p));
  }

  /** Hands sealed records to the transport in the order send() took them, a run per await. */
  async #drainOut(p: WebPeer): Promise<void> {
    try {
      await this.#deliverOut(p);
    } finally {
      p.outPump = undefined;
    }
    if (p.phase !== 'open') return;
    if (p.closeRequested) this.#inner.close(p.id);
    else this.#checkDrain(p);
  }

  async #deliverOut(p: WebPeer): Promise<void> {
    while (p.out.length > 0 && p.phase === 'open') {
      const run = p.out;
      p.out = [];
      const results = await Promise.allSettled(run.map((e) => e.result!));
      for (let k = 0; k < run.length && p.phase === 'open'; k++) {
        const r = results[k]!;
        if (r.status === 'rejected') {
          this.#fail(p, 'auth', `secure channel: sealing a record failed: ${(r.reason as Error).message}`, AlertCode.Record);
          break;
        }
        const e = run[k]!;
        p.queued -= e.bytes;
        try {
          if (!this.#inner.send(p.id, e.kind, e.flags | FrameFlag.Encrypted, r.value)) p.innerFull = true;
        } catch {
          return; // the transport closed the peer; its 'close' event reports it
        }
      }
    }
  }

  /** Hands opened records up in the order they arrived, one 'frames' batch per run. */
  async #drainIn(p: WebPeer): Promise<void> {
    try {
      await this.#deliverIn(p);
    } finally {
      p.inPump = undefined;
    }
    if (p.innerClosed) this.#finalize(p, ...p.innerClosed);
  }

  async #deliverIn(p: WebPeer): Promise<void> {
    while (p.in.length > 0 && p.phase === 'open') {
      const run = p.in;
      p.in = [];
      const results = await Promise.allSettled(run.map((e) => e.result ?? Promise.resolve(EMPTY)));
      if (p.phase !== 'open') break;
      const { batch, rekeys, stop } = openedRun(p.id, run, results);
      this.#secure.rekeysReceived += rekeys;
      if (batch) {
        this.#counters.framesIn += batch.count;
        this.#counters.bytesIn += batch.bytes;
        this.emit('frames', batch);
      }
      if (stop?.reason === 'remote') {
        // The server's close record authenticated: a clean close.
        p.closeReceived = true;
        this.#fail(p, stop.reason, stop.detail);
      } else if (stop) this.#fail(p, stop.reason, stop.detail, stop.alert);
    }
  }

  #checkDrain(p: WebPeer): void {
    if (p.wantsDrain && !p.innerFull && p.queued <= p.highWaterMark && p.phase === 'open') {
      p.wantsDrain = false;
      this.emit('drain', p.id);
    }
  }
}
