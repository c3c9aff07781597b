/**
 * A chat server: clients log in with a name, say things, and everyone else
 * hears them; `who` lists who is online.
 * Run: npx tsx examples/chat-server.ts [--transport native|node-net] [--port 9819]
 * Then, in other terminals: npx tsx examples/chat-client.ts <name> [--port 9819]
 */
import { DataFrame, Server, createTransport, type Peer, type TransportName } from '../lib/index.js';

const arg = (name: string, fallback: string) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1]! : fallback;
};

interface Member {
  name: string;
}
const nameOf = (peer: Peer) => (peer.userData as Member | undefined)?.name;

const server = new Server();

// login: console command, answers a greeting. The name is kept as the peer's user data.
server.console('login', (name, peer) => {
  if (!/^\w{1,20}$/.test(name)) throw Object.assign(new Error('names are 1-20 letters or digits'), { code: 'BAD_NAME' });
  peer.userData = { name } satisfies Member;
  server.broadcastConsole('chat', `* ${name} joined`, (p) => p !== peer && nameOf(p) !== undefined);
  return `welcome, ${name}; ${server.count} online`;
});

// say: direct console (no answer); pushed to every other logged-in peer.
server.directConsole('say', (text, peer) => {
  const name = nameOf(peer);
  if (name === undefined) return;
  server.broadcastConsole('chat', `${name}: ${text}`, (p) => p !== peer && nameOf(p) !== undefined);
});

// who: stream command, answers the names as a DataFrame of strings.
server.stream('who', () => {
  const names = new DataFrame();
  server.forEachPeer((p) => void (nameOf(p) && names.writeString(nameOf(p)!)));
  return names;
});

server.on('disconnect', (peer) => {
  const name = nameOf(peer);
  if (name) server.broadcastConsole('chat', `* ${name} left`, (p) => nameOf(p) !== undefined);
});

const transport = await createTransport(arg('--transport', 'node-net') as TransportName);
const ep = await server.listen(transport, { host: '127.0.0.1', port: Number(arg('--port', '9819')) });
console.log(`chat server on ${ep.address.host}:${ep.address.port} over ${transport.name}; Ctrl-C stops it`);
process.once('SIGINT', () => void server.close());
