/**
 * The npm package as a user gets it: `npm pack` (which writes the prebuilt addon
 * and compiles the TypeScript), then `npm install --ignore-scripts` of the
 * tarball into an empty project, then import it from there. With scripts off,
 * nothing can be compiled on install, so this proves the prebuilt binary inside
 * the tarball is what loads.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';

const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';

describe('npm package', { timeout: 300_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'zs-pack-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('packs with the prebuilt addon, installs with --ignore-scripts, and hashes from there', () => {
    // Lifecycle scripts (prepack builds the addon) print to stdout before the JSON report.
    const output = execFileSync(npm, ['pack', '--json', '--pack-destination', dir], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const packed = JSON.parse(output.slice(output.lastIndexOf('[\n  {'))) as { filename: string; files: { path: string }[] }[];
    const files = packed[0]!.files.map((f) => f.path);
    assert.ok(files.includes(`prebuilds/${process.platform}-${process.arch}/zserver.node`), 'prebuilt addon in the tarball');
    assert.ok(files.includes('dist/lib/index.js'), 'compiled library in the tarball');
    assert.ok(files.includes('dist/bin/zserver.js'), 'command line in the tarball');
    assert.ok(files.includes('dist/browser/zserver.js'), 'browser bundle in the tarball');
    assert.ok(files.includes('examples/web/index.html') && files.includes('examples/web/app.js'), 'the web example zserver serve serves');
    assert.ok(!files.some((f) => f.startsWith('test/') || f.startsWith('node_modules/') || f.startsWith('build/')));

    const project = join(dir, 'consumer');
    execFileSync('mkdir', ['-p', project]);
    writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
    execFileSync(npm, ['install', '--ignore-scripts', '--no-audit', '--no-fund', join(dir, packed[0]!.filename)], {
      cwd: project,
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    assert.ok(!existsSync(join(project, 'node_modules', 'zserver', 'build')), 'nothing was built on install');

    const script = `
      import { md5, crc32c, xxh64, md5Batch } from 'zserver';
      import { createHash } from 'node:crypto';
      const data = Buffer.from('123456789');
      const out = {
        md5: md5(data).toString('hex'),
        node: createHash('md5').update(data).digest('hex'),
        crc32c: crc32c(data),
        xxh64: xxh64(Buffer.alloc(0)).toString(16),
        batch: md5Batch(data, [0, 3], [3, 6]).length,
      };
      console.log(JSON.stringify(out));`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { cwd: project, encoding: 'utf8', env: { ...process.env, ZSERVER_NATIVE: '' } });
    assert.equal(r.status, 0, r.stderr);
    const got = JSON.parse(r.stdout) as Record<string, unknown>;
    assert.equal(got.md5, got.node);
    assert.equal(got.crc32c, 0xe3069283);
    assert.equal(got.xxh64, 'ef46db3751d8e999');
    assert.equal(got.batch, 32);

    // zserver/browser resolves to the bundle; its DataFrame works anywhere (the Chromium tests cover the rest).
    const web = `
      import { Client, DataFrame, BrowserWsTransport } from 'zserver/browser';
      const df = DataFrame.decode(new DataFrame().writeString('hé').writeInt64(-3n).encode());
      console.log(JSON.stringify([typeof Client, typeof BrowserWsTransport, df.readString(), String(df.readInt64())]));`;
    const w = spawnSync(process.execPath, ['--input-type=module', '-e', web], { cwd: project, encoding: 'utf8' });
    assert.equal(w.status, 0, w.stderr);
    assert.deepEqual(JSON.parse(w.stdout), ['function', 'function', 'hé', '-3']);

    const cli = spawnSync(join(project, 'node_modules', '.bin', 'zserver'), ['selfcheck'], { encoding: 'utf8' });
    assert.equal(cli.status, 0, cli.stderr);
    assert.match(cli.stdout, /self-check: all \d+ passed/);
  });
});
