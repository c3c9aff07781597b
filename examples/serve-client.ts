/**
 * Calls each built-in command of `zserver serve` (npm start) once.
 * Run: npx tsx examples/serve-client.ts [--transport native|node-net] [--host 127.0.0.1] [--port 9818]
 */
import { Client, DataFrame, createTransport, type TransportName } from '../lib/index.js';

const arg = (name: string, fallback: string) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1]! : fallback;
};
const transport = await createTransport(arg('--transport', 'node-net') as TransportName);
const client = new Client({ transport, host: arg('--host', '127.0.0.1'), port: Number(arg('--port', '9818')) });
await client.connect();

console.log('echo      ->', await client.callConsole('echo', 'hello'));
console.log('add       ->', (await client.call('add', new DataFrame().writeInt32(40).writeInt32(2))).readInt32());
console.log('md5       ->', (await client.callBuffer('md5', Buffer.from('abc'))).toString('hex'));
const reply = await client.sendBigStream('upload', Buffer.alloc(32 * 1024 * 1024), {
  onProgress: (sent, total) => sent === total && console.log(`upload    -> sent ${total} bytes`),
});
console.log('upload    ->', `${reply.readUInt64()} bytes in ${reply.readFloat64().toFixed(1)} ms on the server`);
client.sendConsole('log', 'hello from serve-client');
client.send('log-frame', new DataFrame().writeString('a frame').writeInt64(1n << 40n));
console.log('stats     ->', JSON.parse(await client.callConsole('stats', '')).commands.echo);

await client.close();
await transport.shutdown();
