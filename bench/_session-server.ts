/**
 * The server of bench/session.ts, a child process: Sessions (resume on, an in-memory SQLite
 * store) on native TCP, an `echo` console command for logged-in users, and `later` (push one
 * message to the caller's user after a delay). `users` users `s0…` with a cheap scrypt record
 * (they only need to be logged in) and `storm` users `k0…` with the default cost (the login
 * storm measures those). Prints `port N` once listening; exits when stdin closes.
 */
import { Server, Sessions, SqliteSessionStore, DataFrame, hashPassword, createTransport } from '../lib/index.js';

const [users, storm] = process.argv.slice(2).map(Number) as [number, number];
const store = new SqliteSessionStore();
const cheap = await hashPassword('pw', { N: 16, r: 1, p: 1 });
for (let i = 0; i < users; i++) await store.createUser({ name: `s${i}`, password: cheap, roles: [], created: 0 });
const server = new Server({ quiet: true });
const sessions = new Sessions(server, { store, resume: { ttl: 60_000 }, login: { perIp: 1e9, maxPending: 1e6, registrationsPerIp: 1e9 } });
// The storm's records are made by the server itself at the default cost, before it listens.
await Promise.all(Array.from({ length: storm }, (_, i) => sessions.createUser(`k${i}`, 'pw')));
server.console('echo', (text) => text);
server.console('later', (text, peer) => {
  const user = sessions.session(peer)!.user;
  setTimeout(() => void sessions.sendTo(user, 'later', new DataFrame().writeString(text)), Number(text));
  return '';
});
const ep = await server.listen(await createTransport('native'), { host: '127.0.0.1', port: 0 });
process.stdout.write(`port ${ep.address.port}\n`);
process.stdin.resume();
process.stdin.on('end', () => process.exit(0));
setTimeout(() => process.exit(2), 20 * 60_000).unref();
