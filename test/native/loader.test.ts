import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, describe, it } from 'node:test';
import { NativeLoadError, ZsError } from '../../lib/index.js';
import { loadNative, nativeCandidates, packageRoot } from '../../lib/native.js';

describe('native loader', () => {
  const dir = mkdtempSync(join(tmpdir(), 'zs-loader-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('looks in prebuilds/<platform>-<arch> first, then build/Release', () => {
    const list = nativeCandidates('/pkg');
    const tail = list.slice(-2);
    assert.deepEqual(tail, [
      join('/pkg', 'prebuilds', `${process.platform}-${process.arch}`, 'zserver.node'),
      join('/pkg', 'build', 'Release', 'zserver.node'),
    ]);
  });

  it('tries a source build first when it is newer than the prebuilt binary', () => {
    const root = join(dir, 'pkg');
    const prebuilt = join(root, 'prebuilds', `${process.platform}-${process.arch}`, 'zserver.node');
    const built = join(root, 'build', 'Release', 'zserver.node');
    mkdirSync(dirname(prebuilt), { recursive: true });
    mkdirSync(dirname(built), { recursive: true });
    writeFileSync(prebuilt, 'old');
    writeFileSync(built, 'new');
    utimesSync(prebuilt, new Date(1000), new Date(1000));
    assert.deepEqual(nativeCandidates(root).slice(-2), [built, prebuilt]);
    utimesSync(built, new Date(500), new Date(500));
    assert.deepEqual(nativeCandidates(root).slice(-2), [prebuilt, built]);
  });

  it('finds the package root from inside lib/', () => {
    assert.match(packageRoot(), /main$|zserver$|[^/]+$/);
    assert.ok(nativeCandidates(packageRoot()).length >= 2);
  });

  it('throws NativeLoadError naming the platform, the Node version and the build command when nothing loads', () => {
    const garbage = join(dir, 'zserver.node');
    writeFileSync(garbage, 'not a shared object');
    const missing = join(dir, 'missing.node');
    assert.throws(
      () => loadNative([missing, garbage]),
      (err: unknown) => {
        assert.ok(err instanceof NativeLoadError);
        assert.ok(err instanceof ZsError);
        assert.equal(err.code, 'ZS_NATIVE_LOAD');
        assert.ok(err.message.includes(`${process.platform}-${process.arch}`), err.message);
        assert.ok(err.message.includes(process.version), err.message);
        assert.ok(err.message.includes('npm rebuild zserver'), err.message);
        assert.ok(err.message.includes(`${missing} (missing)`), err.message);
        assert.ok(err.message.includes(garbage), err.message);
        return true;
      },
    );
  });
});
