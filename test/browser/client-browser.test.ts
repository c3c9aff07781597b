// The browser client (the real bundle, dist/browser/zserver.js as built by
// scripts/build-browser.mjs) in headless Chromium against a Server that
// listens on Node net (TCP) and WebSocket at once: every command kind in both
// directions, broadcasts, one online list shared with a Node TCP client, and
// reconnecting by itself after the server restarts on the same port.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Page } from 'playwright-core';
import { Client } from '../../lib/framework/client.js';
import type { Peer } from '../../lib/framework/peer.js';
import { DataFrame } from '../../lib/protocol/dataframe.js';
import { NodeNetTransport } from '../../lib/transport/node-net.js';
import { fnv1a, pattern } from './client-page.js';
import { launchChromium, pageErrors, type TestBrowser } from './chromium.js';
import { freePort, md5hex, startPageServer, type PageServer } from './page-server.js';

type ZsTest = {
  connect(port: number): Promise<number>;
  clientCalls(): Promise<Record<string, unknown>>;
  snapshot(): { said: string[]; pushed: unknown[]; connects: number; disconnects: string[]; reconnecting: number; connected: boolean };
  echo(text: string): Promise<string>;
  close(): Promise<{ connected: boolean; threw: string }>;
};

/** Runs `zsTest[method](...args)` in the page. */
function inPage<K extends keyof ZsTest>(page: Page, method: K, ...args: Parameters<ZsTest[K]>): Promise<Awaited<ReturnType<ZsTest[K]>>> {
  return page.evaluate(
    ([m, a]) => ((globalThis as unknown as { zsTest: Record<string, (...x: unknown[]) => unknown> }).zsTest[m]!(...a) as Promise<never>),
    [method, args] as [string, unknown[]],
  ) as Promise<Awaited<ReturnType<ZsTest[K]>>>;
}

async function until(what: string, cond: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('browser Client (the bundle) in headless Chromium', { timeout: 120_000 }, () => {
  let browser: TestBrowser;
  let srv: PageServer;
  let page: Page;
  let errors: string[];
  let browserPeer: Peer;

  before(async () => {
    srv = await startPageServer(await freePort(), await freePort());
    browser = await launchChromium();
    page = await browser.context.newPage();
    errors = pageErrors(page);
    await page.goto(`http://127.0.0.1:${srv.ws.address.port}/`);
    await page.waitForFunction(() => (globalThis as { zsTest?: unknown }).zsTest !== undefined, undefined, { timeout: 10_000 });
    await inPage(page, 'connect', srv.ws.address.port);
    await until('the server to see the page', () => srv.ws.count === 1);
    browserPeer = srv.ws.peers().next().value!;
  });

  after(async () => {
    await browser?.close();
    await srv?.close();
  });

  it('calls every command kind of the server: console, stream, direct, buffer, big stream, errors', async () => {
    const r = await inPage(page, 'clientCalls');
    assert.equal(r.echo, 'héllo ✓ from the browser');
    assert.equal(r.add, 42);
    assert.equal(r.addCb, -2);
    assert.equal(r.sentNote, true);
    assert.equal(r.sentFrame, true);
    assert.equal(r.md5IsBytes, true, 'callBuffer answers a Uint8Array');
    assert.equal(r.md5Hex, md5hex(pattern(300_000, 1)));
    assert.deepEqual(r.upload, { size: 3_000_000, md5: md5hex(pattern(3_000_000, 3)), name: 'file.bin', progressSteps: (r.upload as { progressSteps: number }).progressSteps, last: 3_000_000 });
    assert.ok((r.upload as { progressSteps: number }).progressSteps >= 3_000_000 / 65536, 'progress per chunk');
    assert.equal(r.unknown, 'ZS_UNKNOWN_COMMAND');
    assert.match(r.failed as string, /^E_PURPOSE: .*failed on purpose/);
    assert.equal(r.manyOk, true);
    // The direct kinds (no answer) arrived, in order with the rest.
    await until('the direct messages', () => srv.received.kept.length === 1);
    assert.deepEqual(srv.received.notes, ['direct text from the browser']);
    assert.deepEqual(srv.received.frames, [{ Data: ['frame', '1099511627776', [1.5, -2]], Ref: [1, 13, 10] }]);
    assert.deepEqual(srv.received.kept, [{ length: 100_000, md5: md5hex(pattern(100_000, 2)) }]);
    assert.deepEqual(errors, []);
  });

  it('serves the commands the server calls on it: console, stream, buffer, big stream, direct pushes', async () => {
    assert.equal(await browserPeer.callConsole('whoami', 'node'), 'browser got node');
    assert.equal((await browserPeer.call('mul', new DataFrame().writeInt32(6).writeInt32(7))).readInt32(), 42);
    const data = pattern(200_000, 4);
    const reversed = await browserPeer.callBuffer('reverse', data);
    assert.deepEqual(reversed, Buffer.from(data).reverse());
    const down = pattern(2_500_000, 5);
    const reply = await browserPeer.sendBigStream('download', down);
    assert.deepEqual([reply.readUInt32(), reply.readUInt32(), reply.readByte()], [down.length, fnv1a(down), 1]);
    browserPeer.sendConsole('said', 'to the page only');
    browserPeer.send('pushed', new DataFrame().writeString('pushed').writeInt32(7));
    await until('the pushes', async () => (await inPage(page, 'snapshot')).pushed.length === 1);
    const snap = await inPage(page, 'snapshot');
    assert.deepEqual(snap.said, ['to the page only']);
    assert.deepEqual(snap.pushed, [{ Data: ['pushed', 7], Ref: [1, 2] }]);
  });

  it('one online list over TCP and WebSocket: a Node TCP client and the page are both counted, iterated and reached by a broadcast', async () => {
    const transport = new NodeNetTransport();
    const nodeClient = new Client({ transport, host: '127.0.0.1', port: srv.tcp.address.port, quiet: true });
    const nodeSaid: string[] = [];
    nodeClient.directConsole('said', (text) => void nodeSaid.push(text));
    try {
      await nodeClient.connect();
      await until('the TCP client', () => srv.server.count === 2);
      assert.equal(srv.tcp.count, 1);
      assert.equal(srv.ws.count, 1);
      const seen: number[] = [];
      srv.server.forEachPeer((p) => seen.push(p.id));
      const byEndpoint = [...srv.tcp.peers(), ...srv.ws.peers()].map((p) => p.id);
      assert.deepEqual(seen.sort(), byEndpoint.sort(), 'the server iterates the peers of both endpoints');
      assert.equal(new Set([...srv.server.peers()].map((p) => p.id)).size, 2, 'one id pool');
      const before = (await inPage(page, 'snapshot')).said.length;
      assert.equal(srv.server.broadcastConsole('said', 'to everyone'), 2);
      await until('the broadcast in the page', async () => (await inPage(page, 'snapshot')).said.length === before + 1);
      await until('the broadcast at the TCP client', () => nodeSaid.length === 1);
      assert.equal((await inPage(page, 'snapshot')).said.at(-1), 'to everyone');
      assert.deepEqual(nodeSaid, ['to everyone']);
      // Endpoint lists stay apart: each endpoint's broadcast reaches its own peers only.
      assert.equal(srv.tcp.broadcastConsole('said', 'tcp only'), 1);
      await until('the TCP-only broadcast', () => nodeSaid.length === 2);
      assert.equal((await inPage(page, 'snapshot')).said.at(-1), 'to everyone');
    } finally {
      await nodeClient.close();
      await transport.shutdown();
    }
  });

  it('reconnects by itself after the server restarts on the same ports, and calls work again', async () => {
    const { port: tcpPort } = srv.tcp.address;
    const { port: wsPort } = srv.ws.address;
    assert.equal(await inPage(page, 'echo', 'before'), 'before');
    await srv.close();
    await until('the page to see the disconnect', async () => !(await inPage(page, 'snapshot')).connected);
    // While the server is down, calls fail at once instead of hanging.
    const down = await page.evaluate(() =>
      (globalThis as unknown as { zsTest: ZsTest }).zsTest.echo('while down').then(
        () => 'answered',
        (err: { code?: string }) => err.code ?? 'no code',
      ),
    );
    assert.equal(down, 'ZS_CONNECTION_CLOSED');
    await new Promise((r) => setTimeout(r, 300)); // a few failed attempts against a closed port
    srv = await startPageServer(tcpPort, wsPort);
    await until('the page to reconnect', async () => (await inPage(page, 'snapshot')).connects === 2, 15_000);
    const snap = await inPage(page, 'snapshot');
    assert.ok(snap.reconnecting >= 1);
    assert.deepEqual(snap.disconnects.length, 1);
    assert.equal(await inPage(page, 'echo', 'after'), 'after');
    await until('the server to count the page', () => srv.server.count === 1);
    assert.equal(srv.server.broadcastConsole('said', 'after restart'), 1);
    await until('the broadcast after the restart', async () => (await inPage(page, 'snapshot')).said.at(-1) === 'after restart');
    const closed = await inPage(page, 'close');
    assert.deepEqual(closed, { connected: false, threw: 'ZS_CONNECTION_CLOSED' });
    await until('the server to see the page leave', () => srv.server.count === 0);
    assert.deepEqual(errors, []);
  });
});
