// The browser client (the real bundle, dist/browser/zserver.js as built by
// scripts/build-browser.mjs) in headless Chromium against a Server that
// listens on Node net (TCP) and WebSocket at once: every command kind in both
// directions, broadcasts, one online list shared with a Node TCP client, and
// reconnecting by itself after the server restarts on the same port. All of it
// twice: over BrowserWsTransport, and over WebSecureChannel wrapping it against
// a WebSocket endpoint with the `secure` option (there also: only AEAD records
// on the wire, and a wrong pin). In both, a second endpoint with the
// `compression` option: the page decodes its compressed answers and big stream.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { Page } from 'playwright-core';
import { ServerIdentity } from '../../lib/channel/handshake.js';
import type { SecureChannel } from '../../lib/channel/secure.js';
import type { CompressionLayer } from '../../lib/compression/layer.js';
import { Client } from '../../lib/framework/client.js';
import type { Peer } from '../../lib/framework/peer.js';
import { DataFrame } from '../../lib/protocol/dataframe.js';
import { NodeNetTransport } from '../../lib/transport/node-net.js';
import { FrameFlag, type FrameBatch } from '../../lib/transport/types.js';
import { compressibleText, fnv1a, pattern } from './client-page.js';
import { launchChromium, pageErrors, type TestBrowser } from './chromium.js';
import { SERVER_SPKI } from '../transport/native-tls-helpers.js';
import { freePort, md5hex, startPageServer, type PageServer } from './page-server.js';

type ZsTest = {
  connect(port: number, pin?: string): Promise<number>;
  clientCalls(): Promise<Record<string, unknown>>;
  snapshot(): {
    said: string[];
    pushed: unknown[];
    connects: number;
    disconnects: string[];
    reconnecting: number;
    connected: boolean;
    secure?: { handshakes: number; authFailures: number };
  };
  compressedCalls(port: number, pin: string | undefined, size: number): Promise<{ echoIntact: boolean; bufferIntact: boolean; protocolErrors: number; refused: string }>;
  closeExtra(): Promise<number>;
  wrongPin(port: number, pin: string): Promise<{ rejected: boolean; name?: string; code?: string; message?: string; cause?: { name?: string; code?: string }; connected?: boolean }>;
  echo(text: string): Promise<string>;
  close(): Promise<{ connected: boolean; threw: string }>;
};

/** Runs `zsTest[method](...args)` in the page. */
function inPage<K extends keyof ZsTest>(page: Page, method: K, ...args: Parameters<ZsTest[K]>): Promise<Awaited<ReturnType<ZsTest[K]>>> {
  return page.evaluate(
    ([m, a]) => ((globalThis as unknown as { zsTest: Record<string, (...x: unknown[]) => unknown> }).zsTest[m]!(...a) as Promise<never>),
    [method, args] as [string, unknown[]],
  ) as Promise<Awaited<ReturnType<ZsTest[K]>>>;
}

async function until(what: string, cond: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

// Over the default WebSocket server (NativeWsTransport on Linux), with and without the secure
// channel; and over wss:// (TLS in the native loop; the page itself is https from that port, so
// the browser client dials wss://), Chromium trusting the test certificate by its key's pin.
for (const secure of [false, true]) browserClientSuite(secure, false);
browserClientSuite(true, true);

function browserClientSuite(secure: boolean, tls: boolean): void {
  const identity = secure ? ServerIdentity.from(randomBytes(32)) : undefined;
  const wsLayers = identity ? { secure: { identity } } : {};
  const over = (secure ? 'WebSecureChannel(BrowserWsTransport) to a secure endpoint' : 'BrowserWsTransport') + (tls ? ' over wss://' : '');
  const scheme = tls ? 'https' : 'http';

  describe(`browser Client (the bundle) in headless Chromium over ${over}`, { timeout: 120_000 }, () => {
    let browser: TestBrowser;
    let srv: PageServer;
    let page: Page;
    let errors: string[];
    let browserPeer: Peer;
    /** Kind and flags of every frame the server's WebSocket transport received from the page. */
    const wire: { kind: number; flags: number }[] = [];

    before(async () => {
      srv = await startPageServer(await freePort(), await freePort(), wsLayers, undefined, tls);
      srv.ws.transport.on('frames', (b: FrameBatch) => {
        for (let i = 0; i < b.count; i++) wire.push({ kind: b.kinds[i]!, flags: b.flags[i]! });
      });
      browser = await launchChromium(tls ? [`--ignore-certificate-errors-spki-list=${SERVER_SPKI}`] : []);
      page = await browser.context.newPage();
      errors = pageErrors(page);
      await page.goto(`${scheme}://127.0.0.1:${srv.ws.address.port}/`);
      await page.waitForFunction(() => (globalThis as { zsTest?: unknown }).zsTest !== undefined, undefined, { timeout: 10_000 });
      await inPage(page, 'connect', srv.ws.address.port, identity?.fingerprint);
      await until('the server to see the page', () => srv.ws.count === 1);
      browserPeer = srv.ws.peers().next().value!;
    });

    after(async () => {
      await browser?.close();
      await srv?.close();
      identity?.close();
    });

    it('calls every command kind of the server: console, stream, direct, buffer, big stream, errors', async () => {
      const r = await inPage(page, 'clientCalls');
      assert.equal(r.echo, 'héllo ✓ from the browser');
      assert.equal(r.add, 42);
      assert.equal(r.addCb, -2);
      assert.equal(r.sentNote, true);
      assert.equal(r.sentFrame, true);
      assert.equal(r.md5IsBytes, true, 'callBuffer answers a Uint8Array');
      assert.equal(r.md5Hex, md5hex(pattern(300_000, 1)));
      assert.deepEqual(r.upload, { size: 3_000_000, md5: md5hex(pattern(3_000_000, 3)), name: 'file.bin', progressSteps: (r.upload as { progressSteps: number }).progressSteps, last: 3_000_000 });
      assert.ok((r.upload as { progressSteps: number }).progressSteps >= 3_000_000 / 65536, 'progress per chunk');
      assert.equal(r.unknown, 'ZS_UNKNOWN_COMMAND');
      assert.match(r.failed as string, /^E_PURPOSE: .*failed on purpose/);
      assert.equal(r.manyOk, true);
      // The direct kinds (no answer) arrived, in order with the rest.
      await until('the direct messages', () => srv.received.kept.length === 1);
      assert.deepEqual(srv.received.notes, ['direct text from the browser']);
      assert.deepEqual(srv.received.frames, [{ Data: ['frame', '1099511627776', [1.5, -2]], Ref: [1, 13, 10] }]);
      assert.deepEqual(srv.received.kept, [{ length: 100_000, md5: md5hex(pattern(100_000, 2)) }]);
      assert.deepEqual(errors, []);
    });

    it('serves the commands the server calls on it: console, stream, buffer, big stream, direct pushes', async () => {
      assert.equal(await browserPeer.callConsole('whoami', 'node'), 'browser got node');
      assert.equal((await browserPeer.call('mul', new DataFrame().writeInt32(6).writeInt32(7))).readInt32(), 42);
      const data = pattern(200_000, 4);
      const reversed = await browserPeer.callBuffer('reverse', data);
      assert.deepEqual(reversed, Buffer.from(data).reverse());
      const down = pattern(2_500_000, 5);
      const reply = await browserPeer.sendBigStream('download', down);
      assert.deepEqual([reply.readUInt32(), reply.readUInt32(), reply.readByte()], [down.length, fnv1a(down), 1]);
      browserPeer.sendConsole('said', 'to the page only');
      browserPeer.send('pushed', new DataFrame().writeString('pushed').writeInt32(7));
      await until('the pushes', async () => (await inPage(page, 'snapshot')).pushed.length === 1);
      const snap = await inPage(page, 'snapshot');
      assert.deepEqual(snap.said, ['to the page only']);
      assert.deepEqual(snap.pushed, [{ Data: ['pushed', 7], Ref: [1, 2] }]);
    });

    it('one online list over TCP and WebSocket: a Node TCP client and the page are both counted, iterated and reached by a broadcast', async () => {
      const transport = new NodeNetTransport();
      const nodeClient = new Client({ transport, host: '127.0.0.1', port: srv.tcp.address.port, quiet: true });
      const nodeSaid: string[] = [];
      nodeClient.directConsole('said', (text) => void nodeSaid.push(text));
      try {
        await nodeClient.connect();
        await until('the TCP client', () => srv.server.count === 2);
        assert.equal(srv.tcp.count, 1);
        assert.equal(srv.ws.count, 1);
        const seen: number[] = [];
        srv.server.forEachPeer((p) => seen.push(p.id));
        const byEndpoint = [...srv.tcp.peers(), ...srv.ws.peers()].map((p) => p.id);
        assert.deepEqual(seen.sort(), byEndpoint.sort(), 'the server iterates the peers of both endpoints');
        assert.equal(new Set([...srv.server.peers()].map((p) => p.id)).size, 2, 'one id pool');
        const before = (await inPage(page, 'snapshot')).said.length;
        assert.equal(srv.server.broadcastConsole('said', 'to everyone'), 2);
        await until('the broadcast in the page', async () => (await inPage(page, 'snapshot')).said.length === before + 1);
        await until('the broadcast at the TCP client', () => nodeSaid.length === 1);
        assert.equal((await inPage(page, 'snapshot')).said.at(-1), 'to everyone');
        assert.deepEqual(nodeSaid, ['to everyone']);
        // Endpoint lists stay apart: each endpoint's broadcast reaches its own peers only.
        assert.equal(srv.tcp.broadcastConsole('said', 'tcp only'), 1);
        await until('the TCP-only broadcast', () => nodeSaid.length === 2);
        assert.equal((await inPage(page, 'snapshot')).said.at(-1), 'to everyone');
      } finally {
        await nodeClient.close();
        await transport.shutdown();
      }
    });

    if (secure) {
      it('the server sees a secure peer: its SecureChannel counted the handshake, and the page sent only AEAD records', async () => {
        const stats = (srv.ws.stack as unknown as SecureChannel).secureStats(); // no compression option: the channel is the whole stack
        assert.equal(stats.handshakes, 1);
        assert.equal(stats.authFailures, 0);
        const application = wire.filter((f) => f.kind >= 8);
        assert.ok(application.length > 100, `${application.length} application frames on the wire`);
        assert.deepEqual(application.filter((f) => !(f.flags & FrameFlag.Encrypted)), [], 'every application frame is encrypted');
        assert.deepEqual((await inPage(page, 'snapshot')).secure, { handshakes: 1, handshakeFailures: 0, rekeysSent: 0, rekeysReceived: 0, authFailures: 0, truncations: 0, handshakesRefused: 0 });
      });

      it('a wrong pin: connect() rejects with ConnectError caused by HandshakeError, and the page stays connected', async () => {
        const wrong = 'cd'.repeat(32);
        const r = await inPage(page, 'wrongPin', srv.ws.address.port, wrong);
        assert.equal(r.rejected, true);
        assert.equal(r.name, 'ConnectError');
        assert.equal(r.code, 'ZS_CONNECT');
        assert.deepEqual(r.cause, { name: 'HandshakeError', code: 'ZS_HANDSHAKE' });
        assert.match(r.message!, new RegExp(`expected fingerprint ${wrong}, received ${identity!.fingerprint}`));
        assert.equal(r.connected, false);
        assert.equal(srv.ws.count, 1, 'only the first page client is online');
        assert.equal(await inPage(page, 'echo', 'still here'), 'still here');
        assert.deepEqual(errors, []);
      });
    }

    it('an endpoint with `compression`: the page decodes its compressed answers (300 kB echo and buffer) and a 2.5 MB big stream; `compression: {}` throws in the page', async () => {
      // The page comes from the first server: this second one must allow its origin.
      const compressing = await startPageServer(0, 0, { ...wsLayers, compression: {} }, [`${scheme}://127.0.0.1:${srv.ws.address.port}`], tls);
      try {
        const r = await inPage(page, 'compressedCalls', compressing.ws.address.port, identity?.fingerprint, 300_000);
        assert.deepEqual({ ...r, refused: undefined }, { echoIntact: true, bufferIntact: true, protocolErrors: 0, refused: undefined });
        assert.match(r.refused, /^TypeError: options.compression: the browser build decodes compressed frames but cannot send them/);
        const serverPeer = compressing.ws.peers().next().value!;
        const down = Buffer.from(compressibleText(2_500_000, 7));
        const reply = await serverPeer.sendBigStream('download', down);
        assert.deepEqual([reply.readUInt32(), reply.readUInt32(), reply.readByte()], [down.length, fnv1a(down), 1]);
        const stats = (compressing.ws.stack as CompressionLayer).compressionStats();
        // The 300 kB echo, the 300 kB buffer answer, 2.5 MB in chunks of 64 KiB (39): all text.
        assert.ok(stats.framesCompressed >= 40, `${stats.framesCompressed} frames compressed`);
        assert.ok(stats.bytesAfterCompression < stats.bytesBeforeCompression * 0.6, `${stats.bytesAfterCompression} of ${stats.bytesBeforeCompression} bytes`);
        assert.equal(stats.decodeFailures, 0);
        assert.equal(await inPage(page, 'closeExtra'), 0, 'no protocol error in the page');
      } finally {
        await compressing.close();
      }
      // The endpoint without the option has no compression layer: it compresses nothing (and would
      // refuse compressed frames). A native transport is itself the stack there, with its
      // offload's counters (all zero without the option).
      const plain = srv.ws.stack as Partial<CompressionLayer> & { name: string };
      if (plain.name.startsWith('native')) assert.equal(plain.compressionStats!().framesCompressed, 0);
      else assert.equal(typeof plain.compressionStats, 'undefined');
      assert.deepEqual(errors, []);
    });

    it('reconnects by itself after the server restarts on the same ports, and calls work again', async () => {
      const { port: tcpPort } = srv.tcp.address;
      const { port: wsPort } = srv.ws.address;
      assert.equal(await inPage(page, 'echo', 'before'), 'before');
      await srv.close();
      await until('the page to see the disconnect', async () => !(await inPage(page, 'snapshot')).connected);
      // While the client reconnects, a call waits for the new connection (within its timeout) instead of failing.
      await page.evaluate(() => {
        const g = globalThis as unknown as { zsTest: ZsTest; zsDown?: Promise<string> };
        g.zsDown = g.zsTest.echo('while down').then(
          (text) => text,
          (err: { code?: string }) => err.code ?? 'no code',
        );
      });
      await new Promise((r) => setTimeout(r, 300)); // a few failed attempts against a closed port
      srv = await startPageServer(tcpPort, wsPort, wsLayers, undefined, tls);
      await until('the page to reconnect', async () => (await inPage(page, 'snapshot')).connects === 2, 15_000);
      assert.equal(await page.evaluate(() => (globalThis as unknown as { zsDown: Promise<string> }).zsDown), 'while down');
      const snap = await inPage(page, 'snapshot');
      assert.ok(snap.reconnecting >= 1);
      assert.deepEqual(snap.disconnects.length, 1);
      if (secure) assert.deepEqual(snap.secure, { ...snap.secure, handshakes: 2, authFailures: 0 }, 'the Client re-dialled through the secure channel');
      assert.equal(await inPage(page, 'echo', 'after'), 'after');
      await until('the server to count the page', () => srv.server.count === 1);
      assert.equal(srv.server.broadcastConsole('said', 'after restart'), 1);
      await until('the broadcast after the restart', async () => (await inPage(page, 'snapshot')).said.at(-1) === 'after restart');
      const closed = await inPage(page, 'close');
      assert.deepEqual(closed, { connected: false, threw: 'ZS_CONNECTION_CLOSED' });
      await until('the server to see the page leave', () => srv.server.count === 0);
      assert.deepEqual(errors, []);
    });
  });
}
