/**
 * The Node builder of the framework's channel layers (see layers.ts):
 * application → CompressionLayer → SecureChannel → transport. Importing this
 * module registers it; server.ts and the package entry do.
 *
 * The compression layer is stacked only when `compression` is an object:
 * without it a compressed frame reaches the framework, which closes the peer
 * with reason 'protocol' (compression is configured, never implied). Its
 * checksum default (off over a SecureChannel, on otherwise) also sees a
 * SecureChannel the caller made itself. A transport that
 * implements LayerOffload may take either layer over; nothing implements it yet.
 */
import { SecureChannel } from '../channel/secure.js';
import { CompressionLayer } from '../compression/layer.js';
import type { Transport } from '../transport/types.js';
import { setLayerBuilder, type LayerOffload, type LayerOptions } from './layers.js';

function offloadOf(transport: Transport): LayerOffload | undefined {
  const t = transport as Transport & Partial<LayerOffload>;
  return typeof t.offloadLayers === 'function' ? (t as LayerOffload) : undefined;
}

/** Stacks the layers `options` ask for over `transport`, leaving out those the transport does itself. */
export function buildLayers(transport: Transport, options: LayerOptions): Transport {
  const { secure, compression } = options;
  const offloaded = offloadOf(transport)?.offloadLayers(options) ?? { secure: false, compression: false };
  let top = transport;
  if (secure !== undefined && !offloaded.secure) top = new SecureChannel(top, secure);
  if (compression !== undefined && compression !== false && !offloaded.compression) {
    top = new CompressionLayer(top, { ...compression, checksum: compression.checksum ?? (secure === undefined ? undefined : false) });
  }
  return top;
}

setLayerBuilder(buildLayers);
