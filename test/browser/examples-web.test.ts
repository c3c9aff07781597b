// examples/web as `zserver serve` serves it, in headless Chromium: the page
// loads from the WebSocket port, connects, calls a console, a stream and a
// complete-buffer command (a chosen file), shows broadcasts, and comes back
// by itself after the server restarts.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { Page } from 'playwright-core';
import { startServe, type ServeArgs, type ServeHandle } from '../../lib/cli/serve.js';
import { launchChromium, pageErrors, type TestBrowser } from './chromium.js';
import { freePort } from './page-server.js';

describe('examples/web served by zserver serve, in headless Chromium', { timeout: 120_000 }, () => {
  let browser: TestBrowser;
  let serve: ServeHandle;
  let args: ServeArgs;
  let page: Page;
  let errors: string[];
  /** Every response of 400 or more the page got (a missing favicon shows up here as a 404). */
  const failed: string[] = [];

  const text = (id: string) => page.locator(`#${id}`).textContent();
  /** Polls until `#id`'s text matches (a string must match exactly); fails with the last text seen. */
  async function waitText(id: string, expected: string | RegExp, ms = 10_000): Promise<void> {
    const end = Date.now() + ms;
    let last: string | null = null;
    while (Date.now() < end) {
      last = await text(id);
      if (typeof expected === 'string' ? last === expected : expected.test(last ?? '')) return;
      await new Promise((r) => setTimeout(r, 25));
    }
    assert.fail(`#${id} shows ${JSON.stringify(last)}, expected ${String(expected)}`);
  }

  async function waitCount(selector: string, n: number): Promise<void> {
    const end = Date.now() + 10_000;
    while ((await page.locator(selector).count()) !== n) {
      if (Date.now() > end) assert.fail(`${selector}: expected ${n} elements`);
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  before(async () => {
    args = { transport: 'node-net', host: '127.0.0.1', port: await freePort(), wsPort: await freePort(), once: false };
    serve = await startServe(args, 'node-net');
    assert.ok(serve.web, 'zserver serve has a web endpoint on every Node (native-ws on Linux, else uWS or ws)');
    browser = await launchChromium();
    page = await browser.context.newPage();
    errors = pageErrors(page);
    page.on('response', (r) => {
      if (r.status() >= 400) failed.push(`${r.status()} ${r.url()}`);
    });
  });

  after(async () => {
    await browser?.close();
    await serve?.close();
  });

  it('loads from the WebSocket port and connects', async () => {
    const res = await page.goto(`http://127.0.0.1:${args.wsPort}/`);
    assert.equal(res?.status(), 200);
    await waitText('status', 'connected');
    assert.equal(serve.web!.count, 1);
  });

  it('has a favicon: /favicon.ico answers 200 with an icon, and no request of the page failed', async () => {
    const icon = await page.request.get(`http://127.0.0.1:${args.wsPort}/favicon.ico`);
    assert.equal(icon.status(), 200);
    assert.equal(icon.headers()['content-type'], 'image/x-icon');
    const body = await icon.body();
    assert.deepEqual([...body.subarray(0, 4)], [0, 0, 1, 0], 'an ICO file header');
    assert.deepEqual(failed, []);
  });

  it('calls echo (console) and add (stream)', async () => {
    await page.fill('#echo-text', 'héllo from Chromium');
    await page.click('#echo');
    await waitText('echo-out', 'héllo from Chromium');
    await page.fill('#add-a', '1000');
    await page.fill('#add-b', '-1');
    await page.click('#add');
    await waitText('add-out', '999');
  });

  it('uploads a chosen file as a complete buffer (md5)', async () => {
    const data = Buffer.alloc(700_000);
    for (let i = 0; i < data.length; i++) data[i] = (i * 13) ^ (i >>> 9);
    await page.setInputFiles('#file', { name: 'data.bin', mimeType: 'application/octet-stream', buffer: data });
    await page.click('#upload');
    const md5 = createHash('md5').update(data).digest('hex');
    await waitText('upload-out', `data.bin: 700000 bytes, md5 ${md5}`);
  });

  it('shows what the server pushes: its own broadcasts and what a peer says', async () => {
    await page.fill('#say-text', 'hi all');
    await page.click('#say');
    await waitCount('#pushed li', 1);
    assert.match((await page.locator('#pushed li').first().textContent()) ?? '', /^\[peer \d+\] hi all$/);
    assert.equal(serve.server.broadcastConsole('said', 'from the server'), 1);
    await waitCount('#pushed li', 2);
    assert.equal(await page.locator('#pushed li').nth(1).textContent(), 'from the server');
  });

  it('reconnects by itself after the server restarts on the same ports', async () => {
    await serve.close();
    await waitText('status', /^(disconnected|reconnecting)/);
    serve = await startServe(args, 'node-net');
    await waitText('status', 'connected');
    await page.fill('#echo-text', 'after the restart');
    await page.click('#echo');
    await waitText('echo-out', 'after the restart');
    assert.equal(serve.server.count, 1);
    assert.deepEqual(errors, []);
    assert.ok((await text('peer'))?.includes(`127.0.0.1:${args.wsPort}`));
  });
});
