import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConnectError } from '../../lib/errors.js';
import { NodeNetTransport } from '../../lib/transport/node-net.js';
import { runTransportSuite } from './suite.js';

runTransportSuite('NodeNetTransport', () => new NodeNetTransport(), { sockets: true });

describe('NodeNetTransport specifics', () => {
  it('checks its own options and refuses reusePort on a Node without it', () => {
    assert.throws(() => new NodeNetTransport({ backlog: 0 }), { name: 'RangeError', message: /^backlog must be/ });
    const [major = 0, minor = 0] = process.versions.node.split('.').map(Number);
    if (major < 22 || (major === 22 && minor < 12)) {
      assert.throws(() => new NodeNetTransport({ reusePort: true }), { name: 'RangeError', message: /^reusePort needs Node 22.12/ });
    } else {
      assert.equal(new NodeNetTransport({ reusePort: true }).name, 'node-net');
    }
  });

  it('a port already in use fails listen() with ConnectError; bad endpoints name the argument', async () => {
    const a = new NodeNetTransport();
    const b = new NodeNetTransport();
    const at = await a.listen({ host: '127.0.0.1', port: 0 });
    await assert.rejects(b.listen(at), ConnectError);
    await assert.rejects(b.connect({ host: '127.0.0.1', port: 0 }), { name: 'RangeError', message: /^endpoint.port must be/ });
    await assert.rejects(b.connect(at, { timeout: 0 }), { name: 'RangeError', message: /^timeout must be/ });
    await a.shutdown();
    await b.shutdown();
  });
});
