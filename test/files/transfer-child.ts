/**
 * Child process of kill.test.ts: runs one download or upload against a file server and kills itself
 * with SIGKILL (no cleanup of any kind runs) once `killAt` bytes are in place.
 * argv: mode ('download' | 'upload'), port, remote, local, connections, killAt.
 */
import { Client } from '../../lib/framework/client.js';
import { filesClient } from '../../lib/files/index.js';
import { createTransport } from '../../lib/transport/factory.js';
import { transportName } from './helpers.js';

const [mode, port, remote, local, connections, killAt] = process.argv.slice(2);
const transport = await createTransport(await transportName());
const client = new Client({ transport, host: '127.0.0.1', port: Number(port), quiet: true });
await client.connect();
const files = filesClient(client);
const onProgress = (p: { done: number }) => {
  if (p.done >= Number(killAt)) process.kill(process.pid, 'SIGKILL');
};
const opts = { connections: Number(connections), chunkSize: 32 * 1024, inFlight: 2, onProgress };
if (mode === 'download') await files.download(remote!, local!, opts);
else await files.upload(local!, remote!, opts);
process.stdout.write('finished without being killed\n');
process.exit(3);
