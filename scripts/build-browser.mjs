// Builds the browser client: lib/browser.ts bundled by esbuild into one ES
// module, dist/browser/zserver.js (with a source map), shipped in the package
// as `zserver/browser`.
//
//   node scripts/build-browser.mjs            (npm run build:browser; part of npm run build and prepare)
//
// The shared code reaches its runtime only through lib/platform.ts; this build
// puts lib/platform.browser.ts in its place (the one substitution, done by the
// plugin below). No polyfills: the build fails when the bundle would import a
// `node:` module, call require(), or use the Node globals Buffer, process or
// global (esbuild's `define` turns every free use of those into a marker that
// is searched for afterwards). test/browser/bundle.test.ts runs the same check.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const NODE_GLOBALS = ['Buffer', 'process', 'global', 'setImmediate', '__dirname', '__filename'];
const marker = (name) => `__zserver_node_global_${name}__`;

/** Resolves imports of lib/platform.js to lib/platform.browser.ts. */
const platformSeam = {
  name: 'zserver-platform-seam',
  setup(b) {
    b.onResolve({ filter: /(^|\/)platform\.js$/ }, (args) => {
      const target = join(args.resolveDir, args.path);
      if (target !== join(root, 'lib', 'platform.js')) return undefined;
      return { path: join(root, 'lib', 'platform.browser.ts') };
    });
  },
};

/**
 * Bundles lib/browser.ts (or `entry`); resolves to { code, map, problems, inputs }. `problems`
 * lists every Node dependency found (empty for a good bundle); `inputs` are the files bundled.
 */
export async function bundleBrowser({ entry = join(root, 'lib', 'browser.ts'), minify = false } = {}) {
  const out = await build({
    entryPoints: [entry],
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: ['es2022', 'chrome100', 'firefox100', 'safari15'],
    outfile: join(root, 'dist', 'browser', 'zserver.js'),
    sourcemap: 'linked',
    minify,
    write: false,
    metafile: true,
    logLevel: 'silent',
    // A `node:` import is reported below rather than failing the build, so every problem is listed.
    external: ['node:*'],
    plugins: [platformSeam],
    define: Object.fromEntries(NODE_GLOBALS.map((g) => [g, marker(g)])),
  });
  const code = out.outputFiles.find((f) => f.path.endsWith('.js')).text;
  const map = out.outputFiles.find((f) => f.path.endsWith('.map')).text;
  const problems = [];
  const inputs = Object.keys(out.metafile.inputs);
  for (const [file, input] of Object.entries(out.metafile.inputs)) {
    for (const imp of input.imports) if (imp.external || imp.path.startsWith('node:')) problems.push(`${file} imports ${imp.path}`);
  }
  for (const g of NODE_GLOBALS) if (code.includes(marker(g))) problems.push(`the bundle uses the Node global '${g}'`);
  if (/\brequire\(/.test(code)) problems.push('the bundle calls require()');
  // Node timers are objects with ref()/unref(); a browser's are numbers.
  if (/\.(un)?ref\(\)/.test(code)) problems.push('the bundle calls ref()/unref() (Node timer methods)');
  return { code, map, problems, inputs };
}

/** Builds and writes dist/browser/zserver.js and its map; throws on any Node dependency. */
export async function writeBrowserBundle() {
  const { code, map, problems } = await bundleBrowser();
  if (problems.length > 0) throw new Error(`browser bundle has Node dependencies:\n  ${problems.join('\n  ')}`);
  const dir = join(root, 'dist', 'browser');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'zserver.js'), code);
  writeFileSync(join(dir, 'zserver.js.map'), map);
  return { file: join(dir, 'zserver.js'), bytes: code.length };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const { file, bytes } = await writeBrowserBundle();
  console.log(`build-browser: ${relative(process.cwd(), file)} (${(bytes / 1024).toFixed(1)} KiB)`);
}
