import assert from 'node:assert/strict';
import { once } from 'node:events';
import { describe, it } from 'node:test';
import { ConnectError, ConnectionClosedError, TimeoutError } from '../../lib/errors.js';
import { P2pvmHost, P2pvmTunnel, P2pvmPacket as P } from '../../lib/p2pvm/index.js';
import { coreOf } from '../../lib/p2pvm/endpoint.js';
import { MemoryNetwork, MemoryTransport } from '../../lib/transport/memory.js';
import type { CloseReason, PeerId } from '../../lib/transport/types.js';
import { p2pvmFactory } from './framework-factory.js';
import { collect, echo, helloBody, nextOpen, packet, RawPeer, setup, tick, until } from './helpers.js';

describe('P2PVM tunnel handshake', () => {
  it('opens a tunnel when the accept policy likes the token, and shows the policy the token and peer', async () => {
    const seen: string[] = [];
    const { host, clients, server } = await setup(2, { accept: (token, peer) => (seen.push(`${token}@${peer}`), token.toString() === 'secret') });
    assert.equal(clients.length, 2);
    assert.equal(seen.length, 2);
    assert.match(seen[0]!, /^secret@\d+$/);
    assert.equal(host.tunnels().length, 2);
    assert.equal(host.stats().tunnels, 2);
    await host.shutdown();
    await server.shutdown();
  });

  it('refuses a tunnel whose token the policy rejects, with ConnectError, and an async policy works', async () => {
    const network = new MemoryNetwork();
    const server = new MemoryTransport({ network });
    const at = await server.listen({ host: '127.0.0.1', port: 0 });
    const host = new P2pvmHost(server, { accept: async (t) => t.toString() === 'good' });
    const client = new MemoryTransport({ network });
    const peer = await client.connect(at);
    await assert.rejects(P2pvmTunnel.open(client, peer, { token: 'bad' }), (e: Error) => e instanceof ConnectError && /refused/.test(e.message));
    const ok = await P2pvmTunnel.open(client, peer, { token: 'good' });
    assert.equal(ok.isOpen, true);
    await host.shutdown();
  });

  it('times out a handshake nobody answers', async () => {
    const network = new MemoryNetwork();
    const server = new MemoryTransport({ network });
    const at = await server.listen({ host: '127.0.0.1', port: 0 });
    const client = new MemoryTransport({ network });
    const peer = await client.connect(at);
    await assert.rejects(P2pvmTunnel.open(client, peer, { handshakeTimeout: 30 }), TimeoutError);
  });

  it('checks its arguments', async () => {
    const t = new MemoryTransport();
    assert.throws(() => new P2pvmHost(t, {} as never), { name: 'TypeError', message: /^options.accept/ });
    assert.throws(() => new P2pvmHost(t, { accept: () => true, maxFragmentSize: 0 }), { name: 'RangeError', message: /^options.maxFragmentSize/ });
    assert.throws(() => new P2pvmHost(t, { accept: () => true, maxFragmentSize: 4096, window: 1000 }), { name: 'RangeError', message: /^options.window/ });
    await assert.rejects(P2pvmTunnel.open(t, -1), { name: 'RangeError', message: /^peer must be/ });
    await assert.rejects(P2pvmTunnel.open(t, 0, { token: Buffer.alloc(5000) }), { name: 'RangeError', message: /^options.token/ });
  });
});

describe('P2PVM listen table and connections', () => {
  it('pushes listen tables both ways; connect fails at once where the other side does not listen', async () => {
    const { host, clients } = await setup(1);
    const tunnel = clients[0]!.tunnel;
    assert.deepEqual(await host.listen({ host: '::1', port: 80 }), { host: '::1', port: 80 });
    const any = await host.listen({ host: '2001:db8:0:0:0:0:0:7', port: 0 });
    assert.equal(any.host, '2001:db8::7');
    assert.ok(any.port > 0);
    await tunnel.listen({ host: '127.0.0.1', port: 9 });
    await until(() => tunnel.remoteListeners().length === 2 && host.remoteListeners().length === 1, 2000, 'tables');
    assert.deepEqual(host.remoteListeners(), [{ host: '::ffff:7f00:1', port: 9 }]);
    await assert.rejects(host.listen({ host: '::1', port: 80 }), ConnectError);
    const t0 = performance.now();
    await assert.rejects(tunnel.connect({ host: '::1', port: 81 }), (e: Error) => e instanceof ConnectError && /nothing listens/.test(e.message));
    assert.ok(performance.now() - t0 < 50, 'refused without a round trip');
    assert.equal(host.unlisten({ host: '::1', port: 80 }), true);
    await until(() => tunnel.remoteListeners().length === 1, 2000, 'unlisten');
    await assert.rejects(tunnel.connect({ host: '::1', port: 80 }), ConnectError);
    // The host can connect to what the client listens on: the tunnel is symmetric.
    const opened = nextOpen(tunnel);
    const hv = await host.connect({ host: '::ffff:127.0.0.1', port: 9 });
    const cv = await opened;
    assert.equal(tunnel.peerInfo(cv)?.accepted, true);
    assert.equal(host.peerInfo(hv)?.accepted, false);
    assert.throws(() => tunnel.connect({ host: 'not-an-address', port: 1 }), { name: 'RangeError', message: /^endpoint.host/ });
    assert.throws(() => tunnel.connect({ host: '::1', port: 70000 }), { name: 'RangeError', message: /^endpoint.port/ });
    await host.shutdown();
  });

  it('connects, carries frames with kind and flags, and closes from either side with reasons', async () => {
    const { host, clients } = await setup(1);
    const tunnel = clients[0]!.tunnel;
    await host.listen({ host: '::1', port: 80 });
    await until(() => tunnel.remoteListeners().length === 1);
    const hostGot = collect(host);
    const opened = nextOpen(host);
    const v = await tunnel.connect({ host: '::1', port: 80 });
    const hv = await opened;
    const wireBefore = coreOf(tunnel).table.wireId(v);
    assert.deepEqual(host.peerInfo(hv), { remoteAddress: '::', remotePort: 0, localAddress: '::1', localPort: 80, accepted: true });
    assert.deepEqual(tunnel.peerInfo(v), { remoteAddress: '::1', remotePort: 80, localAddress: '::', localPort: 0, accepted: false });
    for (let k = 0; k < 64; k++) tunnel.send(v, k, k & 3, Buffer.from(`m${k}`));
    await until(() => hostGot.length === 64);
    assert.deepEqual(hostGot.map((g) => [g.kind, g.flags, g.payload.toString()]), Array.from({ length: 64 }, (_, k) => [k, k & 3, `m${k}`]));
    assert.ok(hostGot.every((g) => g.peer === hv));
    const reasons: [PeerId, CloseReason][] = [];
    host.on('close', (p, r) => reasons.push([p, r]));
    tunnel.on('close', (p, r) => reasons.push([p + 1000, r]));
    tunnel.close(v);
    await until(() => reasons.length === 2);
    assert.deepEqual(reasons, [[v + 1000, 'local'], [hv, 'remote']]);
    assert.throws(() => tunnel.send(v, 8, 0, Buffer.from('x')), ConnectionClosedError);
    // And from the host side, with the freed slots reused under a new generation.
    await until(() => tunnel.stats().vconns === 0);
    const v2 = await tunnel.connect({ host: '::1', port: 80 });
    await until(() => host.stats().vconns === 1);
    assert.equal(v2, v, 'the slot is reused');
    assert.notEqual(coreOf(tunnel).table.wireId(v2), wireBefore, 'with a new generation');
    reasons.length = 0;
    const [hv2] = [...Array(coreOf(host).table.top).keys()].filter((i) => host.peerInfo(i));
    host.close(hv2!);
    await until(() => reasons.length === 2);
    assert.deepEqual(new Set(reasons.map((r) => r[1])), new Set(['local', 'remote']));
    await until(() => host.stats().vconns === 0 && tunnel.stats().vconns === 0, 2000, 'slots freed after CLOSE_ACK');
    assert.deepEqual(host.stats().closes, { remote: 1, local: 1 });
    await host.shutdown();
  });

  it('a graceful close sends queued frames first; an abort drops them and the other side sees reset', async () => {
    const { host, clients } = await setup(1, {}, { window: 65536, maxFragmentSize: 4096 });
    const tunnel = clients[0]!.tunnel;
    await host.listen({ host: '::1', port: 80 });
    await until(() => tunnel.remoteListeners().length === 1);
    const got = collect(host);
    const reasons: CloseReason[] = [];
    host.on('close', (_p, r) => reasons.push(r));
    const v = await tunnel.connect({ host: '::1', port: 80 });
    const big = Buffer.alloc(300_000, 5);
    tunnel.send(v, 8, 0, big);
    tunnel.send(v, 9, 0, Buffer.from('after'));
    tunnel.close(v);
    await until(() => reasons.length === 1);
    assert.equal(reasons[0], 'remote');
    assert.deepEqual(got.map((g) => g.payload.length), [300_000, 5]);
    assert.ok(got[0]!.payload.equals(big));
    const w = await tunnel.connect({ host: '::1', port: 80 });
    tunnel.send(w, 8, 0, Buffer.alloc(300_000, 6));
    tunnel.close(w, true);
    await until(() => reasons.length === 2);
    assert.equal(reasons[1], 'reset');
    await until(() => tunnel.stats().vconns === 0 && host.stats().vconns === 0 && tunnel.stats().queuedBytes === 0);
    await host.shutdown();
  });

  it('reports backpressure per virtual connection and emits drain', async () => {
    const { host, clients } = await setup(1, {}, { highWaterMark: 100_000, window: 65536 });
    const tunnel = clients[0]!.tunnel;
    await host.listen({ host: '::1', port: 80 });
    await until(() => tunnel.remoteListeners().length === 1);
    const v = await tunnel.connect({ host: '::1', port: 80 });
    let ok = true;
    let n = 0;
    while (ok && n < 100) ok = tunnel.send(v, 8, 0, Buffer.alloc(30_000)), n++;
    assert.equal(ok, false, 'send() returned false above the high-water mark');
    assert.ok(tunnel.stats().queuedBytes > 0);
    const [drained] = await once(tunnel, 'drain');
    assert.equal(drained, v);
    await host.shutdown();
  });

  it('keeps user data only while a connection is open, and rejects use after shutdown', async () => {
    const { host, clients } = await setup(1);
    const tunnel = clients[0]!.tunnel;
    await host.listen({ host: '::1', port: 80 });
    await until(() => tunnel.remoteListeners().length === 1);
    const v = await tunnel.connect({ host: '::1', port: 80 });
    tunnel.setUserData(v, { who: 'alice' });
    assert.deepEqual(tunnel.getUserData(v), { who: 'alice' });
    tunnel.close(v);
    assert.equal(tunnel.getUserData(v), undefined);
    const closed = tunnel.closed();
    await host.shutdown();
    assert.deepEqual(await closed, { reason: 'remote', detail: 'the other side closed the tunnel' });
    await tunnel.shutdown();
    assert.throws(() => tunnel.connect({ host: '::1', port: 80 }), ConnectionClosedError);
    await assert.rejects(tunnel.listen({ host: '::1', port: 80 }), ConnectionClosedError);
  });
});

describe('P2PVM echo, keepalive and timeouts', () => {
  it('measures an echo round trip on the tunnel and on the host', async () => {
    const { host, clients } = await setup(1);
    const rtt = await clients[0]!.tunnel.ping();
    assert.ok(rtt >= 0 && rtt < 1000);
    const id = host.tunnels()[0]!.id;
    assert.ok((await host.ping(id)) >= 0);
    await host.shutdown();
  });

  it('closes an idle tunnel with reason timeout, and connect times out when nobody answers', async () => {
    const network = new MemoryNetwork();
    const server = new MemoryTransport({ network });
    const at = await server.listen({ host: '127.0.0.1', port: 0 });
    server.on('open', (peer) => {
      // A fake server: answers the handshake, lists one entry, then never answers anything.
      server.once('frames', () => {
        const entry = Buffer.alloc(18);
        entry[15] = 1;
        entry.writeUInt16LE(80, 16);
        server.send(peer, 63, 0, Buffer.concat([packet(P.Welcome, helloBody()), packet(P.Listen, entry)]));
      });
    });
    const raw = new RawPeer(server, 0);
    const client = new MemoryTransport({ network });
    const peer = await client.connect(at);
    const tunnel = await P2pvmTunnel.open(client, peer, { idleTimeout: 300 });
    await until(() => tunnel.remoteListeners().length === 1);
    await assert.rejects(tunnel.connect({ host: '::1', port: 80 }, { timeout: 30 }), TimeoutError);
    // A late ACCEPT for the abandoned connection is answered with CLOSE.
    const connect = raw.of(P.Connect)[0]!;
    const src = connect.body.readUInt32LE(0);
    const accept = Buffer.alloc(8);
    accept.writeUInt32LE(src, 0);
    accept.writeUInt32LE(7, 4);
    raw.send(packet(P.Accept, accept));
    await until(() => raw.of(P.Close).length === 1);
    assert.equal(raw.of(P.Close)[0]!.body.readUInt32LE(0), 7);
    const keepLoopAlive = setInterval(() => {}, 50); // the tunnel's own timer is unref'd
    const closed = await tunnel.closed();
    clearInterval(keepLoopAlive);
    assert.equal(closed.reason, 'timeout');
  });

  it('keepalive echoes keep a tunnel with idleTimeout alive', async () => {
    const { host, clients } = await setup(1, { keepaliveInterval: 20 }, { keepaliveInterval: 20, idleTimeout: 150 });
    await new Promise((r) => setTimeout(r, 400));
    assert.equal(clients[0]!.tunnel.isOpen, true);
    assert.ok(clients[0]!.tunnel.stats().packetsIn > 3, 'echoes were exchanged');
    await host.shutdown();
  });
});

describe('P2PVM echo helper', () => {
  it('echo() answers on the same connection', async () => {
    const { host, clients } = await setup(1);
    echo(host);
    await host.listen({ host: '::1', port: 80 });
    const tunnel = clients[0]!.tunnel;
    await until(() => tunnel.remoteListeners().length === 1);
    const got = collect(tunnel);
    const v = await tunnel.connect({ host: '::1', port: 80 });
    tunnel.send(v, 12, 2, Buffer.from('back'));
    await until(() => got.length === 1);
    assert.deepEqual([got[0]!.peer, got[0]!.kind, got[0]!.flags, got[0]!.payload.toString()], [v, 12, 2, 'back']);
    await tick();
    await host.shutdown();
  });
});

describe('P2PVM through a synchronous transport factory (the framework suite\'s shape)', () => {
  it('hands out transports that become a host on listen() and a tunnel on connect()', async () => {
    const factory = p2pvmFactory();
    const st = factory.create();
    const ct = factory.create();
    echo(st);
    const ep = await st.listen({ host: factory.host, port: 0 });
    const got = collect(ct);
    const v = await ct.connect({ host: 'localhost', port: ep.port });
    ct.send(v, 30, 0, Buffer.from('through the factory'));
    await until(() => got.length === 1);
    assert.equal(got[0]!.payload.toString(), 'through the factory');
    assert.equal(ct.peerInfo(v)?.remotePort, ep.port);
    await assert.rejects(ct.connect({ host: factory.host, port: ep.port + 1 }), ConnectError);
    // The server restarts on the same port: the client's next connect opens a new tunnel.
    await st.shutdown();
    await tick(); // MemoryTransport may hand a closed peer's last frames to a new peer with its reused id
    const st2 = factory.create();
    echo(st2);
    await st2.listen({ host: factory.host, port: ep.port });
    const w = await ct.connect({ host: factory.host, port: ep.port });
    ct.send(w, 31, 0, Buffer.from('again'));
    await until(() => got.length === 2);
    assert.equal(got[1]!.payload.toString(), 'again');
    await st2.shutdown();
    await ct.shutdown();
  });

  it('attach() returns a tunnel at once whose connect() waits for the handshake', async () => {
    const { host, network, at } = await setup(0);
    echo(host);
    await host.listen({ host: '::1', port: 80 });
    const client = new MemoryTransport({ network });
    const tunnel = P2pvmTunnel.attach(client, client.connect(at), { token: 'secret' });
    assert.equal(tunnel.remoteListeners().length, 0, 'not open yet');
    const got = collect(tunnel);
    const v = await tunnel.connect({ host: '::1', port: 80 });
    tunnel.send(v, 8, 0, Buffer.from('early'));
    await until(() => got.length === 1);
    assert.equal(got[0]!.payload.toString(), 'early');
    await host.shutdown();
  });

  it('ready() rejects when the physical connection cannot be made', async () => {
    const client = new MemoryTransport({ network: new MemoryNetwork() });
    const t = P2pvmTunnel.attach(client, client.connect({ host: '127.0.0.1', port: 9 }));
    await assert.rejects(t.ready(), ConnectError);
    await assert.rejects(t.connect({ host: '::1', port: 1 }), ConnectError);
  });
});
