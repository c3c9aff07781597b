/**
 * A logic-tier worker module in Node: `zserver worker examples/logic/logic.ts --nats URL`
 * (with tsx: `node --import tsx bin/zserver.ts worker examples/logic/logic.ts --nats URL`).
 * It serves the commands examples/logic/server.ts routes. Handlers look like Server
 * handlers; the second argument is the Caller (request id, peer id and address, delivery).
 */
import { DataFrame, type LogicWorker } from '../../lib/index.js';

/** How many times this process ran each durable request id (a redelivery runs it again). */
const seen = new Map<string, number>();

export default function register(worker: LogicWorker): void {
  worker.console('upper', (text) => text.toUpperCase());
  worker.console('whoami', (_text, caller) => `pid ${process.pid} served ${caller.command} for peer ${caller.peerId} at ${caller.peerAddress}`);
  worker.stream('add', (df) => new DataFrame().writeInt32(df.readInt32() + df.readInt32()));
  worker.console('fail', (text) => {
    throw Object.assign(new Error(`refused: ${text}`), { code: 'APP_REFUSED' });
  });
  // Durable: at-least-once. The handler is idempotent: it only computes from its input, so a
  // second run after a crash gives the same answer. (One that writes somewhere would key the
  // write on caller.requestId, which is the same on every delivery.)
  worker.console(
    'square',
    async (text, caller) => {
      seen.set(caller.requestId, (seen.get(caller.requestId) ?? 0) + 1);
      await new Promise((r) => setTimeout(r, Number(process.env.ZS_EXAMPLE_DELAY_MS ?? 0)));
      return String(Number(text) ** 2);
    },
    { durable: true },
  );
}
