/**
 * The built-in test app of `zserver serve` (the default when no app module is given, and what
 * `npm start` serves): one test command of every kind, for trying the framework from another
 * process or another language. Written to the app contract of serve-app.ts like any user app.
 *
 * `config.app.quiet: true` keeps the direct `log` commands from printing (load tests).
 */
import type { Server } from '../../framework/server.js';
import { md5 } from '../../hash.js';
import { DataFrame } from '../../protocol/dataframe.js';
import type { ServeConfig } from '../serve-app.js';

/** Registers echo, stats, add, echo-frame, log, log-frame, md5, upload and say on `server`. */
export default function setup(server: Server, config: ServeConfig): void {
  const quiet = config.app.quiet === true;
  const print = (line: string): void => {
    if (!quiet) process.stdout.write(line);
  };
  server.console('echo', (text) => text);
  server.console('stats', () => JSON.stringify(server.stats(), null, 1));
  server.stream('add', (df) => new DataFrame().writeInt32(df.readInt32() + df.readInt32()));
  server.stream('echo-frame', (df) => df);
  server.directConsole('log', (text, peer) => print(`[peer ${peer.id}] ${text}\n`));
  server.directStream('log-frame', (df, peer) => print(`[peer ${peer.id}] ${JSON.stringify(df)}\n`));
  server.buffer('md5', (data) => md5(data));
  server.bigStream('upload', async (stream) => {
    const started = performance.now();
    for await (const _chunk of stream);
    return new DataFrame().writeUInt64(BigInt(stream.consumed)).writeFloat64(performance.now() - started);
  });
  // The chat of examples/web: what one peer says, the server pushes to every peer of every endpoint.
  server.directConsole('say', (text, peer) => void server.broadcastConsole('said', `[peer ${peer.id}] ${text}`));
  // Which worker answered: lets a client (and the group tests) see the load spread and restarts.
  server.console('whoami', () => JSON.stringify({ worker: config.worker, workers: config.workers, pid: process.pid, bus: config.nats !== undefined }));
}
