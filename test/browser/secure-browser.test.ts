// WebSecureChannel in headless Chromium: the page (secure-page.ts) opens the
// browser secure channel over BrowserWsTransport to a Node SecureChannel over
// the default WebSocket server (NativeWsTransport on Linux), round-trips frames, and checks the failures a page must see.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { Page } from 'playwright-core';
import { SecureChannel } from '../../lib/channel/secure.js';
import { ServerIdentity } from '../../lib/channel/handshake.js';
import type { PeerId } from '../../lib/transport/types.js';
import { DefaultWsServer } from '../transport/ws-helpers.js';
import { bundlePage, openBrowser } from './harness.js';

const here = fileURLToPath(new URL('.', import.meta.url));

type PageApi = Record<string, (...args: unknown[]) => Promise<Record<string, unknown>>> & { userAgent: string };

describe(`WebSecureChannel in headless Chromium against a Node SecureChannel over ${DefaultWsServer.name}`, () => {
  const identity = ServerIdentity.from(randomBytes(32));
  let server: SecureChannel;
  let browser: Awaited<ReturnType<typeof openBrowser>> | undefined;
  let wsPort = 0;
  let bundle = '';
  const serverCloses: string[] = [];

  before(async () => {
    bundle = await bundlePage(join(here, 'secure-page.ts'));
    browser = await openBrowser(bundle, 'zserver secure channel test');
    // The page comes from another port, so another origin: the endpoint must list it.
    server = new SecureChannel(new DefaultWsServer({ origins: [new URL(browser.pageUrl).origin] }), { identity });
    server.on('open', (peer: PeerId) => server.send(peer, 20, 0, new TextEncoder().encode('welcome')));
    server.on('frames', (b) => {
      for (let i = 0; i < b.count; i++) server.send(b.peers[i]!, b.kinds[i]!, b.flags[i]!, b.data.subarray(b.offsets[i]!, b.offsets[i]! + b.lengths[i]!));
    });
    server.on('close', (_p, reason) => serverCloses.push(reason));
    wsPort = (await server.listen({ host: '127.0.0.1', port: 0 })).port;
  });

  after(async () => {
    await browser?.close();
    await server?.shutdown();
    identity.close();
  });

  async function openPage(): Promise<{ page: Page; errors: string[] }> {
    const page = await browser!.context.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(browser!.pageUrl);
    await page.waitForFunction(() => (globalThis as { zsSecure?: unknown }).zsSecure !== undefined, undefined, { timeout: 10_000 });
    return { page, errors };
  }

  function call(page: Page, fn: string, ...args: unknown[]): Promise<Record<string, unknown>> {
    return page.evaluate(([f, a]) => ((globalThis as unknown as { zsSecure: PageApi }).zsSecure[f as string]!)(...(a as unknown[])), [fn, args] as const);
  }

  it('the bundle has no Node-only imports', () => {
    assert.ok(bundle.length > 1000);
    assert.doesNotMatch(bundle, /from\s*["']node:|require\(["']/);
  });

  it('handshakes with the pinned server, gets its push, and echoes frames of many sizes sent in one turn, in order', async () => {
    const { page, errors } = await openPage();
    const sizes = Array.from({ length: 300 }, (_, i) => (i % 50 === 7 ? 16 * 1024 + 1 + i * 300 : (i * 37) % 1500));
    const r = await call(page, 'echo', wsPort, identity.fingerprint, sizes);
    assert.deepEqual(errors, []);
    assert.equal(r.fingerprint, identity.fingerprint);
    assert.equal(r.welcome, 'welcome', 'the server push reached the page through the channel');
    assert.equal(r.echoed, true, 'every frame came back');
    assert.deepEqual(r.mismatches, [], 'kinds, flags and payloads match, in order');
    assert.equal(r.bulkDone, true, 'the bulk run came back');
    const secure = r.secure as { handshakes: number; authFailures: number };
    assert.equal(secure.handshakes, 1);
    assert.equal(secure.authFailures, 0);
    assert.deepEqual(r.closes, ['shutdown']);
    const ua = await page.evaluate(() => (globalThis as unknown as { zsSecure: PageApi }).zsSecure.userAgent);
    const rates = await call(page, 'sealRates');
    assert.ok(Object.values(rates).every((v) => typeof v === 'number' && v > 0));
    const shown = Object.entries(rates).map(([k, v]) => `${k}: ${Math.round(v as number)}/s`).join('; ');
    console.log(`${/Chrome\/[\d.]+/.exec(ua)?.[0] ?? ua}: 2,000 × 1 KiB echoed through WebSecureChannel in ${(r.bulkMs as number).toFixed(0)} ms; records sealed: ${shown}`);
    await page.close();
  });

  it('refuses a server whose fingerprint is not the pinned one: connect() rejects with HandshakeError in the page', async () => {
    const { page, errors } = await openPage();
    const wrong = 'ab'.repeat(32);
    const failuresBefore = server.secureStats().handshakeFailures;
    const r = await call(page, 'wrongPin', wsPort, wrong);
    assert.deepEqual(errors, []);
    assert.equal(r.rejected, true);
    const error = r.error as { name: string; code: string; message: string };
    assert.equal(error.name, 'HandshakeError');
    assert.equal(error.code, 'ZS_HANDSHAKE');
    assert.match(error.message, new RegExp(`expected fingerprint ${wrong}, received ${identity.fingerprint}`));
    const deadline = Date.now() + 5000;
    while (server.secureStats().handshakeFailures === failuresBefore && Date.now() < deadline) await new Promise((res) => setTimeout(res, 10));
    assert.equal(server.secureStats().handshakeFailures, failuresBefore + 1, 'the server saw the alert and counted a failed handshake');
    await page.close();
  });

  it('without X25519 and Ed25519 in WebCrypto, connect() says which are missing and what to do', async () => {
    const { page, errors } = await openPage();
    const opensBefore = server.stats().connections;
    const r = await call(page, 'missingCurves', wsPort);
    assert.deepEqual(errors, []);
    assert.equal(r.rejected, true);
    const error = r.error as { name: string; code: string; message: string };
    assert.equal(error.code, 'ZS_HANDSHAKE');
    assert.match(error.message, /lacks X25519 \(key agreement\) and Ed25519 \(server signature\)/);
    assert.match(error.message, /Chrome\/Edge 137\+/);
    assert.match(error.message, /wss:\/\//);
    assert.equal(server.stats().connections, opensBefore, 'no connection was attempted');
    await page.close();
  });
});
