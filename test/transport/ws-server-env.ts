// Imported first by ws-server.test.ts: makes ws-helpers.ts's ServerUnderTest WsServerTransport in
// that test process, so uws.test.ts and uws-faults.test.ts run there against the `ws` server.
// (ESM evaluates imports before the importing module's body, so the switch must be a module.)
process.env.ZSERVER_WS_SERVER = 'ws';
