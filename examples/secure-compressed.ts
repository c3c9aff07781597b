/**
 * The command framework with the secure channel and frame compression as
 * endpoint options: the server has an Ed25519 identity, the client pins it, and
 * both compress messages of 1 KiB or more before they are encrypted. Over Node
 * net on loopback; any other Transport takes the same options.
 *
 * Run: npx tsx examples/secure-compressed.ts
 */
import { randomBytes } from 'node:crypto';
import { Client, CompressionLayer, NodeNetTransport, Server, ServerIdentity } from '../lib/index.js';

// In production: `zserver keygen --out server.key`, then ServerIdentity.from(readFileSync('server.key', 'utf8')).
const identity = ServerIdentity.from(randomBytes(32));

const server = new Server();
server.console('echo', (text) => text);
const ep = await server.listen(new NodeNetTransport(), { host: '127.0.0.1', port: 0 }, { secure: { identity }, compression: {} });

const client = new Client({
  transport: new NodeNetTransport(),
  host: '127.0.0.1',
  port: ep.address.port,
  secure: { pin: identity.fingerprint },
  compression: { level: 'default' },
});
await client.connect();

const text = 'a message that repeats itself, '.repeat(200);
const back = await client.callConsole('echo', text);
console.log(`echoed ${back.length} characters intact: ${back === text}`);
const stats = (ep.stack as CompressionLayer).compressionStats();
console.log(`server: ${stats.framesDecompressed} message decompressed, ${stats.framesCompressed} compressed (${stats.bytesBeforeCompression} → ${stats.bytesAfterCompression} bytes)`);

await client.close();
await server.close();
await client.transport.shutdown();
identity.close();
