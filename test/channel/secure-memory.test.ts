// The SecureChannel suite over MemoryTransport (see secure-suite.ts).
import { MemoryNetwork, MemoryTransport } from '../../lib/transport/memory.js';
import { runSecureChannelSuite } from './secure-suite.js';

runSecureChannelSuite('MemoryTransport', () => {
  const network = new MemoryNetwork();
  return { server: new MemoryTransport({ network }), client: new MemoryTransport({ network }), endpoint: { host: 'mem', port: 0 } };
});
