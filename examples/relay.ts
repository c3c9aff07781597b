/**
 * A frame relay at the transport level: every frame a peer sends is passed on
 * to every other peer with `forwardFrame()`, which on the native TCP
 * transport copies each payload once, in C++, straight from the received
 * batch (no view, no JavaScript copy). The shape of a chat room or a pub/sub
 * fan-out that needs no framework. Three clients in this process; each says
 * one thing and prints what reaches it.
 *
 * Run: npx tsx examples/relay.ts   (uses Node net where the native addon is not built)
 */
import { createTransport, forwardFrame, type FrameBatch, type PeerId } from '../lib/index.js';

const server = await createTransport('native').catch(() => createTransport('node-net'));
const members = new Set<PeerId>();
server.on('open', (peer) => members.add(peer));
server.on('close', (peer) => members.delete(peer));
server.on('frames', (batch: FrameBatch) => {
  for (let i = 0; i < batch.count; i++) {
    for (const to of members) if (to !== batch.peers[i]) forwardFrame(server, batch, i, to);
  }
});
const at = await server.listen({ host: '127.0.0.1', port: 0 });
console.log(`relay (${server.name}) on ${at.host}:${at.port}`);

const client = await createTransport(server.name === 'native-tcp' ? 'native' : 'node-net');
const names = new Map<PeerId, string>();
const heard: string[] = [];
client.on('frames', (b: FrameBatch) => {
  for (let i = 0; i < b.count; i++) {
    const text = b.data.toString('utf8', b.offsets[i]!, b.offsets[i]! + b.lengths[i]!);
    heard.push(`${names.get(b.peers[i]!)} heard: ${text}`);
  }
});
for (const name of ['alice', 'bob', 'carol']) names.set(await client.connect(at), name);
while (members.size < 3) await new Promise((r) => setTimeout(r, 10));

for (const [peer, name] of names) client.send(peer, 8, 0, Buffer.from(`hello from ${name}`));
const deadline = Date.now() + 5000;
while (heard.length < 6 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
for (const line of heard.sort()) console.log(line);
await client.shutdown();
await server.shutdown();
if (heard.length !== 6) {
  console.error(`expected 6 relayed messages, got ${heard.length}`);
  process.exit(1);
}
