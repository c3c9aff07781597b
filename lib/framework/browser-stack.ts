/**
 * The browser stage set of the frame pipeline (pipeline.ts), installed by the
 * browser bundle's entry (lib/browser.ts) unless the Node set is installed
 * already.
 *
 * The bundle has the JavaScript decoder of compressed frames but no encoder
 * and no Node SecureChannel, so:
 *  - no `compression` option (the default): a ReceiveCompressionLayer, which
 *    decodes the compressed frames the server chooses to send and sends
 *    nothing compressed, as the Node default does;
 *  - `compression: false`: no stage (the pipeline never calls the builder);
 *    a compressed frame is then a protocol violation;
 *  - `compression: { … }` asks to send compressed frames, and `secure` for the
 *    Node channel: both throw TypeError saying what to do instead. The page's
 *    secure channel is WebSecureChannel (async WebCrypto, records handed up in
 *    the order they arrived), a transport the page wraps itself; the decoding
 *    stage goes on top of it.
 */
import { ReceiveCompressionLayer } from '../compression/receive-layer.js';
import type { Transport } from '../transport/types.js';
import type { LayerOptions } from './layers.js';
import type { StageSet } from './pipeline.js';

/** Stacks the receive-only decoding stage over `transport`; throws TypeError for options the browser build cannot honour. */
export function buildBrowserLayers(transport: Transport, options: LayerOptions): Transport {
  if (options.secure !== undefined) {
    throw new TypeError(
      "options.secure needs zserver's Node build; in a browser give the Client a WebSecureChannel as its transport: " +
        'new Client({ transport: new WebSecureChannel(new BrowserWsTransport(), { pin }), … })',
    );
  }
  if (options.compression !== undefined && options.compression !== false) {
    throw new TypeError(
      'options.compression: the browser build decodes compressed frames but cannot send them (it has no encoder); ' +
        'leave the option out to receive compressed frames, or give false to refuse them',
    );
  }
  return new ReceiveCompressionLayer(transport);
}

/** The browser stage set; see the file comment. */
export const browserStages: StageSet = Object.freeze({ name: 'browser', decodesByDefault: true, build: buildBrowserLayers });
