/**
 * A chat client for examples/chat-server.ts: logs in as <name> (registering the name the first
 * time), then: type a line to say it, `/tell <user> <text>` to tell one user (kept for them if
 * they are away), `/who` to list who is online, Ctrl-D to leave. Private messages sent while
 * you were away arrive at login, marked "(while you were away)". A dropped link reconnects
 * and resumes the same session by itself.
 * Run: npx tsx examples/chat-client.ts <name> <password> [--transport native|node-net] [--port 9819]
 */
import { createInterface } from 'node:readline';
import { Client, DataFrame, SessionClient, createTransport, type TransportName } from '../lib/index.js';

const arg = (name: string, fallback: string) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1]! : fallback;
};
const [name, password] = process.argv.slice(2);
if (!name || !password || name.startsWith('--')) {
  console.error('usage: chat-client.ts <name> <password> [--transport native|node-net] [--port 9819]');
  process.exit(2);
}

const transport = await createTransport(arg('--transport', 'node-net') as TransportName);
const client = new Client({ transport, host: '127.0.0.1', port: Number(arg('--port', '9819')), reconnect: { initialDelay: 100, maxDelay: 2000 } });
const me = new SessionClient(client);

// The server pushes chat lines to this direct console command.
client.directConsole('chat', (line) => console.log(line));
// Private messages: live, resumed after a dropped link, or stored while this user was away.
me.on('message', (m) => {
  if (m.name !== 'tell') return;
  const from = m.body.readString();
  const text = m.body.readString();
  console.log(`[${from} → you${m.stored ? `, ${new Date(m.sentAt).toLocaleString()} while you were away` : ''}] ${text}`);
});
me.on('kicked', (reason) => console.log(`(the server ended this session: ${reason})`));
me.on('resumed', () => console.log('(reconnected; session resumed)'));
me.on('expired', () => void me.login(name, password).catch((err: Error) => console.error(err.message)));

await client.connect();
try {
  await me.register(name, password);
  console.log(`registered ${name}`);
} catch (err) {
  if ((err as { remoteCode?: string }).remoteCode !== 'ZS_USER_EXISTS') throw err;
}
await me.login(name, password);
console.log(`logged in as ${name}; /tell <user> <text>, /who, Ctrl-D leaves`);

const input = createInterface({ input: process.stdin });
for await (const line of input) {
  if (line === '/who') {
    const names = await client.call('who', new DataFrame()).catch(() => undefined);
    const list: string[] = [];
    while (names && !names.eof) list.push(names.readString());
    console.log(`online: ${list.join(', ')}`);
  } else if (line.startsWith('/tell ')) {
    console.log(await client.callConsole('tell', line.slice(6)).catch((err: Error) => err.message));
  } else if (line.trim() !== '' && client.connected) {
    client.sendConsole('say', line);
  }
}
await me.logout().catch(() => undefined);
await client.close();
await transport.shutdown();
