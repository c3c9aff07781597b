import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { createTransport, transportAvailable, TransportUnavailableError } from '../../lib/transport/factory.js';
import { MemoryTransport } from '../../lib/transport/memory.js';

describe('zserver serve', () => {
  it('serves test commands of every kind and demonstrates them (memory transport, --once)', () => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', 'bin/zserver.ts', 'serve', '--transport', 'memory', '--once'], {
      encoding: 'utf8',
      timeout: 60_000,
    });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /listening on 127\.0\.0\.1:9818 over memory/);
    assert.match(r.stdout, /commands: echo, stats, add, echo-frame, log, log-frame, md5, upload/);
    assert.match(r.stdout, /add\(40, 2\) +-> 42/);
    assert.match(r.stdout, /md5\(buffer 'abc'\) +-> 900150983cd24fb0d6963f7d28e17f72/);
    assert.match(r.stdout, /upload\(8 MiB big stream\) +-> 8388608 bytes/);
    assert.match(r.stdout, /\[peer 1\] a direct console message/);
  });

  it('enables no compression unless --compression: a compressed frame then closes its peer with reason protocol', async () => {
    const { startServe } = await import('../../lib/cli/serve.js');
    const { compress } = await import('../../lib/compression/index.js');
    const { FrameFlag } = await import('../../lib/transport/types.js');
    const base = { transport: 'memory' as const, host: 'serve-test', port: 0, wsPort: null, once: true };
    const plain = await startServe(base, 'memory');
    const raw = new MemoryTransport();
    try {
      assert.equal(plain.tcp.stack, plain.tcp.transport, 'no compression layer');
      const closes: string[] = [];
      plain.server.on('disconnect', (_p, reason) => closes.push(reason));
      const p = await raw.connect(plain.tcp.address);
      const text = Buffer.from(`\x04echo${'some text to compress, '.repeat(100)}`, 'latin1');
      raw.send(p, 10, FrameFlag.Compressed, compress(text, 'deflate-fixed'));
      const end = Date.now() + 3000;
      while (closes.length === 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 5));
      assert.deepEqual(closes, ['protocol']);
    } finally {
      await raw.shutdown();
      await plain.close();
    }
    const compressing = await startServe({ ...base, compression: true }, 'memory');
    try {
      assert.notEqual(compressing.tcp.stack, compressing.tcp.transport, 'a compression layer with --compression');
      assert.match(compressing.tcp.stack.name, /^compress\(/);
    } finally {
      await compressing.close();
    }
  });

  it('rejects unknown options with the usage', () => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', 'bin/zserver.ts', 'serve', '--frobnicate'], { encoding: 'utf8' });
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /unknown option '--frobnicate'/);
  });
});

describe('createTransport', () => {
  it('builds transports by name and names a missing one', async () => {
    assert.ok((await createTransport('memory')) instanceof MemoryTransport);
    for (const name of ['native', 'node-net'] as const) {
      if (await transportAvailable(name)) {
        const t = await createTransport(name);
        assert.equal(typeof t.send, 'function');
        await t.shutdown();
      } else {
        await assert.rejects(createTransport(name), (e: unknown) => e instanceof TransportUnavailableError && /is not part of this build/.test(e.message));
      }
    }
    await assert.rejects(createTransport('carrier-pigeon' as 'memory'), RangeError);
  });
});
