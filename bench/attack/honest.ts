/**
 * The honest client of bench/attacks.ts, in a process of its own so that the
 * attackers' work in the parent does not show up as server latency: a
 * framework Client over the server's transport, from its own source address,
 * calling console `echo` every 20 ms (timer-driven, so a stalled server shows
 * as one long round trip, not as fewer samples) and reporting the round trips
 * to the parent every 250 ms. On { type: 'check' } it checks that honest
 * clients still work: echo, add and md5 on its connection, and a new
 * connection that calls echo; then it reports and exits.
 */
import { Client } from '../../lib/framework/client.js';
import { md5 } from '../../lib/hash.js';
import { DataFrame } from '../../lib/protocol/dataframe.js';
import { createTransport, type TransportName } from '../../lib/transport/factory.js';

export interface HonestSetup {
  transport: Exclude<TransportName, 'memory'>;
  host: string;
  port: number;
  localAddress: string;
  intervalMs: number;
  /** Timeout of each call, ms. */
  timeoutMs: number;
}

export type HonestMessage =
  | { type: 'connected' }
  | { type: 'rtt'; ms: number[]; errors: Record<string, number> }
  | { type: 'checked'; ok: boolean; why: string }
  | { type: 'failed'; why: string };

const say = (m: HonestMessage) => process.send?.(m);
const MAX_IN_FLIGHT = 250;

function codeOf(err: unknown): string {
  return (err as { code?: string }).code ?? (err as Error).message.slice(0, 60);
}

async function main(s: HonestSetup): Promise<void> {
  const transport = await createTransport(s.transport);
  const options = { transport, host: s.host, port: s.port, localAddress: s.localAddress, quiet: true, connectTimeout: 5000 };
  const client = new Client(options);
  await client.connect();
  say({ type: 'connected' });
  let rtts: number[] = [];
  let errors: Record<string, number> = {};
  let inFlight = 0;
  let n = 0;
  const tick = setInterval(() => {
    if (inFlight >= MAX_IN_FLIGHT) {
      errors['in-flight-cap'] = (errors['in-flight-cap'] ?? 0) + 1;
      return;
    }
    inFlight++;
    const t0 = performance.now();
    client.callConsole('echo', `honest ${++n}`, { timeout: s.timeoutMs }).then(
      () => rtts.push(performance.now() - t0),
      (err: unknown) => {
        // A call that failed counts as a round trip as long as it took, so a dead server shows in max.
        rtts.push(performance.now() - t0);
        const c = codeOf(err);
        errors[c] = (errors[c] ?? 0) + 1;
      },
    ).finally(() => inFlight--);
  }, s.intervalMs);
  const report = setInterval(() => {
    say({ type: 'rtt', ms: rtts, errors });
    rtts = [];
    errors = {};
  }, 250);

  process.on('message', (m: { type: string }) => {
    if (m.type !== 'check') return;
    clearInterval(tick);
    void (async () => {
      let why = '';
      try {
        const t = { timeout: s.timeoutMs };
        if ((await client.callConsole('echo', 'still here?', t)) !== 'still here?') why += 'echo answered wrong; ';
        const sum = await client.call('add', new DataFrame().writeInt32(40).writeInt32(2), t);
        if (sum.readInt32() !== 42) why += 'add answered wrong; ';
        const digest = await client.callBuffer('md5', Buffer.from('abc'), t);
        if (Buffer.compare(digest, Buffer.from(md5(Buffer.from('abc')))) !== 0) why += 'md5 answered wrong; ';
      } catch (err) {
        why += `old connection: ${codeOf(err)}; `;
      }
      try {
        const fresh = new Client(options);
        await fresh.connect();
        if ((await fresh.callConsole('echo', 'new', { timeout: s.timeoutMs })) !== 'new') why += 'new connection answered wrong; ';
        await fresh.close();
      } catch (err) {
        why += `new connection: ${codeOf(err)}; `;
      }
      clearInterval(report);
      say({ type: 'rtt', ms: rtts, errors });
      say({ type: 'checked', ok: why === '', why: why.trim() });
      await client.close().catch(() => undefined);
      await transport.shutdown().catch(() => undefined);
      process.exit(0);
    })();
  });
}

process.once('message', (s: HonestSetup) => {
  main(s).catch((err: unknown) => {
    say({ type: 'failed', why: codeOf(err) });
    process.exit(1);
  });
});
process.on('disconnect', () => process.exit(0));
