// The addon throws the library's error classes (lib/errors.ts), which
// lib/native.ts hands it at load (setErrorClasses, as better-sqlite3 takes its
// SqliteError): use after close()/destroy() is ConnectionClosedError with code
// ZS_CONNECTION_CLOSED on every native class. The classes are per thread: a
// worker that loads the raw addon without handing any gets Errors carrying the
// same code, and its own classes once it hands them.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { describe, it } from 'node:test';
import { Worker } from 'node:worker_threads';
import { ConnectionClosedError, ZsError } from '../../lib/errors.js';
import { native, nativeCandidates, packageRoot } from '../../lib/native.js';

const isClosed = (message: RegExp) => (err: unknown) => {
  assert.ok(err instanceof ConnectionClosedError, `a ConnectionClosedError, got ${String(err)}`);
  assert.ok(err instanceof ZsError);
  assert.equal(err.code, 'ZS_CONNECTION_CLOSED');
  assert.match(err.message, message);
  return true;
};

describe('native errors are the library classes', () => {
  it('AeadContext and ServerIdentity used after close() throw ConnectionClosedError', () => {
    const N = native();
    const ctx = new N.AeadContext(1, true, randomBytes(32));
    ctx.close();
    assert.throws(() => ctx.sequence(), isClosed(/AeadContext used after close\(\)/));
    const id = new N.ServerIdentity(randomBytes(32));
    id.close();
    assert.throws(() => id.publicKey(), isClosed(/ServerIdentity used after close\(\)/));
  });

  it('a TcpLoop used after destroy() throws ConnectionClosedError', () => {
    const loop = new (native().TcpLoop)(() => {}, false);
    loop.destroy();
    assert.throws(() => loop.bufferStats(), isClosed(/TcpLoop was destroyed/));
    assert.throws(() => loop.shutdown(), isClosed(/TcpLoop was destroyed/));
  });

  it('setErrorClasses refuses anything but the two classes', () => {
    const N = native();
    assert.throws(() => N.setErrorClasses(undefined as never), TypeError);
    assert.throws(() => N.setErrorClasses({ ConnectionClosedError } as never), /NativeResourceError/);
  });

  it('per thread: the raw addon in a worker throws Errors with the code until it is handed its own classes', async () => {
    const file = nativeCandidates(packageRoot()).find((f) => existsSync(f));
    assert.ok(file, 'a built addon');
    const source = `
      const { parentPort, workerData } = require('node:worker_threads');
      const N = require(workerData);
      const probe = () => {
        const loop = new N.TcpLoop(() => {}, false);
        loop.destroy();
        try { loop.ref(); } catch (e) { return { name: e.constructor.name, code: e.code, message: e.message }; }
      };
      const before = probe();
      class MyClosed extends Error { constructor(m) { super(m); this.code = 'MINE'; } }
      N.setErrorClasses({ ConnectionClosedError: MyClosed, NativeResourceError: Error });
      parentPort.postMessage({ before, after: probe() });
    `;
    const worker = new Worker(source, { eval: true, workerData: file });
    try {
      const [result] = (await Promise.race([
        new Promise((resolve, reject) => {
          worker.once('message', (m) => resolve([m]));
          worker.once('error', reject);
        }),
        new Promise((_, reject) => setTimeout(() => reject(new Error('worker did not answer in 10 s')), 10_000).unref()),
      ])) as [{ before: Record<string, string>; after: Record<string, string> }];
      assert.deepEqual(result.before, { name: 'Error', code: 'ZS_CONNECTION_CLOSED', message: 'zserver native: the TcpLoop was destroyed' });
      assert.deepEqual(result.after, { name: 'MyClosed', code: 'MINE', message: 'zserver native: the TcpLoop was destroyed' });
    } finally {
      await worker.terminate();
    }
    // This thread's classes are untouched by the worker's.
    const loop = new (native().TcpLoop)(() => {}, false);
    loop.destroy();
    assert.throws(() => loop.ref(), ConnectionClosedError);
  });
});
