// The SecureChannel suite over real sockets: NodeNetTransport on loopback (see secure-suite.ts).
import { NodeNetTransport } from '../../lib/transport/node-net.js';
import { runSecureChannelSuite } from './secure-suite.js';

runSecureChannelSuite('NodeNetTransport', () => ({
  server: new NodeNetTransport(),
  client: new NodeNetTransport(),
  endpoint: { host: '127.0.0.1', port: 0 },
}));
