/**
 * `zserver serve [app] [flags] [--config file]` (lib/cli/serve.ts, serve-config.ts, serve-app.ts):
 * an app module is loaded and set up with its ServeConfig (the config file's "app" section
 * included), limits and the secure identity reach the endpoints, and every bad flag, value, key
 * or module fails with a message saying what to do.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { ServerIdentity } from '../../lib/channel/handshake.js';
import { AppLoadError } from '../../lib/errors.js';
import { Client } from '../../lib/framework/client.js';
import { loadApp } from '../../lib/cli/serve-app.js';
import { parseServeArgs } from '../../lib/cli/serve-config.js';
import { startServe } from '../../lib/cli/serve.js';
import { MemoryTransport } from '../../lib/transport/memory.js';

const dir = mkdtempSync(join(tmpdir(), 'zs-serve-app-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const appJs = join(dir, 'app.mjs');
writeFileSync(
  appJs,
  `export default async function setup(server, config) {
     server.console('hi', (name) => \`\${config.app.greeting}, \${name} from worker \${config.worker} of \${config.workers}\`);
   }\n`,
);
const appTs = join(dir, 'app.ts');
writeFileSync(appTs, `export function setup(server: { console(n: string, h: (t: string) => string): void }): void { server.console('typed', (t: string): string => t.toUpperCase()); }\n`);
const configFile = join(dir, 'serve.json');
writeFileSync(configFile, JSON.stringify({ port: 0, wsPort: null, limits: { requestTimeout: 4321, maxConnections: 7 }, app: { greeting: 'hello' } }));

let port = 42_000;

async function call(handle: Awaited<ReturnType<typeof startServe>>, name: string, text: string, extra: object = {}): Promise<string> {
  const ct = new MemoryTransport();
  const client = new Client({ transport: ct, host: handle.tcp.address.host, port: handle.tcp.address.port, quiet: true, ...extra });
  try {
    await client.connect();
    return await client.callConsole(name, text);
  } finally {
    await client.close();
    await ct.shutdown();
  }
}

describe('zserver serve app modules', () => {
  it('loads an app, gives it its ServeConfig with the config file\'s "app" section, and applies the limits', async () => {
    const opts = parseServeArgs([appJs, '--config', configFile, '--transport', 'memory', '--host', 'app-test', '--port', String(port++)]);
    assert.equal(opts.wsPort, null, 'from the config file');
    const h = await startServe(opts, 'memory');
    try {
      assert.equal(await call(h, 'hi', 'you'), 'hello, you from worker 0 of 1');
      assert.equal(h.tcp.options.settings?.requestTimeout, 4321);
      assert.equal((h.tcp.options as { maxConnections?: number }).maxConnections, 7);
      assert.deepEqual(h.server.commandNames(), ['hi'], 'only the app commands: no test app');
    } finally {
      await h.close();
    }
  });

  it('loads a .ts app (named export setup) and serves the test app when no app is given', async () => {
    assert.equal(typeof (await loadApp(appTs)), 'function');
    const h = await startServe(parseServeArgs([appTs, '--transport', 'memory', '--host', 'app-test', '--port', String(port++), '--no-web']), 'memory');
    try {
      assert.equal(await call(h, 'typed', 'abc'), 'ABC');
    } finally {
      await h.close();
    }
    const t = await startServe(parseServeArgs(['--transport', 'memory', '--host', 'app-test', '--port', String(port++), '--no-web']), 'memory');
    try {
      assert.match(await call(t, 'whoami', ''), /"worker":0,"workers":1/);
      assert.equal(await call(t, 'echo', 'x'), 'x');
    } finally {
      await t.close();
    }
  });

  it('runs the secure channel with --secure-key', async () => {
    const keyFile = join(dir, 'server.key');
    writeFileSync(keyFile, generateKeyPairSync('ed25519').privateKey.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600 });
    const identity = ServerIdentity.from(readFileSync(keyFile, 'utf8'));
    const h = await startServe(parseServeArgs(['--transport', 'memory', '--host', 'app-test', '--port', String(port++), '--no-web', '--secure-key', keyFile]), 'memory');
    try {
      assert.match(h.tcp.stack.name, /secure/);
      assert.equal(await call(h, 'echo', 'sealed', { secure: { pin: identity.fingerprint } }), 'sealed');
    } finally {
      await h.close();
    }
  });

  it('refuses apps that break the contract with AppLoadError (ZS_APP_LOAD)', async () => {
    const none = join(dir, 'none.mjs');
    writeFileSync(none, 'export const x = 1;\n');
    await assert.rejects(loadApp(none), (e: unknown) => e instanceof AppLoadError && e.code === 'ZS_APP_LOAD' && /exports no setup function/.test(e.message));
    await assert.rejects(loadApp(join(dir, 'missing.mjs')), (e: unknown) => e instanceof AppLoadError && /does not exist/.test(e.message));
    const broken = join(dir, 'broken.mjs');
    writeFileSync(broken, 'export default function (\n');
    await assert.rejects(loadApp(broken), (e: unknown) => e instanceof AppLoadError && /cannot load app module/.test(e.message));
  });

  it('rejects unknown flags, bad values, unknown limits and config keys with what to do', () => {
    const cases: [string[], RegExp][] = [
      [['--frobnicate'], /unknown option '--frobnicate'.*--help/],
      [['--port', '70000'], /--port must be an integer from 0 to 65535/],
      [['--workers', '0'], /--workers must be an integer from 1 to 256/],
      [['--limit', 'bogus=1'], /unknown limit 'bogus'; limits are requestTimeout/],
      [['--limit', 'requestTimeout'], /--limit takes NAME=VALUE/],
      [['--transport', 'carrier'], /--transport must be native, native-tls, node-net or memory/],
      [['--transport', 'native-tls'], /needs --tls-cert FILE and --tls-key FILE/],
      [['--workers', '2', '--transport', 'memory'], /--workers needs a socket transport/],
      [['a.js', 'b.js'], /one app module only/],
      [['--port'], /--port needs a value/],
    ];
    for (const [args, re] of cases) assert.throws(() => parseServeArgs(args), (e: unknown) => e instanceof RangeError && re.test(e.message), args.join(' '));
    const badKey = join(dir, 'bad.json');
    writeFileSync(badKey, JSON.stringify({ prot: 1 }));
    assert.throws(() => parseServeArgs(['--config', badKey]), /unknown config key 'prot'; keys are host, port/);
    writeFileSync(badKey, '{ not json');
    assert.throws(() => parseServeArgs(['--config', badKey]), /cannot read config file/);
  });

  it('runs examples/app.ts from the command line (--once: it loads and listens)', () => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', 'bin/zserver.ts', 'serve', 'examples/app.ts', '--port', '0', '--no-web', '--once'], {
      encoding: 'utf8',
      timeout: 30_000,
    });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /app: .*examples\/app\.ts/);
    assert.match(r.stdout, /commands: greet, count/);
    assert.match(r.stdout, /the app loaded and the endpoints listened/);
  });

  it('--help lists every option with examples', () => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', 'bin/zserver.ts', 'serve', '--help'], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(r.status, 0, r.stderr);
    for (const flag of ['--host', '--port', '--ws-port', '--no-web', '--transport', '--ws-transport', '--tls-cert', '--secure-key', '--compression', '--limit', '--workers', '--nats', '--no-nats', '--drain-deadline', '--max-restarts', '--config', 'Examples:', 'SIGHUP']) {
      assert.ok(r.stdout.includes(flag), `--help mentions ${flag}`);
    }
  });
});
