/**
 * The server of kill.test.ts: Sessions on a SQLite file, a public `post` command that stores a
 * message for 'bob' and answers once it is durable. Usage: kill-child.ts <port> <db path>.
 */
import { Server } from '../../lib/framework/server.js';
import { Sessions } from '../../lib/session/sessions.js';
import { SqliteSessionStore } from '../../lib/session/sqlite.js';
import { createTransport } from '../../lib/transport/factory.js';
import { UserExistsError } from '../../lib/errors.js';
import { TEST_COST } from './helpers.js';

const [port, path] = process.argv.slice(2);
const server = new Server({ quiet: true });
const sessions = new Sessions(server, { store: new SqliteSessionStore({ path: path! }), scrypt: TEST_COST, offlineWindow: 4, maxOfflinePerUser: 100_000 });
try {
  await sessions.createUser('bob', 'pw');
} catch (err) {
  if (!(err instanceof UserExistsError)) throw err;
}
server.stream('post', async (df) => {
  const result = await sessions.sendTo('bob', 'm', df);
  if (result !== 'stored') throw new Error(`expected the message stored, got ${result}`);
}, { public: true });
await server.listen(await createTransport('node-net'), { host: '127.0.0.1', port: Number(port) });
process.stdout.write('listening\n');
