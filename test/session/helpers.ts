/** Shared set-up of the session tests: a Server with Sessions on Node net, and clients for it. */
import { Client } from '../../lib/framework/client.js';
import { Server } from '../../lib/framework/server.js';
import { SessionClient } from '../../lib/session/client.js';
import { Sessions, type SessionsOptions } from '../../lib/session/sessions.js';
import { SqliteSessionStore } from '../../lib/session/sqlite.js';
import { createTransport } from '../../lib/transport/factory.js';

/** A cheap scrypt cost, so tests spend their time on behaviour, not on hashing. */
export const TEST_COST = { N: 1024, r: 8, p: 1 };

export interface Rig {
  server: Server;
  sessions: Sessions;
  store: SqliteSessionStore;
  port: number;
  client(): Promise<SessionClient>;
  close(): Promise<void>;
}

export async function rig(options: Partial<SessionsOptions> = {}, path = ':memory:'): Promise<Rig> {
  const server = new Server({ quiet: true });
  const store = new SqliteSessionStore({ path });
  const sessions = new Sessions(server, { scrypt: TEST_COST, ...options, store });
  const transport = await createTransport('node-net');
  const ep = await server.listen(transport, { host: '127.0.0.1', port: 0 });
  const clients: Client[] = [];
  return {
    server,
    sessions,
    store,
    port: ep.address.port,
    async client() {
      const c = new Client({ transport, host: '127.0.0.1', port: ep.address.port, quiet: true });
      clients.push(c);
      const sc = new SessionClient(c);
      await c.connect();
      return sc;
    },
    async close() {
      for (const c of clients) await c.close();
      await server.close();
      store.close();
    },
  };
}

/** Resolves when `check()` is true, polling; rejects after `ms`. */
export async function until(check: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}
