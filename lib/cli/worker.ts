/**
 * `zserver worker <module> --nats URL`: runs a logic-tier worker (LogicWorker) whose
 * handlers a module registers. The module's default export (or its `register` export) is
 * called with the worker and uses the same methods as a Server:
 *
 *   export default function (worker) {
 *     worker.console('upper', (text, caller) => text.toUpperCase());
 *     worker.stream('add', (df) => new DataFrame().writeInt32(df.readInt32() + df.readInt32()), { durable: true });
 *   }
 *
 * SIGINT / SIGTERM stop taking requests and let running handlers finish before exit.
 */
import { pathToFileURL } from 'node:url';
import { resolve } from 'node:path';
import { LogicWorker } from '../logic/worker.js';

const HELP = `Usage: zserver worker <module> --nats URL [--concurrency N] [--name NAME]

Runs a logic-tier worker: a process that serves commands a zserver Server routes to NATS
(server.route(name, { via: tier, ... }), docs/logic-tier.md). <module> (.js, .mjs, or .ts when
run under tsx) exports a function, default or named 'register', that gets the worker and
registers handlers with the Server's methods: console, stream, buffer, directConsole,
directStream; each takes (name, handler, { subject?, durable? }) and the handler gets
(input, caller) with caller = { requestId, command, kind, peerId, peerAddress, deadline, delivery }.
Start as many workers as you like on the same subjects: they share the load.

Options:
  --nats URL         NATS server (default nats://127.0.0.1:4222)
  --concurrency N    requests handled at once (default 64); core requests beyond get ZS_BUSY
  --name NAME        connection name shown by NATS monitoring (default zserver-worker)

Examples:
  zserver worker ./examples/logic/logic.js --nats nats://127.0.0.1:4222
  zserver worker ./logic.js --nats nats://10.0.0.5:4222 --concurrency 200
`;

/** Runs the worker subcommand; resolves to the exit code once the worker stopped. */
export async function runWorker(args: string[]): Promise<number> {
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(HELP);
    return 0;
  }
  let modulePath: string | undefined;
  let nats = 'nats://127.0.0.1:4222';
  let concurrency = 64;
  let name = 'zserver-worker';
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const value = (): string => {
      const v = args[++i];
      if (v === undefined) throw new Error(`${a} needs a value (zserver worker --help)`);
      return v;
    };
    if (a === '--nats') nats = value();
    else if (a === '--concurrency') concurrency = Number(value());
    else if (a === '--name') name = value();
    else if (a.startsWith('-')) {
      process.stderr.write(`zserver worker: unknown option '${a}'\n${HELP}`);
      return 2;
    } else if (modulePath === undefined) modulePath = a;
    else {
      process.stderr.write(`zserver worker: one module only, got '${modulePath}' and '${a}'\n`);
      return 2;
    }
  }
  if (modulePath === undefined) {
    process.stderr.write(`zserver worker: which module? \n${HELP}`);
    return 2;
  }
  if (!Number.isInteger(concurrency) || concurrency <= 0) {
    process.stderr.write(`zserver worker: --concurrency must be a positive integer\n`);
    return 2;
  }
  const mod = (await import(pathToFileURL(resolve(modulePath)).href)) as { default?: unknown; register?: unknown };
  const register = typeof mod.default === 'function' ? mod.default : mod.register;
  if (typeof register !== 'function') {
    process.stderr.write(`zserver worker: ${modulePath} exports no function (default or 'register') to register handlers with\n`);
    return 2;
  }
  const worker = await LogicWorker.connect({ servers: nats, concurrency, name });
  await (register as (w: LogicWorker) => unknown)(worker);
  await worker.ready((subject) => process.stdout.write(`zserver worker: durable subject ${subject} bound\n`));
  process.stdout.write(`zserver worker: serving ${modulePath} via ${nats} (pid ${process.pid})\n`);
  await new Promise<void>((done) => {
    const stop = (): void => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      void worker.close().then(done, done);
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
    void worker.nc.closed().then(() => done());
  });
  return 0;
}
