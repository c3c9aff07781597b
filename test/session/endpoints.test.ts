/** Per-endpoint command sets (lib/session/endpoints.ts): one port serves only its commands. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RemoteError } from '../../lib/errors.js';
import { Client } from '../../lib/framework/client.js';
import { Server } from '../../lib/framework/server.js';
import { endpointCommands } from '../../lib/session/endpoints.js';
import { SessionClient } from '../../lib/session/client.js';
import { Sessions } from '../../lib/session/sessions.js';
import { SqliteSessionStore } from '../../lib/session/sqlite.js';
import { createTransport } from '../../lib/transport/factory.js';
import { TEST_COST } from './helpers.js';

describe('endpointCommands', () => {
  it('a restricted endpoint answers only its commands (ZS_FORBIDDEN otherwise); another endpoint is not affected; login works on both', async () => {
    const server = new Server({ quiet: true });
    const store = new SqliteSessionStore();
    const sessions = new Sessions(server, { store, scrypt: TEST_COST, multipleLogins: true });
    server.console('play', () => 'played');
    server.console('ban', () => 'banned');
    const publicTransport = await createTransport('node-net');
    const adminTransport = await createTransport('node-net');
    const pub = await server.listen(publicTransport, { host: '127.0.0.1', port: 0 });
    const admin = await server.listen(adminTransport, { host: '127.0.0.1', port: 0 });
    server.use(endpointCommands(pub, ['play']));
    const clientTransport = await createTransport('node-net');
    const clients: Client[] = [];
    const login = async (port: number) => {
      const c = new Client({ transport: clientTransport, host: '127.0.0.1', port, quiet: true });
      clients.push(c);
      await c.connect();
      await new SessionClient(c).login('u', 'pw');
      return c;
    };
    try {
      await sessions.createUser('u', 'pw');
      const p = await login(pub.address.port);
      const a = await login(admin.address.port);
      assert.equal(await p.callConsole('play', ''), 'played');
      await assert.rejects(p.callConsole('ban', ''), (e) => e instanceof RemoteError && e.remoteCode === 'ZS_FORBIDDEN' && /not served/.test(e.message));
      assert.equal(await a.callConsole('ban', ''), 'banned');
      assert.equal(await a.callConsole('play', ''), 'played');
    } finally {
      for (const c of clients) await c.close();
      await server.close();
      store.close();
      for (const t of [publicTransport, adminTransport, clientTransport]) await t.shutdown();
    }
  });
});
