/**
 * FramePipeline: the stages one endpoint (a Server endpoint or Client; all of
 * them over one transport share it) puts between the framework and its
 * transport, in order:
 *
 *   down: framework → compress → seal → transport
 *   up:   framework ← decompress ← open ← transport
 *
 * The `secure` and `compression` options (layers.ts) say which stages run.
 * When the pipeline is made it asks its transport ONE question,
 * Transport.runsStages(wanted), and JavaScript runs the stages the transport
 * does not. Stages are ordered, so the transport can only take the bottom of
 * the pipeline: compression goes to the transport only when it also seals, or
 * nothing is sealed (a frame sealed in JavaScript cannot be compressed below).
 * The secure channel's handshake is always JavaScript (a per-connection state
 * machine that emits 'open'); with `seal` in the transport it hands each
 * connection's keys down once derived and passes plaintext from then on.
 *
 * Which JavaScript stages exist is a StageSet chosen explicitly: a Server
 * passes the Node set (stack.ts); a Client takes the set the package entry
 * installed with useFrameStages() (lib/index.ts: Node; lib/browser.ts: the
 * browser's, receive-only decompression and no `secure`). The router owns the
 * pipeline (router.ts): one per transport, so a transport is never wrapped
 * twice, and endpoints asking it for other stages are refused.
 */
import type { Transport, FrameStages } from '../transport/types.js';
import { checkLayerOptions, type LayerOptions } from './layers.js';

/** What a StageSet builds: the options, and which stages the transport runs itself. */
export interface StagePlan extends LayerOptions {
  /** The stages the transport below runs (its answer to runsStages, ordered as above). */
  readonly inTransport: FrameStages;
}

/** The JavaScript stages of one build (Node or browser); see the file comment. */
export interface StageSet {
  /** 'node' or 'browser', for messages. */
  readonly name: string;
  /** True when the set runs a stage even when no option asks for one (the browser decodes compressed frames by default). */
  readonly decodesByDefault: boolean;
  /**
   * Builds the JavaScript stages of `plan` over `transport` and returns the top one (or
   * `transport` itself when none runs in JavaScript). Throws TypeError for options this build
   * cannot honour.
   */
  build(transport: Transport, plan: StagePlan): Transport;
}

let installed: StageSet | undefined;

/**
 * Installs the stage set Clients use when none is given (the package entries call it). The
 * browser entry passes `onlyIfUnset`: where the Node entry is loaded too, the Node set stays.
 */
export function useFrameStages(set: StageSet, onlyIfUnset = false): void {
  if (onlyIfUnset && installed !== undefined) return;
  installed = set;
}

/** The installed stage set (undefined before an entry installed one). */
export function installedFrameStages(): StageSet | undefined {
  return installed;
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
 * The stages of `options` a transport runs itself: its answer to the capability question,
 * cut to the bottom of the pipeline (see the file comment).
 */
export function stagesInTransport(transport: Transport, options: LayerOptions): FrameStages {
  const { secure, compression } = options;
  const wanted: FrameStages = {
    compress: compression !== undefined && compression !== false,
    // Record sealing moves to the transport only where the channel's `offload` option asks for it (default off).
    seal: secure !== undefined && secure.offload === true,
  };
  if (!wanted.compress && !wanted.seal) return { compress: false, seal: false };
  const answer = transport.runsStages?.(wanted);
  const seal = wanted.seal && answer?.seal === true;
  const compress = wanted.compress && answer?.compress === true && (seal || secure === undefined);
  return { compress, seal };
}

/** One endpoint's frame pipeline; see the file comment. */
export class FramePipeline {
  /** The transport given to listen() or to the Client. */
  readonly transport: Transport;
  /** What the framework sends to and listens on: the top JavaScript stage, or `transport` when none runs in JavaScript. */
  readonly top: Transport;
  /** The options it was made with. */
  readonly options: LayerOptions;
  /** The stages the transport runs itself. */
  readonly inTransport: FrameStages;

  /**
   * Makes the pipeline of `options` over `transport` with the JavaScript stages of `stages`.
   * Throws TypeError for bad options, or for stages that `stages` is missing.
   */
  constructor(transport: Transport, options: LayerOptions, stages: StageSet | undefined) {
    checkLayerOptions(options);
    const { secure, compression } = options;
    this.transport = transport;
    this.options = { secure, compression };
    const none = secure === undefined && (compression === false || (compression === undefined && !(stages?.decodesByDefault ?? false)));
    if (none) {
      this.inTransport = { compress: false, seal: false };
      this.top = transport;
      return;
    }
    if (stages === undefined) {
      throw new TypeError("the secure and compression options need zserver's Node build (import from 'zserver'); this build has no frame pipeline stages");
    }
    this.inTransport = stagesInTransport(transport, this.options);
    this.top = stages.build(transport, { ...this.options, inTransport: this.inTransport });
  }

  /**
   * Throws TypeError unless another endpoint or Client may share this pipeline with `options`
   * (the stages see every connection of the transport, so they must be the same).
   */
  accept(options: LayerOptions, stages: StageSet | undefined): void {
    checkLayerOptions(options);
    const { secure, compression } = options;
    const plain = secure === undefined && (compression === false || (compression === undefined && !(stages?.decodesByDefault ?? false)));
    const conflict = (what: string) =>
      new TypeError(`transport '${this.transport.name}' is already used ${what}; give endpoints with other secure/compression options a transport of their own`);
    if (this.top === this.transport) {
      if (!plain) throw conflict('without layers (no secure/compression options) by another endpoint or Client');
      return;
    }
    if (plain) throw conflict('with the layers of another endpoint (secure/compression options)');
    if (!same(this.options, { secure, compression })) throw conflict('with other secure/compression options');
  }
}
