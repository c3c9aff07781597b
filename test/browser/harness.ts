/**
 * What the Chromium tests share: bundling a page entry with esbuild for the
 * browser and serving it from a loopback HTTP server (an http://127.0.0.1 page
 * is a secure context, so it has crypto.subtle) to the Chromium of chromium.ts.
 */
import { createServer } from 'node:http';
import { build } from 'esbuild';
import type { BrowserContext } from 'playwright-core';
import { launchChromium } from './chromium.js';

/** `entry` bundled as one ESM script for the browser. */
export async function bundlePage(entry: string): Promise<string> {
  const out = await build({ entryPoints: [entry], bundle: true, format: 'esm', platform: 'browser', target: 'es2022', write: false, logLevel: 'silent' });
  return out.outputFiles[0]!.text;
}

/** A page at http://127.0.0.1:port/ that runs `bundle`, and a headless Chromium to open it; close() ends both. */
export async function openBrowser(bundle: string, title: string): Promise<{ pageUrl: string; context: BrowserContext; close(): Promise<void> }> {
  const http = createServer((req, res) => {
    if (req.url === '/page.js') res.writeHead(200, { 'content-type': 'text/javascript' }).end(bundle);
    else if (req.url === '/') res.writeHead(200, { 'content-type': 'text/html' }).end(`<!doctype html><title>${title}</title><script type="module" src="/page.js"></script>`);
    else res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  const port = (http.address() as { port: number }).port;
  let browser: Awaited<ReturnType<typeof launchChromium>>;
  try {
    browser = await launchChromium();
  } catch (err) {
    http.close();
    throw err;
  }
  return {
    pageUrl: `http://127.0.0.1:${port}/`,
    context: browser.context,
    async close() {
      await browser.close();
      await new Promise((resolve) => http.close(resolve));
    },
  };
}
