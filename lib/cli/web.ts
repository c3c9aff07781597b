/**
 * The files `zserver serve` hands to browsers on its WebSocket port: the page
 * of examples/web and the browser bundle (/zserver.js). From a source
 * checkout (this file running as TypeScript) the bundle is built in memory by
 * scripts/build-browser.mjs, so it always matches the sources; from the
 * installed package it is dist/browser/zserver.js, built at pack time.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, extname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { HttpAnswer } from '../transport/ws-server.js';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json',
  '.ico': 'image/x-icon',
};

/** The directory of zserver's package.json above this file. */
function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg) && (JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'zserver') return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error('zserver serve: cannot find the zserver package directory (package.json) above lib/cli');
    dir = up;
  }
}

/** The browser bundle and its source map. */
async function loadBundle(root: string): Promise<{ code: string; map: string }> {
  const fromSource = import.meta.url.endsWith('.ts');
  const built = join(root, 'dist', 'browser', 'zserver.js');
  if (!fromSource && existsSync(built)) return { code: readFileSync(built, 'utf8'), map: readFileSync(`${built}.map`, 'utf8') };
  const script = join(root, 'scripts', 'build-browser.mjs');
  if (!existsSync(script)) throw new Error(`zserver serve: the browser bundle ${built} is missing; run npm run build:browser`);
  const { bundleBrowser } = (await import(pathToFileURL(script).href)) as {
    bundleBrowser(): Promise<{ code: string; map: string; problems: string[] }>;
  };
  const b = await bundleBrowser();
  if (b.problems.length > 0) throw new Error(`zserver serve: the browser bundle has Node dependencies: ${b.problems.join('; ')}`);
  return b;
}

/** Loads examples/web and the bundle; resolves to the `http` handler of the WebSocket server transports (WebSocketServerOptions). */
export async function webFiles(): Promise<(method: string, url: string) => HttpAnswer | undefined> {
  const root = packageRoot();
  const files = new Map<string, HttpAnswer>();
  const add = (url: string, body: string | Uint8Array, ext: string) =>
    files.set(url, { headers: { 'content-type': TYPES[ext] ?? 'application/octet-stream', 'cache-control': 'no-store' }, body });
  const web = join(root, 'examples', 'web');
  for (const name of readdirSync(web)) {
    if (extname(name) in TYPES) add(`/${name}`, readFileSync(join(web, name)), extname(name));
  }
  const index = files.get('/index.html');
  if (index) files.set('/', index);
  const bundle = await loadBundle(root);
  add('/zserver.js', bundle.code, '.js');
  add('/zserver.js.map', bundle.map, '.map');
  return (method, url) => (method === 'GET' || method === 'HEAD' ? files.get(url) : undefined);
}
