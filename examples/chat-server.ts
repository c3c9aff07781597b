/**
 * A chat server with real users (lib/session, docs/session.md): clients register and log in
 * with a password (kept as a salted scrypt record in SQLite), say things that every logged-in
 * user hears, and `tell` one user privately; a private message to a user who is away is kept
 * in the database and delivered at their next login, even after a server restart. Only
 * register/login work before login. A dropped link resumes the same session for 30 s.
 * Run: npx tsx examples/chat-server.ts [--transport native|node-net] [--port 9819] [--db chat.db]
 * Then, in other terminals: npx tsx examples/chat-client.ts <name> <password> [--port 9819]
 */
import { DataFrame, Server, Sessions, SqliteSessionStore, createTransport, type Peer, type TransportName } from '../lib/index.js';

const arg = (name: string, fallback: string) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1]! : fallback;
};

const server = new Server();
const store = new SqliteSessionStore({ path: arg('--db', 'chat.db') });
// Guards every command registered below: without { public: true } it needs a logged-in user.
const sessions = new Sessions(server, { store, resume: { ttl: 30_000 } });
const userOf = (peer: Peer) => sessions.session(peer)?.user;
const everyoneBut = (peer: Peer | null) => (p: Peer) => p !== peer && userOf(p) !== undefined;

// say: direct console (no answer); pushed to every other logged-in peer.
server.directConsole('say', (text, peer) => {
  server.broadcastConsole('chat', `${userOf(peer)}: ${text}`, everyoneBut(peer));
});

// tell: `<user> <text>`, a private message; live if the user is logged in, else stored.
server.console('tell', async (line, peer) => {
  const [to = '', ...words] = line.split(' ');
  const body = new DataFrame().writeString(userOf(peer)!).writeString(words.join(' '));
  const how = await sessions.sendTo(to, 'tell', body);
  return how === 'live' ? `told ${to}` : how === 'stored' ? `${to} is away; they get it at their next login` : `no user '${to}'`;
});

// who: stream command, answers the logged-in names as a DataFrame of strings.
server.stream('who', () => {
  const names = new DataFrame();
  for (const name of new Set([...server.peers()].map(userOf).filter((n) => n !== undefined))) names.writeString(name);
  return names;
});

// Joins and leaves. The guard (the first middleware) has run the login when next() resolves;
// the name is kept as the peer's userData too, for the leave notice (by then Sessions has let
// go of the connection).
server.use(async (ctx, next) => {
  const out = await next();
  if (ctx.name === 'zs.login') {
    ctx.peer.userData = userOf(ctx.peer);
    server.broadcastConsole('chat', `* ${userOf(ctx.peer)} joined`, everyoneBut(ctx.peer));
  }
  return out;
});
server.on('disconnect', (peer) => {
  if (typeof peer.userData === 'string') server.broadcastConsole('chat', `* ${peer.userData} left`, everyoneBut(peer));
});

const transport = await createTransport(arg('--transport', 'node-net') as TransportName);
const ep = await server.listen(transport, { host: '127.0.0.1', port: Number(arg('--port', '9819')) });
console.log(`chat server on ${ep.address.host}:${ep.address.port} over ${transport.name}, users in ${arg('--db', 'chat.db')}; Ctrl-C stops it`);
process.once('SIGINT', () => void server.close().then(() => store.close()));
