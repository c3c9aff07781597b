// The browser bundle (scripts/build-browser.mjs) holds the client framework,
// DataFrame and BrowserWsTransport and nothing of Node; and the browser
// platform seam behaves like the Node one.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import * as nodePlatform from '../../lib/platform.js';
import * as webPlatform from '../../lib/platform.browser.js';
import { bundleBrowser } from '../../scripts/build-browser.mjs';

const here = fileURLToPath(new URL('.', import.meta.url));

describe('browser bundle', () => {
  it('has no node: import, require() or Node global, and uses the browser platform file', async () => {
    const b = await bundleBrowser();
    assert.deepEqual(b.problems, []);
    assert.ok(b.inputs.includes('lib/platform.browser.ts'), b.inputs.join(' '));
    assert.ok(!b.inputs.includes('lib/platform.ts'));
    for (const f of ['lib/framework/client.ts', 'lib/protocol/dataframe.ts', 'lib/transport/browser-ws.ts']) assert.ok(b.inputs.includes(f), f);
    // The one frame codec and the one WebSocket core are the Node transports' too (node-net-core.ts,
    // ws-base.ts import them), so they must stay browser-safe: they are in this bundle.
    for (const f of ['lib/transport/frame-codec.ts', 'lib/transport/ws-core.ts', 'lib/errors.ts']) assert.ok(b.inputs.includes(f), f);
    assert.ok(!b.inputs.some((f) => /ws-frames|ws-dial/.test(f)), b.inputs.join(' '));
    // No server, native or Node-socket code rides along.
    assert.ok(!b.inputs.some((f) => /server\.ts$|native|node-net|uws|ws-base|ws-client/.test(f)), b.inputs.join(' '));
    for (const name of ['Client', 'DataFrame', 'BrowserWsTransport', 'RemoteError', 'ConnectionClosedError']) {
      assert.match(b.code, new RegExp(`export \\{[^}]*\\b${name}\\b`), `exports ${name}`);
    }
  });

  it('the check finds each kind of Node dependency', async () => {
    const b = await bundleBrowser({ entry: join(here, 'fixtures', 'node-leak.ts') });
    assert.ok(b.problems.some((p) => /imports node:events/.test(p)), b.problems.join('\n'));
    assert.ok(b.problems.some((p) => /Node global 'Buffer'/.test(p)), b.problems.join('\n'));
    assert.ok(b.problems.some((p) => /Node global 'process'/.test(p)), b.problems.join('\n'));
  });
});

describe('platform seam: the browser file agrees with the Node file', () => {
  const bytes = (u: Uint8Array) => Array.from(u);

  it('UTF-8 length, encoding, writing and decoding (lone surrogates included)', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 80 }), (s) => {
        assert.equal(webPlatform.utf8Length(s), nodePlatform.utf8Length(s));
        const enc = webPlatform.utf8Encode(s);
        assert.deepEqual(bytes(enc), bytes(nodePlatform.utf8Encode(s)));
        const at = 3;
        const a = new Uint8Array(at + enc.length + 2);
        const b = new Uint8Array(at + enc.length + 2);
        assert.equal(webPlatform.utf8Write(a, at, s), nodePlatform.utf8Write(b, at, s));
        assert.deepEqual(bytes(a), bytes(b));
        assert.equal(webPlatform.utf8Decode(a, at, at + enc.length), nodePlatform.utf8Decode(b, at, at + enc.length));
      }),
      { numRuns: 500 },
    );
  });

  it('base64, copies and joins', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 5 }), (parts) => {
        const total = parts.reduce((n, p) => n + p.length, 0);
        for (const p of parts) {
          const text = webPlatform.base64Encode(p);
          assert.equal(text, nodePlatform.base64Encode(p));
          assert.deepEqual(bytes(webPlatform.base64Decode(text)), bytes(p));
          const copy = webPlatform.copyBytes(p);
          assert.deepEqual(bytes(copy), bytes(p));
          if (p.length > 0) assert.notEqual(copy.buffer, p.buffer);
        }
        assert.deepEqual(bytes(webPlatform.concatBytes(parts, total)), bytes(nodePlatform.concatBytes(parts, total)));
      }),
      { numRuns: 200 },
    );
    // 100 kB of base64 goes through String.fromCharCode in pieces, not one huge argument list.
    const big = new Uint8Array(100_000).map((_, i) => i * 7);
    assert.equal(webPlatform.base64Encode(big), nodePlatform.base64Encode(big));
  });

  it('host names pass through to the browser, which resolves them itself', async () => {
    assert.equal(webPlatform.isIpLiteral('example.com'), true);
    assert.deepEqual(await webPlatform.resolveHost('example.com', 'ipv4first'), ['example.com']);
    assert.equal(nodePlatform.isIpLiteral('example.com'), false);
    assert.equal(nodePlatform.isIpLiteral('::1'), true);
  });

  it('the web emitter: order, once, off, error without a listener', () => {
    const e = new webPlatform.EventEmitter<{ a: [n: number]; error: [err: Error] }>();
    const seen: string[] = [];
    const one = (n: number) => seen.push(`one${n}`);
    e.on('a', one);
    e.once('a', (n) => seen.push(`once${n}`));
    e.on('a', (n) => {
      seen.push(`two${n}`);
      e.off('a', one);
    });
    assert.equal(e.emit('a', 1), true);
    e.emit('a', 2);
    assert.deepEqual(seen, ['one1', 'once1', 'two1', 'two2']);
    assert.equal(e.listenerCount('a'), 1);
    assert.throws(() => e.emit('error', new Error('boom')), /boom/);
    const listener = () => seen.push('never');
    e.once('a', listener);
    e.off('a', listener);
    e.emit('a', 3);
    assert.ok(!seen.includes('never'));
  });
});
