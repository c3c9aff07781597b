// The transport conformance suite over NativeWsTransport (WebSocket in the
// native loop), both ways (its own connect() and listen()), in both loop modes.
import { NativeWsTransport } from '../../lib/transport/native-ws.js';
import { runTransportSuite } from './suite.js';

runTransportSuite('NativeWsTransport (inline)', () => new NativeWsTransport(), { sockets: false });
runTransportSuite('NativeWsTransport (I/O thread)', () => new NativeWsTransport({ ioThread: true }), { sockets: false });
