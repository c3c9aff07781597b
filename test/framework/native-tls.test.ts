/**
 * The framework suite (commands, streams, big buffers, reconnects...) over the
 * native TCP transport with TLS in its loop, in both loop modes.
 */
import { TlsTransport } from '../transport/native-tls-helpers.js';
import { frameworkSuite } from './suite.js';

frameworkSuite({ name: 'native-tcp over TLS (inline)', host: '127.0.0.1', create: () => new TlsTransport() });
frameworkSuite({ name: 'native-tcp over TLS (I/O thread)', host: '127.0.0.1', create: () => new TlsTransport({ ioThread: true }) });
