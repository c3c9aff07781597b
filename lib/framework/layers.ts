/**
 * The channel layers a Server endpoint or Client puts between itself and its
 * transport, chosen by the `secure` and `compression` options:
 *
 *   application → CompressionLayer → SecureChannel → transport
 *
 * (compress before encrypting: ciphertext does not compress). This file only
 * resolves the options and keeps one stack per transport; the layers
 * themselves are Node code (native codecs and AEAD), so they are built by a
 * function that stack.ts registers (server.ts imports it, and so does the
 * package entry). This file imports nothing from Node, so a browser build of
 * the Client can include it: the browser bundle registers browser-stack.ts,
 * which stacks only a receive-only decoding layer and refuses `secure` and
 * `compression` objects with a TypeError that says why; a build with no
 * builder at all gets no layers, and asking for one fails the same way.
 *
 * A transport is wrapped once: every endpoint and Client that uses the same
 * transport with the same layer options shares the stack (a hundred Clients of
 * a load generator over one transport, say); different options on one
 * transport are refused, because the layers see every connection of the
 * transport below them.
 */
import type { SecureChannelOptions } from '../channel/options.js';
import type { CompressionLevel, CompressionMethod } from '../compression/index.js';
import type { Transport } from '../transport/types.js';
import { TransportRouter } from './router.js';

/** Frame compression of an endpoint (docs/compression.md, "Frames"). */
export interface EndpointCompression {
  /** Method of outgoing frames (default 'deflate-fixed'). */
  method?: CompressionMethod;
  /** deflate-fixed only: 'fast' (default) or 'default'. */
  level?: CompressionLevel;
  /** Compress payloads of at least this many bytes (default 1024). */
  threshold?: number;
  /** CRC-32C in each compressed payload (default: off with `secure`, on without). */
  checksum?: boolean;
}

/** The layer options of a Server endpoint or a Client. */
export interface LayerOptions {
  /**
   * Run the secure channel (docs/security.md) under the framework. A server endpoint needs
   * `identity`; a client must give `pin` (the server's fingerprint, printed by `zserver keygen`) or opt out with `insecureAcceptAnyServer: true`.
   */
  secure?: SecureChannelOptions;
  /**
   * Compress outgoing frames from `threshold` bytes up and decode compressed frames (each
   * bounded by maxFrameSize and by MAX_EXPANSION_RATIO, docs/compression.md). Absent or
   * `false`: no compression layer at all: this side sends nothing compressed, and a compressed
   * frame from the other side is a protocol violation that closes it (reason 'protocol').
   * Compression is configured, never implied. (The browser build is the one exception: its
   * Client decodes compressed frames unless given `false`, so a page can talk to an endpoint
   * that compresses; see browser-stack.ts.)
   */
  compression?: EndpointCompression | false;
}

/**
 * What a transport may one day advertise to do a layer itself (native compression or AEAD on
 * the I/O thread): the framework then leaves that layer out of the stack and passes its options
 * to `offloadLayers`. No transport implements it yet; see docs/framework.md, "Layers".
 */
export interface LayerOffload {
  /** Returns which of the requested layers the transport takes over; the rest are stacked in JavaScript. */
  offloadLayers(options: LayerOptions): { secure: boolean; compression: boolean };
}

/** Builds the layers over `transport` (lib/framework/stack.ts). */
export type LayerBuilder = (transport: Transport, options: LayerOptions) => Transport;

let builder: LayerBuilder | undefined;
/** Whether the registered builder stacks a layer when no option asks for one (the browser's decoding layer). */
let stacksByDefault = false;
const stacks = new WeakMap<Transport, { options: LayerOptions; top: Transport }>();

/** @internal Registers the Node builder of the layers (stack.ts does, on import). */
export function setLayerBuilder(build: LayerBuilder): void {
  builder = build;
  stacksByDefault = false;
}

/**
 * @internal Registers a builder unless one is registered already: the browser one
 * (browser-stack.ts), which must not replace the Node builder where both are loaded.
 */
export function setDefaultLayerBuilder(build: LayerBuilder): void {
  if (builder !== undefined) return;
  builder = build;
  stacksByDefault = true;
}

/** True when two option values are the same: plain objects and arrays by content, anything else (a ServerIdentity) by identity. */
function same(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((v, i) => same(v, b[i]));
  const plain = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && Object.getPrototypeOf(v) === Object.prototype;
  if (!plain(a) || !plain(b)) return false;
  const keys = new Set([...Object.keys(a), ...Object.keys(b)].filter((k) => a[k] !== undefined || b[k] !== undefined));
  return [...keys].every((k) => same(a[k], b[k]));
}

/**
 * The transport an endpoint or Client talks to: `transport` itself when no layer applies,
 * else the stack of layers over it (made once per transport). Throws TypeError when the
 * options ask for layers this build cannot make, or conflict with how `transport` is already used.
 */
export function layeredTransport(transport: Transport, options: LayerOptions): Transport {
  const { secure, compression } = options;
  if (compression !== undefined && compression !== false && (typeof compression !== 'object' || compression === null)) {
    throw new TypeError(`options.compression must be an object or false, got ${String(compression)}`);
  }
  if (secure !== undefined && (typeof secure !== 'object' || secure === null)) {
    throw new TypeError(`options.secure must be an object of SecureChannel options, got ${String(secure)}`);
  }
  const plain = secure === undefined && (compression === false || (compression === undefined && !stacksByDefault));
  const existing = stacks.get(transport);
  const conflict = (what: string) =>
    new TypeError(`transport '${transport.name}' is already used ${what}; give endpoints with other secure/compression options a transport of their own`);
  if (plain) {
    if (existing !== undefined) throw conflict(`with the layers of another endpoint (secure/compression options)`);
    return transport;
  }
  if (builder === undefined) {
    throw new TypeError("the secure and compression options need zserver's Node build (import from 'zserver'); this build has no channel layers");
  }
  const wanted = { secure, compression };
  if (existing !== undefined) {
    if (!same(existing.options, wanted)) throw conflict(`with other secure/compression options`);
    return existing.top;
  }
  if (TransportRouter.exists(transport)) throw conflict('without layers (no secure/compression options) by another endpoint or Client');
  const top = builder(transport, wanted);
  stacks.set(transport, { options: wanted, top });
  return top;
}
