// The whole framework suite over P2PVM virtual connections (each inside a
// tunnel over a MemoryTransport link).
import { p2pvmFactory } from '../p2pvm/framework-factory.js';
import { frameworkSuite } from './suite.js';

frameworkSuite(p2pvmFactory());
