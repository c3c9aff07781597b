/** A server with the file service and a connected client, over native TCP where it loads (else Node net). */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from '../../lib/framework/client.js';
import { Server } from '../../lib/framework/server.js';
import { filesClient, serveFiles, type FilesClient, type FileService, type FilesOptions } from '../../lib/files/index.js';
import { createTransport, transportAvailable } from '../../lib/transport/factory.js';
import type { Transport } from '../../lib/transport/types.js';

export interface Setup {
  dir: string;
  root: string;
  server: Server;
  service: FileService;
  port: number;
  transport: Transport;
  client: Client;
  files: FilesClient;
  newClient(): Promise<Client>;
  close(): Promise<void>;
}

export async function transportName(): Promise<'native' | 'node-net'> {
  return (await transportAvailable('native')) ? 'native' : 'node-net';
}

export async function setup(options: Partial<FilesOptions> = {}, serverOptions: ConstructorParameters<typeof Server>[0] = {}): Promise<Setup> {
  const dir = await mkdtemp(join(tmpdir(), 'zs-files-'));
  const root = join(dir, 'root');
  const server = new Server({ quiet: true, ...serverOptions });
  const service = await serveFiles(server, { root, ...options });
  const name = await transportName();
  const ep = await server.listen(await createTransport(name), { host: '127.0.0.1', port: 0 });
  const transport = await createTransport(name);
  const clients: Client[] = [];
  const newClient = async () => {
    const c = new Client({ transport, host: '127.0.0.1', port: ep.address.port, quiet: true });
    await c.connect();
    clients.push(c);
    return c;
  };
  const client = await newClient();
  return {
    dir,
    root,
    server,
    service,
    port: ep.address.port,
    transport,
    client,
    files: filesClient(client),
    newClient,
    async close() {
      for (const c of clients) await c.close();
      await transport.shutdown();
      await service.close();
      await server.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Writes `size` random bytes to `path` and returns them. */
export async function randomFile(path: string, size: number): Promise<Buffer> {
  const data = randomBytes(size);
  await writeFile(path, data);
  return data;
}
