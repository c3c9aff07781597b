/**
 * The live status page of lib/metrics in headless Chromium, against a live
 * Server on a native WebSocket port with traffic: the page comes from the
 * server's own port (metricsHttp), shows the online count, messages/s and
 * p50/p99, draws its charts, lists one row per worker, and its numbers move
 * as the traffic goes on. A second in-process Server stands in for a second
 * worker (what a group's gather returns).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Client } from '../../lib/framework/client.js';
import { Server } from '../../lib/framework/server.js';
import { MetricsHistory } from '../../lib/metrics/history.js';
import { metricsHttp, type MetricsHttp } from '../../lib/metrics/http.js';
import { takeSnapshot } from '../../lib/metrics/snapshot.js';
import { MemoryTransport } from '../../lib/transport/memory.js';
import { NativeWsTransport } from '../../lib/transport/native-ws.js';
import { launchChromium, pageErrors, type TestBrowser } from './chromium.js';

const INTERVAL = 200;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('status page in headless Chromium', () => {
  const a = new Server({ quiet: true });
  const b = new Server({ quiet: true });
  const historyB = new MetricsHistory(b, { intervalMs: INTERVAL });
  let http: MetricsHttp;
  let port = 0;
  let browser: TestBrowser | undefined;
  const clients: Client[] = [];
  let stop = false;
  let traffic: Promise<unknown> = Promise.resolve();

  before(async () => {
    for (const s of [a, b]) {
      s.console('echo', (t) => t);
      s.console('slow', async (t) => (await sleep(3), t));
    }
    http = metricsHttp({
      server: a,
      worker: '0',
      history: { intervalMs: INTERVAL },
      gather: async (withHistory) => [http.snapshot(withHistory), takeSnapshot(b, { worker: '1', history: historyB, withHistory })],
    });
    historyB.start();
    port = (await a.listen(new NativeWsTransport({ http }), { host: '127.0.0.1', port: 0 })).address.port;
    const memA = await a.listen(new MemoryTransport(), { host: 'mem-a', port: 0 });
    const memB = await b.listen(new MemoryTransport(), { host: 'mem-b', port: 0 });
    for (const [host, p] of [['mem-a', memA.address.port], ['mem-a', memA.address.port], ['mem-a', memA.address.port], ['mem-b', memB.address.port]] as const) {
      const c = new Client({ transport: new MemoryTransport(), host, port: p, quiet: true });
      await c.connect();
      clients.push(c);
    }
    // Bounded traffic: until the test says stop, and at most 30 s.
    const end = Date.now() + 30_000;
    traffic = Promise.all(
      clients.map(async (c, i) => {
        while (!stop && Date.now() < end) {
          await c.callConsole(i % 2 === 0 ? 'echo' : 'slow', 'x');
          await sleep(2);
        }
      }),
    );
    browser = await launchChromium();
  });

  after(async () => {
    stop = true;
    await traffic.catch(() => undefined);
    await browser?.close();
    http?.stop();
    historyB.stop();
    for (const c of clients) await c.close();
    await a.close();
    await b.close();
  });

  it('renders online, messages/s, p50/p99, charts and worker rows, and the numbers move', async () => {
    const page = await browser!.context.newPage();
    const errors = pageErrors(page);
    await page.goto(`http://127.0.0.1:${port}/status`);
    const text = (id: string) => page.locator(`#${id}`).textContent();
    const number = async (id: string) => Number((await text(id)) ?? 'NaN');

    // Page-side predicates as strings: this file is type-checked without the DOM library.
    await page.waitForFunction("document.getElementById('online').textContent === '4'", undefined, { timeout: 15_000 });
    await page.waitForFunction("Number(document.getElementById('messages').textContent) > 0", undefined, { timeout: 15_000 });
    assert.equal(await text('workers'), '2 / 2');
    assert.ok((await number('calls')) > 0);
    const p50 = await number('p50');
    const p99 = await number('p99');
    assert.ok(Number.isFinite(p50) && Number.isFinite(p99) && p99 >= p50 && p99 > 0, `p50 ${p50}, p99 ${p99}`);

    // One row per worker, with the server's pid for worker 0.
    const rows = await page.locator('#rows tr').evaluateAll((trs) => trs.map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent)));
    assert.deepEqual(rows.map((r) => r[0]), ['0', '1']);
    assert.equal(rows[0]![1], String(process.pid));
    assert.equal(rows[0]![2], '3');
    assert.equal(rows[1]![2], '1');

    // The charts have lines with points, and the numbers move as samples come in.
    const samples = await number('samples');
    const calls = a.stats().commands.echo!.calls;
    await page.waitForFunction(`Number(document.getElementById('samples').textContent) >= ${samples + 3}`, undefined, { timeout: 15_000 });
    assert.ok(a.stats().commands.echo!.calls > calls);
    for (const chart of ['chart-online', 'chart-messages', 'chart-latency']) {
      const points = await page.locator(`#${chart} polyline`).first().getAttribute('points');
      assert.ok((points ?? '').trim().split(' ').length >= 3, `${chart}: ${points}`);
    }
    const latencyLines = await page.locator('#chart-latency polyline').count();
    assert.equal(latencyLines, 2, 'p50 and p99');
    assert.equal(await text('error'), '');
    assert.deepEqual(errors, []);
    await page.close();
  });
});
