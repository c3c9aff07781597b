/**
 * A worker of test/metrics/group.test.ts: a Server with one command that a
 * Client in this process calls `ZS_TEST_CALLS` times, which joins the metrics
 * group of its parent. ZS_TEST_MUTE=1 makes it ignore the supervisor's
 * snapshot requests (a hung worker). On {test: 'scrape'} it gathers the
 * group's rows and sends them back as {test: 'rows', rows}; on {test: 'exit'} it leaves.
 * Started without an IPC channel it prints its gather's rows as JSON and exits.
 */
import { Client } from '../../lib/framework/client.js';
import { Server } from '../../lib/framework/server.js';
import { joinMetricsGroup } from '../../lib/metrics/group.js';
import { takeSnapshot } from '../../lib/metrics/snapshot.js';
import { MemoryTransport } from '../../lib/transport/memory.js';

const server = new Server({ quiet: true });
server.console('echo', (t) => t);
const ep = await server.listen(new MemoryTransport(), { host: 'mem', port: 0 });
const client = new Client({ transport: new MemoryTransport(), host: 'mem', port: ep.address.port, quiet: true });
await client.connect();
const calls = Number(process.env.ZS_TEST_CALLS ?? '0');
for (let i = 0; i < calls; i++) await client.callConsole('echo', String(i));

// A mute worker does not join: the supervisor's round must time out on it.
const group = process.env.ZS_TEST_MUTE === '1' ? null : joinMetricsGroup((history) => takeSnapshot(server, { withHistory: history }), { timeoutMs: 400 });

if (process.send === undefined) {
  process.stdout.write(JSON.stringify(await group!.gather()));
  await client.close();
  await server.close();
  process.exit(0);
}

process.on('message', (m: { test?: string }) => {
  if (m?.test === 'scrape') {
    void group?.gather().then((rows) => process.send!({ test: 'rows', rows }));
  } else if (m?.test === 'exit') {
    group?.leave();
    void client.close().then(() => server.close()).then(() => process.disconnect());
  }
});
process.send!({ test: 'ready', pid: process.pid });
