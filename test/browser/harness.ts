/**
 * What the Chromium tests share: bundling a page entry with esbuild for the
 * browser, serving it from a loopback HTTP server (an http://127.0.0.1 page
 * is a secure context, so it has crypto.subtle), and launching the Debian
 * chromium through playwright-core.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { build } from 'esbuild';
import { chromium } from 'playwright-core';
import type { BrowserContext } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';

/** Flags for a quiet, self-contained headless Chromium (no network besides the page's own). */
export const chromiumArgs = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** `entry` bundled as one ESM script for the browser. */
export async function bundlePage(entry: string): Promise<string> {
  const out = await build({ entryPoints: [entry], bundle: true, format: 'esm', platform: 'browser', target: 'es2022', write: false, logLevel: 'silent' });
  return out.outputFiles[0]!.text;
}

/** A page at http://127.0.0.1:port/ that runs `bundle`, and a headless Chromium to open it; close() ends both. */
export async function openBrowser(bundle: string, title: string): Promise<{ pageUrl: string; context: BrowserContext; close(): Promise<void> }> {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: install the Debian package chromium (.ci/run does)`);
  const http = createServer((req, res) => {
    if (req.url === '/page.js') res.writeHead(200, { 'content-type': 'text/javascript' }).end(bundle);
    else if (req.url === '/') res.writeHead(200, { 'content-type': 'text/html' }).end(`<!doctype html><title>${title}</title><script type="module" src="/page.js"></script>`);
    else res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  const port = (http.address() as { port: number }).port;
  const profile = mkdtempSync(join(tmpdir(), 'zs-chromium-'));
  let context: BrowserContext;
  try {
    context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: chromiumArgs });
  } catch (err) {
    http.close();
    rmSync(profile, { recursive: true, force: true });
    throw err;
  }
  return {
    pageUrl: `http://127.0.0.1:${port}/`,
    context,
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
      await new Promise((resolve) => http.close(resolve));
    },
  };
}
