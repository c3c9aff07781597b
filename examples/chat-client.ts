/**
 * A chat client for examples/chat-server.ts: type a line to say it, `/who`
 * to list who is online, Ctrl-D to leave. Reconnects if the server restarts.
 * Run: npx tsx examples/chat-client.ts <name> [--transport native|node-net] [--port 9819]
 */
import { createInterface } from 'node:readline';
import { Client, DataFrame, createTransport, type TransportName } from '../lib/index.js';

const arg = (name: string, fallback: string) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1]! : fallback;
};
const name = process.argv[2] && !process.argv[2].startsWith('--') ? process.argv[2] : `guest${process.pid % 1000}`;

const transport = await createTransport(arg('--transport', 'node-net') as TransportName);
const client = new Client({ transport, host: '127.0.0.1', port: Number(arg('--port', '9819')), reconnect: true });

// The server pushes chat lines to this direct console command.
client.directConsole('chat', (line) => console.log(line));

// Log in on every (re)connect.
client.on('connect', () => {
  client.callConsole('login', name).then(console.log, (err: Error) => console.error(err.message));
});
let leaving = false;
client.on('disconnect', (reason) => leaving || console.log(`(disconnected: ${reason}; reconnecting)`));

await client.connect();

const input = createInterface({ input: process.stdin });
for await (const line of input) {
  if (line === '/who') {
    const names = await client.call('who', new DataFrame()).catch(() => undefined);
    const list: string[] = [];
    while (names && !names.eof) list.push(names.readString());
    console.log(`online: ${list.join(', ')}`);
  } else if (line.trim() !== '' && client.connected) {
    client.sendConsole('say', line);
  }
}
leaving = true;
await client.close();
await transport.shutdown();
