// The CompressionLayer suite over real sockets: NodeNetTransport on loopback (see layer-suite.ts).
import { NodeNetTransport } from '../../lib/transport/node-net.js';
import { runCompressionLayerSuite } from './layer-suite.js';

runCompressionLayerSuite('NodeNetTransport', () => ({ server: new NodeNetTransport(), client: new NodeNetTransport(), endpoint: { host: '127.0.0.1', port: 0 } }));
