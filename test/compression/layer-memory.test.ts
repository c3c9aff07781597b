// The CompressionLayer suite over MemoryTransport (see layer-suite.ts).
import { MemoryTransport } from '../../lib/transport/memory.js';
import { runCompressionLayerSuite } from './layer-suite.js';

runCompressionLayerSuite('MemoryTransport', () => ({ server: new MemoryTransport(), client: new MemoryTransport(), endpoint: { host: 'mem', port: 0 } }));
