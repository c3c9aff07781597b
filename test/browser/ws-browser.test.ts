import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { BrowserContext } from 'playwright-core';
import type { PeerId, Transport } from '../../lib/transport/types.js';
import { DefaultWsServer } from '../transport/ws-helpers.js';
import { bundlePage, openBrowser } from './harness.js';

const here = fileURLToPath(new URL('.', import.meta.url));

describe('BrowserWsTransport in headless Chromium', () => {
  let server: Transport;
  let browser: Awaited<ReturnType<typeof openBrowser>> | undefined;
  let context: BrowserContext;
  let pageUrl = '';
  let wsPort = 0;
  let bundle = '';
  const serverCloses: string[] = [];

  before(async () => {
    bundle = await bundlePage(join(here, 'ws-page.ts'));
    browser = await openBrowser(bundle, 'zserver ws test');
    context = browser.context;
    pageUrl = browser.pageUrl;
    // The page comes from another port, so another origin: the endpoint must list it.
    server = new DefaultWsServer({ origins: [new URL(pageUrl).origin] });
    server.on('open', (peer: PeerId) => server.send(peer, 20, 0, new TextEncoder().encode('welcome')));
    server.on('frames', (b) => {
      for (let i = 0; i < b.count; i++) {
        server.send(b.peers[i]!, b.kinds[i]!, b.flags[i]!, b.data.subarray(b.offsets[i]!, b.offsets[i]! + b.lengths[i]!));
      }
    });
    server.on('close', (_p, reason) => serverCloses.push(reason));
    wsPort = (await server.listen({ host: '127.0.0.1', port: 0 })).port;
  });

  after(async () => {
    await browser?.close();
    await server?.shutdown();
  });

  it('the bundle has no Node-only imports', () => {
    assert.ok(bundle.length > 1000);
    assert.doesNotMatch(bundle, /from\s*["']node:|require\(["']/);
  });

  it('connects, receives a server push, echoes frames, sees backpressure drain, and shuts down', async () => {
    const page = await context.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(pageUrl);
    await page.waitForFunction(() => (globalThis as { zsTest?: unknown }).zsTest !== undefined, undefined, { timeout: 10_000 });
    const sizes = Array.from({ length: 300 }, (_, i) => (i % 50 === 7 ? 100_000 + i : (i * 37) % 1500));
    const result = await page.evaluate(
      ([port, s]) => (globalThis as unknown as { zsTest: { run(p: number, s: number[]): Promise<Record<string, unknown>> } }).zsTest.run(port, s),
      [wsPort, sizes] as [number, number[]],
    );
    assert.deepEqual(errors, []);
    assert.equal(result.welcome, 'welcome', 'the server push reached the page');
    assert.equal(result.echoed, true, 'every frame came back');
    assert.deepEqual(result.mismatches, [], 'kinds, flags and payloads match');
    assert.equal(result.full, true, 'send() reported backpressure');
    assert.equal(result.drained, true, "'drain' followed");
    assert.equal(result.allBack, true, 'the backpressured frames came back too');
    const stats = result.stats as { framesOut: number; framesIn: number; connections: number };
    assert.equal(stats.connections, 1);
    assert.equal(stats.framesOut, sizes.length + (result.sent as number));
    assert.equal(result.threwAfterShutdown, true);
    assert.deepEqual(result.closes, ['shutdown']);
    const deadline = Date.now() + 5000;
    while (serverCloses.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual(serverCloses, ['remote']);
    assert.equal(server.stats().framesIn, stats.framesOut);
    await page.close();
  });
});
