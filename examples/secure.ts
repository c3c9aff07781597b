/**
 * A secure channel in one process: a server with an Ed25519 identity, a client
 * that pins its fingerprint, and an echo. Over MemoryTransport here; any other
 * Transport (Node net, native TCP, WebSocket) is wrapped the same way.
 *
 * Run: npx tsx examples/secure.ts
 */
import { randomBytes } from 'node:crypto';
import { MemoryTransport, SecureChannel, ServerIdentity } from '../lib/index.js';

// In production: `zserver keygen --out server.key`, then ServerIdentity.from(readFileSync('server.key', 'utf8')).
const identity = ServerIdentity.from(randomBytes(32));
console.log(`server fingerprint: ${identity.fingerprint}`);

const server = new SecureChannel(new MemoryTransport(), { identity });
server.on('frames', (batch) => {
  for (let i = 0; i < batch.count; i++) {
    const payload = batch.data.subarray(batch.offsets[i]!, batch.offsets[i]! + batch.lengths[i]!);
    server.send(batch.peers[i]!, batch.kinds[i]!, 0, payload); // echo (send copies the payload)
  }
});
const endpoint = await server.listen({ host: 'example', port: 0 });

const client = new SecureChannel(new MemoryTransport(), { pin: identity.fingerprint });
const peer = await client.connect(endpoint);
console.log(`connected; server identity verified: ${client.remoteFingerprint(peer) === identity.fingerprint}`);
const reply = new Promise<string>((resolve) =>
  client.once('frames', (b) => resolve(b.data.subarray(b.offsets[0]!, b.offsets[0]! + b.lengths[0]!).toString())),
);
client.send(peer, 8, 0, Buffer.from('hello over an encrypted channel'));
console.log(`echo: ${await reply}`);

await client.shutdown();
await server.shutdown();
identity.close();
