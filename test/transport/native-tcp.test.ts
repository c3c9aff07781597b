// The transport conformance suite over NativeTcpTransport, in both of its modes:
// inline (libuv polls the epoll descriptor on the JS thread) and with an I/O thread.
import { NativeTcpTransport } from '../../lib/transport/native-tcp.js';
import { runTransportSuite } from './suite.js';

runTransportSuite('NativeTcpTransport (inline)', () => new NativeTcpTransport(), { sockets: true });
runTransportSuite('NativeTcpTransport (I/O thread)', () => new NativeTcpTransport({ ioThread: true }), { sockets: true });
