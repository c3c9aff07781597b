/**
 * The zserver rows of bench/echo.ts: a Transport with a JavaScript echo
 * handler called for every frame of every batch. `node-net` uses
 * NodeNetTransport; `native` loads lib/transport/native-tcp.ts when this
 * branch has it, and otherwise prints "UNAVAILABLE <why>" and exits 3.
 *
 * The handler forwards each frame back with forwardFrame() (Transport.forward
 * where the transport has it); with a third argument `send` it makes a view of
 * the payload and calls send() instead, as a handler that builds its reply would;
 * with `thread`, the native transport runs its loop on an I/O thread.
 * `native-ws` is NativeWsTransport (WebSocket in the native loop, path '/').
 * `spin=<µs>` sets the native transports' spinMicros (default: theirs).
 */
import { forwardFrame } from '../../lib/transport/common.js';
import type { FrameBatch, Transport } from '../../lib/transport/types.js';
import { exitOnSignal, ready, requestedPort } from './_ready.js';

const which = process.argv[3] ?? 'node-net';
const flags = process.argv.slice(4);
const viaSend = flags.includes('send');
const ioThread = flags.includes('thread');
const spinFlag = flags.find((f) => f.startsWith('spin='));
const spinMicros = spinFlag === undefined ? undefined : Number(spinFlag.slice(5));

async function make(): Promise<Transport> {
  if (which === 'node-net') {
    const { NodeNetTransport } = await import('../../lib/transport/node-net.js');
    return new NodeNetTransport();
  }
  if (which === 'native-ws') {
    // Path '/': the load generator's upgrade asks for it.
    const { NativeWsTransport } = await import('../../lib/transport/native-ws.js');
    return new NativeWsTransport({ ioThread, path: '/', spinMicros });
  }
  const path = '../../lib/transport/native-tcp.js';
  try {
    const mod = (await import(path)) as { NativeTcpTransport: new (o: { ioThread: boolean; spinMicros?: number }) => Transport };
    return new mod.NativeTcpTransport({ ioThread, spinMicros });
  } catch (err) {
    process.stdout.write(`UNAVAILABLE not built on this branch (${(err as Error).message.split('\n')[0]})\n`);
    process.exit(3);
  }
}

const transport = await make();
transport.on(
  'frames',
  viaSend
    ? (b: FrameBatch) => {
        for (let i = 0; i < b.count; i++) {
          const o = b.offsets[i]!;
          transport.send(b.peers[i]!, b.kinds[i]!, b.flags[i]!, b.data.subarray(o, o + b.lengths[i]!));
        }
      }
    : (b: FrameBatch) => {
        for (let i = 0; i < b.count; i++) forwardFrame(transport, b, i);
      },
);
transport.on('error', (err) => process.stderr.write(`${err.message}\n`));
const at = await transport.listen({ host: '127.0.0.1', port: requestedPort });
ready(at.port);
exitOnSignal(() => transport.shutdown());
