/**
 * The Node stage set of the frame pipeline (pipeline.ts): compression in
 * JavaScript with the native codecs (CompressionLayer) over the secure
 * channel (SecureChannel, whose records are sealed with the native AEAD, or
 * by the transport when it runs the `seal` stage). A Server passes it to its
 * endpoints; the package entry (lib/index.ts) installs it for Clients.
 *
 * The compression stage runs only when `compression` is an object: without
 * it a compressed frame reaches the framework, which closes the peer with
 * reason 'protocol' (compression is configured, never implied). Its checksum
 * default is off over the secure channel (the AEAD tag authenticates every
 * byte) and on otherwise.
 */
import { SecureChannel } from '../channel/secure.js';
import { CompressionLayer } from '../compression/layer.js';
import type { Transport } from '../transport/types.js';
import type { LayerOptions } from './layers.js';
import type { StagePlan, StageSet } from './pipeline.js';

/**
 * Builds the JavaScript stages `options` ask for over `transport`, leaving out those the
 * transport runs itself (`inTransport`; none when absent). Returns the top stage.
 */
export function buildLayers(transport: Transport, options: LayerOptions & { inTransport?: StagePlan['inTransport'] }): Transport {
  const { secure, compression } = options;
  const inTransport = options.inTransport ?? { compress: false, seal: false };
  const compressInJs = compression !== undefined && compression !== false && !inTransport.compress;
  let top = transport;
  // Under a compression stage the channel leaves the frame checks to it: one check per frame on the way down.
  if (secure !== undefined) top = new SecureChannel(top, { ...secure, offload: inTransport.seal, framesChecked: compressInJs });
  if (compressInJs) {
    top = new CompressionLayer(top, { ...compression, checksum: compression.checksum ?? (secure === undefined ? undefined : false) });
  }
  return top;
}

/** The Node stage set; see the file comment. */
export const nodeStages: StageSet = Object.freeze({ name: 'node', decodesByDefault: false, build: buildLayers });
