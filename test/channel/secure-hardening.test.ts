/**
 * The secure channel's hardening (issue 13): clients refuse to connect without
 * a pin unless told otherwise, the authenticated close record and truncation,
 * secrets wiped on every failure path, one ClientHello per connection, the cap
 * on handshakes in progress, the fair HandshakeQueue, and an honest client
 * still served during a ClientHello flood (bench/handshake-flood.ts, short).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { ServerIdentity } from '../../lib/channel/handshake.js';
import { addressKey, HandshakeQueue } from '../../lib/channel/handshake-queue.js';
import { SecureChannel } from '../../lib/channel/secure.js';
import type { SecureChannelOptions } from '../../lib/channel/options.js';
import { WebSecureChannel } from '../../lib/channel/web/index.js';
import type { Subtle } from '../../lib/channel/web/subtle.js';
import { AlertCode, encodeHello, SecureKind, TAG_BYTES } from '../../lib/channel/wire.js';
import { Client } from '../../lib/framework/client.js';
import { useFrameStages } from '../../lib/framework/pipeline.js';
import { nodeStages } from '../../lib/framework/stack.js';
import { native } from '../../lib/native.js';
import { MemoryNetwork, MemoryTransport } from '../../lib/transport/memory.js';
import { NativeTcpTransport } from '../../lib/transport/native-tcp.js';
import { NodeNetTransport } from '../../lib/transport/node-net.js';
import { FrameFlag, type Endpoint, type FrameBatch, type PeerId, type Transport } from '../../lib/transport/types.js';

// The Node entry's choice (lib/index.ts): Clients made here run the Node frame pipeline stages.
useFrameStages(nodeStages);

const identity = ServerIdentity.from(randomBytes(32));
const pin = identity.fingerprint;

async function until(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

type Closes = [PeerId, string, string][];

function closes(t: { on(e: 'close', l: (p: PeerId, r: string, d: string) => void): unknown }): Closes {
  const list: Closes = [];
  t.on('close', (p, r, d) => list.push([p, r, d]));
  return list;
}

function payloads(t: Transport): string[] {
  const got: string[] = [];
  t.on('frames', (b: FrameBatch) => {
    for (let i = 0; i < b.count; i++) got.push(Buffer.from(b.data.subarray(b.offsets[i]!, b.offsets[i]! + b.lengths[i]!)).toString());
  });
  return got;
}

interface Pair {
  server: Transport;
  client: Transport;
  endpoint: Endpoint;
}

const kinds: [string, () => Pair][] = [
  [
    'MemoryTransport',
    () => {
      const network = new MemoryNetwork();
      return { server: new MemoryTransport({ network }), client: new MemoryTransport({ network }), endpoint: { host: 'mem', port: 0 } };
    },
  ],
  ['NodeNetTransport', () => ({ server: new NodeNetTransport(), client: new NodeNetTransport(), endpoint: { host: '127.0.0.1', port: 0 } })],
];

async function securePair(pair: Pair, serverOptions: SecureChannelOptions = {}, clientOptions: SecureChannelOptions = { pin }) {
  const server = new SecureChannel(pair.server, { identity, ...serverOptions });
  const client = new SecureChannel(pair.client, clientOptions);
  const opened: PeerId[] = [];
  server.on('open', (p) => opened.push(p));
  const serverCloses = closes(server);
  const clientCloses = closes(client);
  const serverGot = payloads(server);
  const at = await server.listen(pair.endpoint);
  const peer = await client.connect(at);
  await until(() => opened.length === 1, 'server open');
  const done = async () => {
    await client.shutdown();
    await server.shutdown();
  };
  return { server, client, peer, opened, serverPeer: opened[0]!, serverCloses, clientCloses, serverGot, at, done };
}

describe('secure channel clients need a pin', () => {
  it('refuses a client without pin, naming keygen and insecureAcceptAnyServer', () => {
    const pattern = /needs options\.pin, the server's fingerprint \(`zserver keygen` prints it.*insecureAcceptAnyServer: true/;
    assert.throws(() => new SecureChannel(new MemoryTransport()), { name: 'TypeError', message: pattern });
    assert.throws(() => new SecureChannel(new MemoryTransport(), {}), { name: 'TypeError', message: pattern });
    assert.throws(() => new WebSecureChannel(new MemoryTransport()), { name: 'TypeError', message: pattern });
    assert.throws(() => new SecureChannel(new MemoryTransport(), { insecureAcceptAnyServer: 'yes' as never }), /insecureAcceptAnyServer must be a boolean/);
  });

  it('refuses a framework Client with secure: {} when it is made', () => {
    assert.throws(() => new Client({ transport: new MemoryTransport(), host: 'mem', port: 1, secure: {} }), { name: 'TypeError', message: /options\.pin/ });
  });

  it('rejects connect() of a server-side channel that has no pin', async () => {
    const network = new MemoryNetwork();
    const server = new SecureChannel(new MemoryTransport({ network }), { identity });
    const other = new SecureChannel(new MemoryTransport({ network }), { identity });
    try {
      const at = await server.listen({ host: 'mem', port: 0 });
      await assert.rejects(other.connect(at), { name: 'TypeError', message: /options\.pin/ });
      assert.equal(server.stats().connections, 0);
    } finally {
      await other.shutdown();
      await server.shutdown();
    }
  });

  it('connects to any server with insecureAcceptAnyServer: true, and reports its fingerprint', async () => {
    for (const make of [(t: Transport) => new SecureChannel(t, { insecureAcceptAnyServer: true }), (t: Transport) => new WebSecureChannel(t, { insecureAcceptAnyServer: true })]) {
      const network = new MemoryNetwork();
      const server = new SecureChannel(new MemoryTransport({ network }), { identity });
      const client = make(new MemoryTransport({ network }));
      try {
        const peer = await client.connect(await server.listen({ host: 'mem', port: 0 }));
        assert.equal(client.remoteFingerprint(peer), pin);
      } finally {
        await client.shutdown();
        await server.shutdown();
      }
    }
  });
});

for (const [name, makePair] of kinds) {
  describe(`authenticated close over ${name}`, () => {
    it('a close from either side is reported as remote after the frames before it', async () => {
      const t = await securePair(makePair());
      try {
        for (let i = 0; i < 20; i++) t.client.send(t.peer, 8, 0, Buffer.from(`m${i}`));
        t.client.close(t.peer);
        await until(() => t.serverCloses.length === 1, 'server close');
        assert.deepEqual(t.serverGot, Array.from({ length: 20 }, (_, i) => `m${i}`));
        assert.equal(t.serverCloses[0]![1], 'remote');
        assert.match(t.serverCloses[0]![2], /authenticated close/);
        assert.equal(t.clientCloses[0]![1], 'local');
        assert.throws(() => t.client.send(t.peer, 8, 0, Buffer.from('late')), { code: 'ZS_CONNECTION_CLOSED' });
        const second = await t.client.connect(t.at);
        await until(() => t.opened.length === 2, 'second open');
        t.server.close(t.opened[1]!);
        await until(() => t.clientCloses.length === 2, 'client close');
        assert.deepEqual(t.clientCloses[1]!.slice(0, 2), [second, 'remote']);
        assert.equal(t.server.secureStats().truncations + t.client.secureStats().truncations, 0);
      } finally {
        await t.done();
      }
    });

    it('shutdown() sends every open peer its close record first: they see a clean close', async () => {
      const t = await securePair(makePair());
      try {
        await t.server.shutdown();
        await until(() => t.clientCloses.length === 1, 'client close');
        assert.deepEqual(t.clientCloses[0]!.slice(0, 2), [t.peer, 'remote']);
        assert.deepEqual(t.serverCloses.map((c) => c[1]), ['shutdown']);
      } finally {
        await t.done();
      }
    });

    it('a connection cut after the handshake without the close record is reported as truncated (auth)', async () => {
      const pair = makePair();
      const t = await securePair(pair);
      try {
        t.client.send(t.peer, 8, 0, Buffer.from('before the cut'));
        pair.client.close(t.peer); // the transport below closes cleanly: no close record
        await until(() => t.serverCloses.length === 1, 'server close');
        assert.equal(t.serverCloses[0]![1], 'auth');
        assert.match(t.serverCloses[0]![2], /^truncated: no authenticated close/);
        assert.deepEqual(t.serverGot, ['before the cut']);
        assert.equal(t.server.secureStats().truncations, 1);
      } finally {
        await t.done();
      }
    });

    it('an attacker who drops the close record on the way is detected; a close record that carries data is refused', async () => {
      for (const edit of ['drop', 'pad'] as const) {
        const pair = makePair();
        const send = pair.client.send.bind(pair.client);
        let established = false;
        pair.client.send = (peer, kind, flags, payload) => {
          if (!established || kind !== SecureKind.ClientFinished) return send(peer, kind, flags, payload);
          return edit === 'drop' ? true : send(peer, kind, flags, Buffer.concat([payload, Buffer.alloc(1)]));
        };
        const t = await securePair(pair);
        established = true;
        try {
          t.client.close(t.peer);
          await until(() => t.serverCloses.length === 1, `server close (${edit})`);
          assert.equal(t.serverCloses[0]![1], 'auth', edit);
          assert.match(t.serverCloses[0]![2], edit === 'drop' ? /^truncated: no authenticated close/ : /unexpected frame kind 4/, edit);
        } finally {
          await t.done();
        }
      }
    });
  });
}

describe('authenticated close of the browser channel', () => {
  it('closes cleanly both ways and reports a cut connection as truncated', async () => {
    const network = new MemoryNetwork();
    const serverT = new MemoryTransport({ network });
    const server = new SecureChannel(serverT, { identity });
    const client = new WebSecureChannel(new MemoryTransport({ network }), { pin });
    const opened: PeerId[] = [];
    server.on('open', (p) => opened.push(p));
    const serverCloses = closes(server);
    const clientCloses = closes(client);
    try {
      const at = await server.listen({ host: 'mem', port: 0 });
      const a = await client.connect(at);
      client.close(a);
      await until(() => serverCloses.length === 1, 'server close');
      assert.deepEqual(serverCloses[0]!.slice(1, 2), ['remote']);
      const b = await client.connect(at);
      await until(() => opened.length === 2, 'second open');
      server.close(opened[1]!);
      await until(() => clientCloses.length === 2, 'client close');
      assert.deepEqual(clientCloses[1]!.slice(0, 2), [b, 'remote']);
      await client.connect(at);
      await until(() => opened.length === 3, 'third open');
      serverT.close(opened[2]!); // below the channel: no close record
      await until(() => clientCloses.length === 3, 'truncated close');
      assert.equal(clientCloses[2]![1], 'auth');
      assert.match(clientCloses[2]![2], /^truncated: no authenticated close/);
      assert.equal(client.secureStats().truncations, 1);
    } finally {
      await client.shutdown();
      await server.shutdown();
    }
  });
});

describe('authenticated close with record offload (NativeTcpTransport)', () => {
  it('an offloaded side seals and recognises the close record (kind 4) against a JavaScript peer', async () => {
    for (const [offloaded, ioThread] of [['server', false], ['client', false], ['server', true], ['client', true]] as const) {
      const serverInner = offloaded === 'server' ? new NativeTcpTransport({ ioThread }) : new NodeNetTransport();
      const clientInner = offloaded === 'client' ? new NativeTcpTransport({ ioThread }) : new NodeNetTransport();
      const server = new SecureChannel(serverInner, { identity, offload: offloaded === 'server' });
      const client = new SecureChannel(clientInner, { pin, offload: offloaded === 'client' });
      const opened: PeerId[] = [];
      server.on('open', (p) => opened.push(p));
      const serverCloses = closes(server);
      const clientCloses = closes(client);
      try {
        const at = await server.listen({ host: '127.0.0.1', port: 0 });
        const first = await client.connect(at);
        await until(() => opened.length === 1, 'open');
        client.close(first);
        await until(() => serverCloses.length === 1, `server close (${offloaded} offloaded)`);
        assert.equal(serverCloses[0]![1], 'remote', `${offloaded} offloaded: ${serverCloses[0]![2]}`);
        const peer = await client.connect(at);
        await until(() => opened.length === 2, 'second open');
        server.close(opened[1]!);
        await until(() => clientCloses.length === 2, 'client close');
        assert.deepEqual(clientCloses[1]!.slice(0, 2), [peer, 'remote'], `${offloaded} offloaded: ${clientCloses[1]![2]}`);
      } finally {
        await client.shutdown();
        await server.shutdown();
      }
    }
  });
});

describe('ephemeral secrets are wiped on every failure path', () => {
  /** Captures every X25519 key pair ClientHandshake makes and every secret kxClient returns. */
  function captureClient() {
    const N = native();
    const keypair = N.x25519Keypair;
    const kx = N.kxClient;
    const pairs: Buffer[] = [];
    const secrets: Buffer[] = [];
    N.x25519Keypair = () => {
      const out = keypair.call(N);
      pairs.push(out);
      return out;
    };
    N.kxClient = (a, b, c) => {
      const out = kx.call(N, a, b, c);
      if (typeof out !== 'number') secrets.push(out);
      return out;
    };
    const restore = () => {
      N.x25519Keypair = keypair;
      N.kxClient = kx;
    };
    return { pairs, secrets, restore };
  }
  const zero = (b: Uint8Array) => b.every((x) => x === 0);

  it('client: after a timeout, a close mid-handshake, a refused pin and a forged ServerHello', async () => {
    const cases: [string, (pair: Pair) => Promise<Endpoint>, SecureChannelOptions, RegExp][] = [
      ['timeout', async (pair) => pair.server.listen(pair.endpoint), { pin, handshakeTimeout: 50 }, /timed out/],
      [
        'close mid-handshake',
        async (pair) => {
          pair.server.on('frames', (b) => pair.server.close(b.peers[0]!));
          return pair.server.listen(pair.endpoint);
        },
        { pin },
        /closed during the handshake/,
      ],
      ['refused pin', async (pair) => new SecureChannel(pair.server, { identity }).listen(pair.endpoint), { pin: 'ab'.repeat(32) }, /expected fingerprint/],
      [
        'forged ServerHello',
        async (pair) => {
          const send = pair.server.send.bind(pair.server);
          pair.server.send = (p, k, f, payload) => (k === SecureKind.ServerHello ? send(p, k, f, Buffer.from(payload).fill(1, 70, 71)) : send(p, k, f, payload));
          return new SecureChannel(pair.server, { identity }).listen(pair.endpoint);
        },
        { pin },
        /signature does not verify/,
      ],
    ];
    for (const [what, serve, options, error] of cases) {
      const pair = kinds[0]![1]();
      const cap = captureClient();
      const client = new SecureChannel(pair.client, options);
      try {
        await assert.rejects(client.connect(await serve(pair)), error, what);
        assert.equal(cap.pairs.length, 1, what);
        assert.ok(zero(cap.pairs[0]!.subarray(0, 32)), `${what}: the X25519 private key is wiped`);
        assert.equal(cap.secrets.length, 0, what);
      } finally {
        cap.restore();
        await client.shutdown();
        await pair.server.shutdown();
      }
    }
  });

  it('client: the derived traffic secrets are wiped once the record keys exist', async () => {
    const cap = captureClient();
    try {
      const t = await securePair(kinds[0]![1]());
      await t.done();
      assert.equal(cap.secrets.length, 1);
      assert.ok(zero(cap.secrets[0]!) && zero(cap.pairs[0]!.subarray(0, 32)));
    } finally {
      cap.restore();
    }
  });

  it('server: the secrets of a handshake that fails after ServerHello are wiped', async () => {
    // The secrets are views of the native call's output buffer: checking them checks that buffer.
    const proto = ServerIdentity.prototype;
    const respond = proto.respond;
    const outs: Buffer[] = [];
    proto.respond = function (this: ServerIdentity, ...a: Parameters<ServerIdentity['respond']>) {
      const out = respond.apply(this, a);
      outs.splice(0, outs.length, out.c2s, out.s2c);
      return out;
    };
    // The server computes handshakes off the JS thread by default (handshakeOffThread): the same check there.
    const respondAsync = proto.respondAsync;
    proto.respondAsync = function (this: ServerIdentity, hello, suite, done) {
      respondAsync.call(this, hello, suite, (err, out) => {
        if (out !== undefined) outs.splice(0, outs.length, out.c2s, out.s2c);
        done(err, out);
      });
    };
    try {
      for (const ending of ['bad ClientFinished', 'client gone'] as const) {
        const pair = kinds[1]![1]();
        const server = new SecureChannel(pair.server, { identity });
        const serverCloses: string[] = [];
        server.on('close', (_p, r) => serverCloses.push(r));
        const raw = pair.client;
        const got: number[] = [];
        raw.on('frames', (b) => got.push(b.kinds[0]!));
        try {
          const peer = await raw.connect(await server.listen(pair.endpoint));
          raw.send(peer, SecureKind.ClientHello, 0, encodeHello(native().x25519Keypair().subarray(32), ['aes-256-gcm']));
          await until(() => got.includes(SecureKind.ServerHello), 'ServerHello');
          if (ending === 'bad ClientFinished') raw.send(peer, SecureKind.ClientFinished, FrameFlag.Encrypted, Buffer.alloc(TAG_BYTES, 7));
          else raw.close(peer);
          await until(() => server.stats().closes[ending === 'client gone' ? 'remote' : 'auth'] === 1, ending);
          assert.equal(outs.length, 2);
          assert.ok(outs.every(zero), `${ending}: both traffic secrets are wiped`);
          assert.equal(server.secureStats().handshakeFailures, ending === 'bad ClientFinished' ? 1 : 0);
        } finally {
          outs.length = 0;
          await raw.shutdown();
          await server.shutdown();
        }
      }
    } finally {
      proto.respond = respond;
      proto.respondAsync = respondAsync;
    }
  });

  it('browser channel: the raw shared secret and HKDF output are zeroed when the derivation fails', async () => {
    const real = globalThis.crypto.subtle;
    const raw: ArrayBuffer[] = [];
    const subtle = new Proxy(real, {
      get(target, prop) {
        if (prop === 'deriveBits') {
          return async (...a: unknown[]) => {
            const out = await (target.deriveBits as (...x: unknown[]) => Promise<ArrayBuffer>).apply(target, a);
            raw.push(out);
            return out;
          };
        }
        if (prop === 'importKey') {
          // The traffic secrets become HMAC keys: fail there, after both raw derivations.
          return (...a: unknown[]) =>
            (a[2] as { name?: string }).name === 'HMAC' ? Promise.reject(new Error('simulated failure')) : (target.importKey as (...x: unknown[]) => Promise<unknown>).apply(target, a);
        }
        const v = Reflect.get(target, prop) as unknown;
        return typeof v === 'function' ? (v as (...x: unknown[]) => unknown).bind(target) : v;
      },
    }) as Subtle;
    const network = new MemoryNetwork();
    const server = new SecureChannel(new MemoryTransport({ network }), { identity });
    const client = new WebSecureChannel(new MemoryTransport({ network }), { pin, subtle });
    try {
      await assert.rejects(client.connect(await server.listen({ host: 'mem', port: 0 })), /simulated failure/);
      assert.equal(raw.length, 2, 'the X25519 shared secret and the HKDF output');
      for (const b of raw) assert.ok(zero(new Uint8Array(b)));
    } finally {
      await client.shutdown();
      await server.shutdown();
    }
  });
});

describe('handshake limits', () => {
  it('a second ClientHello on one connection closes it with reason protocol, during or after the handshake', async () => {
    const pair = kinds[1]![1]();
    const server = new SecureChannel(pair.server, { identity });
    const serverCloses = closes(server);
    const raw = new NodeNetTransport();
    const alerts: number[] = [];
    raw.on('frames', (b) => {
      for (let i = 0; i < b.count; i++) if (b.kinds[i] === SecureKind.Alert) alerts.push(b.data[b.offsets[i]!]!);
    });
    const rawCloses = closes(raw);
    try {
      const at = await server.listen(pair.endpoint);
      const hello = encodeHello(native().x25519Keypair().subarray(32), ['aes-256-gcm']);
      const peer = await raw.connect(at);
      raw.send(peer, SecureKind.ClientHello, 0, hello);
      raw.send(peer, SecureKind.ClientHello, 0, hello); // replayed on the same connection
      await until(() => server.stats().closes.protocol === 1 && rawCloses.length === 1, 'protocol close');
      assert.deepEqual(alerts, [AlertCode.Handshake]);
      // After the handshake: a ClientHello sent in clear below an established channel.
      const client = new SecureChannel(pair.client, { pin });
      const cp = await client.connect(at);
      await until(() => serverCloses.length === 0 && server.stats().connections === 1, 'open');
      pair.client.send(cp, SecureKind.ClientHello, 0, hello);
      await until(() => serverCloses.length === 1, 'server close');
      assert.equal(serverCloses[0]![1], 'protocol');
      assert.match(serverCloses[0]![2], /a second ClientHello/);
      await client.shutdown();
    } finally {
      await raw.shutdown();
      await server.shutdown();
    }
  });

  it('a connection that never sends its ClientHello is closed at the handshake timeout and frees its slot', async () => {
    const server = new SecureChannel(new NodeNetTransport(), { identity, maxHandshakes: 1, handshakeTimeout: 150 });
    const raw = new NodeNetTransport();
    const rawCloses = closes(raw);
    const client = new SecureChannel(new NodeNetTransport(), { pin });
    try {
      const at = await server.listen({ host: '127.0.0.1', port: 0 });
      await raw.connect(at);
      await until(() => rawCloses.length === 1, 'timeout close', 3000);
      assert.equal(server.stats().closes.timeout, 1);
      assert.equal(server.secureStats().handshakeFailures, 1);
      // The one slot is free again: a client from the same address completes its handshake.
      const peer = await client.connect(at);
      assert.equal(client.remoteFingerprint(peer), pin);
      assert.equal(server.secureStats().handshakesRefused, 0);
    } finally {
      await client.shutdown();
      await raw.shutdown();
      await server.shutdown();
    }
  });

  it('caps handshakes in progress; at the cap the address holding the most gives way', async () => {
    const server = new SecureChannel(new NodeNetTransport(), { identity, maxHandshakes: 3 });
    const flood = new NodeNetTransport();
    const floodCloses = closes(flood);
    const alerts: number[] = [];
    flood.on('frames', (b) => {
      for (let i = 0; i < b.count; i++) if (b.kinds[i] === SecureKind.Alert) alerts.push(b.data[b.offsets[i]!]!);
    });
    const honest = new SecureChannel(new NodeNetTransport(), { pin });
    try {
      const at = await server.listen({ host: '127.0.0.1', port: 0 });
      // Three connections that never send a ClientHello hold every slot.
      for (let i = 0; i < 3; i++) await flood.connect(at, { localAddress: '127.0.0.1' });
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(floodCloses.length, 0);
      // A fourth from the same address is refused: its address holds the most.
      await flood.connect(at, { localAddress: '127.0.0.1' });
      await until(() => floodCloses.length === 1, 'refused');
      assert.equal(server.secureStats().handshakesRefused, 1);
      // A client from another address takes the newest slot of 127.0.0.1 and completes its handshake.
      const peer = await honest.connect(at, { localAddress: '127.0.0.2' });
      assert.equal(honest.remoteFingerprint(peer), pin);
      await until(() => floodCloses.length === 2, 'evicted');
      assert.equal(server.secureStats().handshakesRefused, 2);
      assert.deepEqual(alerts, [AlertCode.Busy, AlertCode.Busy]);
      assert.equal(server.stats().closes.refused, 2);
    } finally {
      await honest.shutdown();
      await flood.shutdown();
      await server.shutdown();
    }
  });
});

describe('HandshakeQueue', () => {
  it('serves addresses in turn, so one address with a long queue delays another by one job', async () => {
    const q = new HandshakeQueue(0, 0);
    const ran: string[] = [];
    for (let i = 0; i < 10; i++) q.push({ address: 'A', run: () => ran.push('A') });
    q.push({ address: 'B', run: () => ran.push('B') });
    const gone = { address: 'C', run: () => ran.push('C') };
    q.push(gone);
    assert.equal(q.cancel(gone), true);
    assert.equal(q.waiting, 11);
    await until(() => q.waiting === 0, 'queue empty');
    assert.deepEqual(ran.slice(0, 3), ['A', 'B', 'A']);
    assert.equal(ran.length, 11);
  });

  it('holds one address to its rate while another is served at once', async () => {
    const q = new HandshakeQueue(0, 20); // 20/s per address, burst 2; a new address starts with 1
    const ran: [string, number][] = [];
    const start = performance.now();
    for (let i = 0; i < 30; i++) q.push({ address: 'A', run: () => ran.push(['A', performance.now() - start]) });
    await new Promise((r) => setTimeout(r, 150));
    q.push({ address: 'B', run: () => ran.push(['B', performance.now() - start]) });
    await until(() => ran.some(([a]) => a === 'B'), 'B served');
    const b = ran.find(([a]) => a === 'B')![1];
    assert.ok(b < 150 + 100, `B waited ${b - 150} ms`);
    const aBefore = ran.filter(([a, t]) => a === 'A' && t <= b).length;
    assert.ok(aBefore <= 1 + Math.ceil((b / 1000) * 20) + 1, `A ran ${aBefore} times in ${b} ms`);
    assert.ok(q.waiting > 20, 'most of A still waits');
  });

  it('keys IPv4 by address and IPv6 by /64', () => {
    assert.equal(addressKey('192.0.2.7'), '192.0.2.7');
    assert.equal(addressKey('::ffff:192.0.2.7'), '192.0.2.7');
    assert.equal(addressKey('2001:db8:1:2:aaaa::1'), '2001:db8:1:2::/64');
    assert.equal(addressKey('2001:db8:1:2::ffff'), addressKey('2001:0db8:0001:0002:1:2:3:4'));
    assert.equal(addressKey('::1'), '0:0:0:0::/64');
    assert.notEqual(addressKey('2001:db8:1:2::1'), addressKey('2001:db8:1:3::1'));
  });
});

describe('ClientHello flood', () => {
  it('an honest client from another address keeps completing handshakes while 64 connections flood (bench/handshake-flood.ts, 3 s)', async () => {
    const script = fileURLToPath(new URL('../../bench/handshake-flood.ts', import.meta.url));
    const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', script, '--seconds', '3', '--conns', '64', '--json'], {
      timeout: 60_000,
      maxBuffer: 1 << 20,
    });
    const [row] = JSON.parse(stdout.trim().split('\n').pop()!) as Record<string, number>[];
    assert.ok(row!['honest handshakes']! >= 5, `honest handshakes: ${row!['honest handshakes']}`);
    assert.equal(row!['honest failed'], 0);
    assert.ok(row!['p50 ms']! < 1000, `honest p50 ${row!['p50 ms']} ms`);
    assert.ok(row!['flood connects/s']! > 0, 'the flood ran');
  });
});
