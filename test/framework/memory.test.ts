import { MemoryTransport } from '../../lib/transport/memory.js';
import { frameworkSuite } from './suite.js';

frameworkSuite({ name: 'MemoryTransport', host: 'memory-host', create: () => new MemoryTransport() });
