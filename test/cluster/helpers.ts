/**
 * Test helpers of the cluster: a Server on the memory transport and framework clients that
 * record every pushed message, so a test can tell which peers a room message or a broadcast
 * reached.
 */
import { Client } from '../../lib/framework/client.js';
import type { Peer } from '../../lib/framework/peer.js';
import { Server } from '../../lib/framework/server.js';
import { DataFrame } from '../../lib/protocol/dataframe.js';
import { MemoryTransport } from '../../lib/transport/memory.js';

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `cond` every few ms; throws after `ms`. */
export async function until(cond: () => boolean | Promise<boolean>, what: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`${what}: not met within ${ms} ms`);
    await sleep(5);
  }
}

/** A client that records what the server pushes: `got` holds `cmd:text` per message (a stream's first string). */
export interface Recorder {
  client: Client;
  /** Its peer on the server side. */
  peer: Peer;
  got: string[];
}

/** A server on the memory transport whose 'connect' peers are handed to `onPeer`. */
export async function memoryServer(server = new Server({ quiet: true })): Promise<{ server: Server; port: number }> {
  const ep = await server.listen(new MemoryTransport(), { host: 'mem', port: 0 });
  return { server, port: ep.address.port };
}

/** Connects a recording client to `server` on `port`; resolves with it and its server-side peer. */
export async function recorder(server: Server, port: number): Promise<Recorder> {
  const client = new Client({ transport: new MemoryTransport(), host: 'mem', port, quiet: true });
  const got: string[] = [];
  client.directStream('push', (df) => void got.push(`push:${df.readString()}`));
  client.directConsole('say', (text) => void got.push(`say:${text}`));
  client.buffer('blob', (data) => void got.push(`blob:${Buffer.from(data).toString()}`));
  client.console('echo', (text) => `echo:${text}`);
  client.stream('double', (df) => new DataFrame().writeInt32(df.readInt32() * 2));
  client.console('fail', () => {
    throw new Error('handler failed on purpose');
  });
  const before = new Set([...server.peers()].map((p) => p.id));
  await client.connect();
  await until(() => [...server.peers()].some((p) => !before.has(p.id)), 'server saw the client');
  const peer = [...server.peers()].find((p) => !before.has(p.id))!;
  return { client, peer, got };
}

export function frame(text: string): DataFrame {
  return new DataFrame().writeString(text);
}
