/**
 * `zserver serve` (and `npm start`): a server on 127.0.0.1:9818 with built-in
 * test commands of every kind, for trying the framework from another process
 * or another language. Prints what it listens on and how to try it.
 *
 *   zserver serve [--transport native|node-net|memory] [--host 127.0.0.1] [--port 9818] [--once]
 *
 * Over `memory` nothing outside this process can connect, so serve runs a
 * demo client in-process and prints its calls. `--once` exits after the demo
 * (with any transport): used by tests.
 */
import { Client } from '../framework/client.js';
import { Server } from '../framework/server.js';
import { md5 } from '../hash.js';
import { DataFrame } from '../protocol/dataframe.js';
import { createTransport, transportAvailable, type TransportName } from '../transport/factory.js';

interface ServeArgs {
  transport: TransportName | undefined;
  host: string;
  port: number;
  once: boolean;
}

function parse(args: string[]): ServeArgs {
  const out: ServeArgs = { transport: undefined, host: '127.0.0.1', port: 9818, once: false };
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const value = () => {
      const v = args[++i];
      if (v === undefined) throw new RangeError(`${a} needs a value`);
      return v;
    };
    if (a === '--transport') {
      const v = value();
      if (v !== 'native' && v !== 'node-net' && v !== 'memory') throw new RangeError(`--transport must be native, node-net or memory, got '${v}'`);
      out.transport = v;
    } else if (a === '--port') {
      out.port = Number(value());
      if (!Number.isInteger(out.port) || out.port < 0 || out.port > 65535) throw new RangeError('--port must be an integer from 0 to 65535');
    } else if (a === '--host') out.host = value();
    else if (a === '--once') out.once = true;
    else throw new RangeError(`unknown option '${a}' (serve takes --transport, --host, --port, --once)`);
  }
  return out;
}

/** The server with one test command of every kind. */
export function createTestServer(): Server {
  const server = new Server();
  server.console('echo', (text) => text);
  server.console('stats', () => JSON.stringify(server.stats(), null, 1));
  server.stream('add', (df) => new DataFrame().writeInt32(df.readInt32() + df.readInt32()));
  server.stream('echo-frame', (df) => df);
  server.directConsole('log', (text, peer) => void process.stdout.write(`[peer ${peer.id}] ${text}\n`));
  server.directStream('log-frame', (df, peer) => void process.stdout.write(`[peer ${peer.id}] ${JSON.stringify(df)}\n`));
  server.buffer('md5', (data) => md5(data));
  server.bigStream('upload', async (stream) => {
    const started = performance.now();
    for await (const _chunk of stream);
    return new DataFrame().writeUInt64(BigInt(stream.consumed)).writeFloat64(performance.now() - started);
  });
  return server;
}

async function demo(client: Client): Promise<void> {
  const say = (s: string) => process.stdout.write(`  ${s}\n`);
  say(`echo('hello')              -> ${await client.callConsole('echo', 'hello')}`);
  say(`add(40, 2)                 -> ${(await client.call('add', new DataFrame().writeInt32(40).writeInt32(2))).readInt32()}`);
  say(`md5(buffer 'abc')          -> ${(await client.callBuffer('md5', Buffer.from('abc'))).toString('hex')}`);
  const up = await client.sendBigStream('upload', Buffer.alloc(8 * 1024 * 1024));
  say(`upload(8 MiB big stream)   -> ${up.readUInt64()} bytes`);
  client.sendConsole('log', 'a direct console message');
  await client.callConsole('echo', 'sync');
}

/** Runs the server until SIGINT/SIGTERM; resolves to the exit code. */
export async function runServe(args: string[]): Promise<number> {
  // A group of worker processes sharing one port (SO_REUSEPORT) is the native echo group.
  if (args.includes('--workers') || args.includes('--worker')) return (await import('./serve-group.js')).runServeGroup(args);
  const opts = parse(args);
  let name = opts.transport;
  if (name === undefined) {
    if (await transportAvailable('native')) name = 'native';
    else if (await transportAvailable('node-net')) name = 'node-net';
    else {
      name = 'memory';
      process.stdout.write('zserver serve: no socket transport is built here (native, node-net); serving in-process over memory.\n');
    }
  }
  const transport = await createTransport(name);
  const server = createTestServer();
  const ep = await server.listen(transport, { host: opts.host, port: opts.port });
  process.stdout.write(
    `zserver serve: listening on ${ep.address.host}:${ep.address.port} over ${transport.name}\n` +
      `commands: ${server.commandNames().join(', ')}\n`,
  );
  if (name === 'memory' || opts.once) {
    process.stdout.write(name === 'memory' ? 'in-process demo client:\n' : 'self-test client:\n');
    const clientTransport = name === 'memory' ? transport : await createTransport(name);
    const client = new Client({ transport: clientTransport, host: ep.address.host, port: ep.address.port });
    await client.connect();
    await demo(client);
    await client.close();
    if (clientTransport !== transport) await clientTransport.shutdown();
  } else {
    process.stdout.write(
      `try it from another terminal:\n` +
        `  npx tsx examples/serve-client.ts --transport ${name} --host ${ep.address.host} --port ${ep.address.port}\n` +
        `stop with Ctrl-C\n`,
    );
  }
  if (!opts.once) {
    await new Promise<void>((resolve) => {
      process.once('SIGINT', resolve);
      process.once('SIGTERM', resolve);
    });
  }
  await server.close();
  process.stdout.write('zserver serve: stopped\n');
  return 0;
}
