/**
 * The types at the edge of the browser channel: what it needs of the
 * transport it wraps, and its options.
 */
import type { BrowserFrameBatch } from '../../transport/browser-ws.js';
import type { CloseReason, ConnectOptions, Endpoint, PeerId, PeerInfo } from '../../transport/types.js';
import type { ChannelOptions } from '../channel-options.js';
import type { Subtle } from './subtle.js';

/** What WebSecureChannel needs of the transport it wraps: BrowserWsTransport, or any Node Transport. */
export interface WebChannelTransport<E = Endpoint> {
  readonly name: string;
  connect(endpoint: E, options?: ConnectOptions): Promise<PeerId>;
  send(peer: PeerId, kind: number, flags: number, payload: Uint8Array): boolean;
  close(peer: PeerId, abort?: boolean): void;
  shutdown(): Promise<void>;
  on(event: 'open', listener: (peer: PeerId, info: PeerInfo) => void): unknown;
  on(event: 'frames', listener: (batch: BrowserFrameBatch) => void): unknown;
  on(event: 'drain', listener: (peer: PeerId) => void): unknown;
  on(event: 'close', listener: (peer: PeerId, reason: CloseReason, detail: string) => void): unknown;
  on(event: 'error', listener: (error: Error) => void): unknown;
}

/** Options of a WebSecureChannel: those of SecureChannel without `identity`; `suites` may only be ['aes-256-gcm']. */
export type WebSecureChannelOptions = ChannelOptions & {
  /** The WebCrypto to use (default `globalThis.crypto.subtle`). */
  subtle?: Subtle;
};
