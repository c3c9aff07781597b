/**
 * The file service: a server that serves a directory (sandboxed, with a quota), and a client that
 * uploads a file, lists it, starts a download over 3 connections, stops it half-way (as Ctrl-C or
 * a dropped link would), and resumes it: the part already on disk is checked against the server's
 * hash of the same range and kept, and the whole file is verified at the end. Over native TCP on
 * 127.0.0.1, in a temporary directory.
 *
 * Run: npx tsx examples/files.ts
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, createTransport, filesClient, RemoteError, Server, serveFiles } from '../lib/index.js';

const dir = await mkdtemp(join(tmpdir(), 'zs-example-files-'));
const server = new Server({ quiet: true });
// Every name a client sends is relative to root; the root may hold at most 100 MB.
const service = await serveFiles(server, { root: join(dir, 'served'), quota: 100e6 });
const ep = await server.listen(await createTransport('native'), { host: '127.0.0.1', port: 0 });

const client = new Client({ transport: await createTransport('native'), host: '127.0.0.1', port: ep.address.port, quiet: true });
await client.connect();
const files = filesClient(client);

// Upload: written under a hidden temporary name, renamed into place once its hash checks out.
const local = join(dir, 'report.bin');
await writeFile(local, randomBytes(8 * 1024 * 1024));
await files.mkdir('reports/2026');
const up = await files.upload(local, 'reports/2026/report.bin');
console.log(`uploaded reports/2026/report.bin: ${up.size} bytes, xxh64 ${up.hash}`);
for (const e of (await files.list('reports/2026')).entries) console.log(`listing: ${e.name} (${e.type}, ${e.size} bytes)`);

// A download over 3 connections, stopped once 4 MiB are in.
const out = join(dir, 'copy.bin');
const stop = new AbortController();
const onProgress = (p: { done: number }) => {
  if (p.done >= 4 * 1024 * 1024) stop.abort();
};
await files.download('reports/2026/report.bin', out, { connections: 3, onProgress, signal: stop.signal }).catch(() => {});
console.log('download stopped half-way');

// The same call again resumes it.
const down = await files.download('reports/2026/report.bin', out, { connections: 3 });
const same = (await readFile(out)).equals(await readFile(local));
console.log(`resumed from ${down.resumedFrom > 0 ? 'the verified part' : 'the start'} over 3 connections; hash ${down.hash}, same bytes: ${same}`);

// The sandbox: names are relative and cannot leave the root.
for (const name of ['../outside.txt', '/etc/passwd']) {
  const code = await files.stat(name).then(
    () => 'served?!',
    (err: unknown) => (err instanceof RemoteError ? err.remoteCode : String(err)),
  );
  console.log(`stat ${JSON.stringify(name)}: ${code}`);
}

await client.close();
await service.close();
await server.close();
await rm(dir, { recursive: true, force: true });
