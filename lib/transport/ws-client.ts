/**
 * WsClientTransport: the client side of the WebSocket transport for Node, on
 * the `ws` package. It connects to a zserver's WebSocket endpoint (served by
 * UwsTransport) and moves the same frames; it cannot listen. Unlike
 * UwsTransport it does not load uWebSockets.js, so it runs on any Node
 * version (tests, benchmarks, and Node programs that must go through HTTP
 * proxies or load balancers that only pass WebSocket).
 */
import type { ConnectionOptions, Endpoint } from './types.js';
import { WsTransportBase } from './ws-base.js';

/** Options of a WsClientTransport. */
export interface WsClientTransportOptions {
  /** URL path of the server's WebSocket endpoint (default '/zserver'). */
  path?: string;
}

/** A connect-only WebSocket transport; see the file comment. */
export class WsClientTransport extends WsTransportBase {
  readonly name = 'ws-client';

  constructor(options: WsClientTransportOptions = {}) {
    super(options);
  }

  /** Always rejects: this transport only connects (use UwsTransport to serve WebSocket). */
  async listen(_endpoint: Endpoint, _options?: ConnectionOptions): Promise<Endpoint> {
    this.checkOpen();
    throw new TypeError('WsClientTransport cannot listen; use UwsTransport for the server side');
  }

  protected closeListeners(): void {}
}
