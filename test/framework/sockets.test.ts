/**
 * The framework suite over the socket transports, found by name through
 * lib/transport/factory.ts: native TCP, Node net and the WebSocket servers
 * (uWebSockets.js where its binary loads, the `ws` package everywhere),
 * whichever this build and this Node have. A transport that is not available
 * is checked to be reported as such.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createTransport, transportAvailable, TransportUnavailableError } from '../../lib/transport/factory.js';
import type { Transport } from '../../lib/transport/types.js';
import { freePort } from '../browser/page-server.js';
import { frameworkSuite } from './suite.js';

for (const name of ['native', 'node-net', 'uws', 'ws'] as const) {
  if (await transportAvailable(name)) {
    const probe = await createTransport(name);
    const Ctor = probe.constructor as new () => Transport;
    await probe.shutdown();
    frameworkSuite({
      name: `${probe.name} (createTransport('${name}'))`,
      host: '127.0.0.1',
      create: () => new Ctor(),
      // uWS sets SO_REUSEADDR only on a port other than 0 (see TransportFactory.restartPort).
      ...(name === 'uws' ? { restartPort: freePort } : {}),
    });
  } else {
    describe(`framework over '${name}'`, () => {
      it('is reported as unavailable (not built, or no binary for this Node)', async () => {
        await assert.rejects(createTransport(name), TransportUnavailableError);
      });
    });
  }
}
