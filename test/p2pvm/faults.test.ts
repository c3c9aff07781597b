import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { ConnectionClosedError, P2pvmProtocolError } from '../../lib/errors.js';
import { P2pvmHost, P2pvmPacket as P } from '../../lib/p2pvm/index.js';
import { coreOf } from '../../lib/p2pvm/endpoint.js';
import { MemoryNetwork, MemoryTransport } from '../../lib/transport/memory.js';
import type { CloseReason, PeerId } from '../../lib/transport/types.js';
import { helloBody, packet, RawPeer, setup, until } from './helpers.js';

describe('P2PVM when the physical peer dies', () => {
  it('closes every virtual connection on both sides with a reason, mid-transfer, and leaks nothing', async () => {
    const { host, clients } = await setup(2, {}, { window: 65536, maxFragmentSize: 8192 });
    await host.listen({ host: '::1', port: 80 });
    const [a, b] = clients as [(typeof clients)[0], (typeof clients)[0]];
    await until(() => a.tunnel.remoteListeners().length === 1 && b.tunnel.remoteListeners().length === 1);
    const hostCloses: [PeerId, CloseReason, string][] = [];
    host.on('close', (p, r, d) => hostCloses.push([p, r, d]));
    const clientCloses: CloseReason[] = [];
    a.tunnel.on('close', (_p, r) => clientCloses.push(r));
    const peers: PeerId[] = [];
    for (let n = 0; n < 50; n++) peers.push(await a.tunnel.connect({ host: '::1', port: 80 }));
    const survivor = await b.tunnel.connect({ host: '::1', port: 80 });
    for (const p of peers) a.tunnel.send(p, 8, 0, Buffer.alloc(500_000, 1));
    const pending = a.tunnel.connect({ host: '::1', port: 80 });
    // The pending CONNECT may leave in a later physical frame than the first data (big fragments
    // go out at once through the physical sendv), so wait until the host accepted it too.
    await until(() => host.stats().reassemblyBytes > 0 && host.stats().connections === 52, 5000, 'transfer under way');
    a.transport.close(a.peer, true); // the physical connection breaks
    await assert.rejects(pending, ConnectionClosedError);
    // 51: the host had also accepted the pending connection, whose ACCEPT never reached the client.
    await until(() => hostCloses.length === 51, 5000, 'host closes');
    assert.ok(hostCloses.every(([, r, d]) => r === 'reset' && /physical connection closed/.test(d)));
    assert.equal(clientCloses.length, 50);
    assert.ok(clientCloses.every((r) => r === 'reset'));
    const hs = host.stats();
    assert.equal(hs.vconns, 1, 'only the other tunnel’s connection is left');
    assert.equal(hs.reassemblyBytes, 0);
    assert.equal(hs.tunnels, 1);
    const cs = a.tunnel.stats();
    assert.equal(cs.vconns, 0);
    assert.equal(cs.queuedBytes, 0);
    assert.equal(coreOf(a.tunnel).queues.size, 0, 'no queued frames kept');
    assert.equal((await a.tunnel.closed()).reason, 'reset');
    assert.ok(b.tunnel.peerInfo(survivor), 'the other tunnel is untouched');
    await host.shutdown();
  });
});

/** A host plus a raw peer that completed the handshake and sees one listen entry. */
async function rawSession(hostOptions = {}) {
  const network = new MemoryNetwork();
  const server = new MemoryTransport({ network });
  const at = await server.listen({ host: '127.0.0.1', port: 0 });
  const host = new P2pvmHost(server, { accept: () => true, ...hostOptions });
  const errors: Error[] = [];
  host.on('error', (e) => errors.push(e));
  const closes: CloseReason[] = [];
  host.on('close', (_p, r) => closes.push(r));
  await host.listen({ host: '::1', port: 80 });
  const raw = await RawPeer.connect(network, at);
  raw.send(packet(P.Hello, helloBody(65536, 4096)));
  await until(() => raw.of(P.Welcome).length === 1);
  return { host, raw, errors, closes, server };
}

const addr = () => {
  const b = Buffer.alloc(18);
  b[15] = 1;
  b.writeUInt16LE(80, 16);
  return b;
};

/** Opens a virtual connection from the raw side; returns the host's wire id for it. */
async function rawConnect(raw: RawPeer, src: number): Promise<number> {
  const body = Buffer.alloc(22);
  body.writeUInt32LE(src, 0);
  addr().copy(body, 4);
  const before = raw.of(P.Accept).length;
  raw.send(packet(P.Connect, body));
  await until(() => raw.of(P.Accept).length === before + 1);
  return raw.of(P.Accept)[before]!.body.readUInt32LE(4);
}

function data(dst: number, payload: Buffer, type: number = P.Data): Buffer {
  const body = Buffer.alloc(5 + payload.length);
  body.writeUInt32LE(dst, 0);
  body[4] = 8;
  payload.copy(body, 5);
  return packet(type, body);
}

async function expectProtocolClose(s: Awaited<ReturnType<typeof rawSession>>, message: RegExp): Promise<void> {
  await until(() => s.errors.length === 1 && s.raw.closed, 3000, 'tunnel failure');
  assert.ok(s.errors[0] instanceof P2pvmProtocolError);
  assert.equal((s.errors[0] as P2pvmProtocolError).code, 'ZS_P2PVM_PROTOCOL');
  assert.match(s.errors[0]!.message, message);
  const report = s.raw.of(P.Error)[0];
  assert.ok(report, 'the other side was told why');
  assert.match(report.body.toString(), message);
  assert.equal(s.host.stats().tunnels, 0);
  assert.equal(s.host.stats().vconns, 0);
  assert.ok(s.closes.every((r) => r === 'protocol'));
  await s.host.shutdown();
}

describe('P2PVM against malicious packets', () => {
  it('an unknown connection id closes the tunnel with a protocol error', async () => {
    const s = await rawSession();
    const id = await rawConnect(s.raw, 1);
    s.raw.send(data(id + 1, Buffer.from('x')));
    await expectProtocolClose(s, /unknown connection id/);
    assert.deepEqual(s.closes, ['protocol'], 'the open connection closed with reason protocol');
  });

  it('a stale id (old generation) never reaches the connection now in its slot', async () => {
    const s = await rawSession();
    const old = await rawConnect(s.raw, 1);
    const close = Buffer.alloc(5);
    close.writeUInt32LE(old, 0);
    s.raw.send(packet(P.Close, close));
    await until(() => s.raw.of(P.CloseAck).length === 1);
    const fresh = await rawConnect(s.raw, 2);
    assert.equal(fresh & 0x3fffff, old & 0x3fffff, 'same slot');
    assert.notEqual(fresh, old, 'new generation');
    let delivered = 0;
    s.host.on('frames', (b) => (delivered += b.count));
    s.closes.length = 0;
    s.raw.send(data(old, Buffer.from('stale')));
    await expectProtocolClose(s, /unknown connection id/);
    assert.equal(delivered, 0);
  });

  it('an oversize fragment closes the tunnel', async () => {
    const s = await rawSession({ maxFragmentSize: 4096 });
    const id = await rawConnect(s.raw, 1);
    s.raw.send(data(id, Buffer.alloc(5000)));
    await expectProtocolClose(s, /oversize fragment/);
  });

  it('a wrong packet type closes the tunnel: unknown type, and HELLO on an open tunnel', async () => {
    const s = await rawSession();
    s.raw.send(packet(99, Buffer.alloc(3)));
    await expectProtocolClose(s, /unknown packet type 99/);
    const t = await rawSession();
    t.raw.send(packet(P.Hello, helloBody()));
    await expectProtocolClose(t, /not valid on an open tunnel/);
    const u = await rawSession();
    u.raw.send(packet(P.Accept, Buffer.alloc(3)));
    await expectProtocolClose(u, /has 3 body bytes, expected 8/);
  });

  it('a credit overrun closes the tunnel', async () => {
    const s = await rawSession({ window: 65536, maxFragmentSize: 4096 });
    const id = await rawConnect(s.raw, 1);
    const packets = [];
    for (let k = 0; k < 17; k++) packets.push(data(id, Buffer.alloc(4096))); // 69,632 > 65,536 with no credit back
    s.raw.send(...packets);
    await expectProtocolClose(s, /credit overrun/);
  });

  it('fragments that do not add up, and DATA_MORE without DATA_START, close the tunnel', async () => {
    const s = await rawSession();
    const id = await rawConnect(s.raw, 1);
    s.raw.send(data(id, Buffer.alloc(10), P.DataMore));
    await expectProtocolClose(s, /without DATA_START/);
    const t = await rawSession();
    const id2 = await rawConnect(t.raw, 1);
    const start = Buffer.alloc(9 + 10);
    start.writeUInt32LE(id2, 0);
    start[4] = 8;
    start.writeUInt32LE(100, 5);
    t.raw.send(packet(P.DataStart, start), data(id2, Buffer.alloc(10)));
    await expectProtocolClose(t, /do not add up/);
  });

  it('a packet before the handshake closes the physical connection, and nothing throws', async () => {
    const network = new MemoryNetwork();
    const server = new MemoryTransport({ network });
    const at = await server.listen({ host: '127.0.0.1', port: 0 });
    const host = new P2pvmHost(server, { accept: () => true });
    const raw = await RawPeer.connect(network, at);
    raw.send(data(1, Buffer.from('early')));
    await until(() => raw.closed);
    assert.match(raw.of(P.Error)[0]!.body.toString(), /before the tunnel handshake/);
    await host.shutdown();
  });

  it('random packets never throw out of the parser and leave consistent state (property)', () => {
    const server = new MemoryTransport({ network: new MemoryNetwork() });
    const host = new P2pvmHost(server, { accept: () => true, maxFragmentSize: 4096, window: 65536 });
    host.on('error', () => {});
    const packetArb = fc.oneof(
      fc.uint8Array({ maxLength: 64 }),
      fc.record({ type: fc.integer({ min: 0, max: 255 }), body: fc.uint8Array({ maxLength: 48 }) }).map(({ type, body }) => packet(type, body)),
      fc.record({ type: fc.constantFrom(P.Data, P.DataMore, P.DataStart, P.Credit, P.Close, P.CloseAck, P.Accept, P.Refuse), id: fc.nat(8), tail: fc.uint8Array({ maxLength: 16 }) }).map(({ type, id, tail }) => {
        const b = Buffer.alloc(4 + tail.length);
        b.writeUInt32LE(id, 0);
        b.set(tail, 4);
        return packet(type, b);
      }),
    );
    fc.assert(
      fc.property(fc.boolean(), fc.array(packetArb, { maxLength: 12 }), (open, packets) => {
        const core = coreOf(host);
        const link = core.addLink(7, open ? 'open' : 'hello-wait');
        if (open) core.linkOpened(link, { window: 65536, maxFragment: 4096, reassemblyCap: 1 << 20 });
        const frame = Buffer.concat(packets.map((p) => Buffer.from(p)));
        link.parse(frame, 0, frame.length); // must not throw
        core.rxFlush();
        if (link.phase !== 'closed') core.closeLink(link, 'local', 'end of sample');
        assert.equal(host.stats().vconns, 0);
        assert.equal(host.stats().reassemblyBytes, 0);
      }),
      { numRuns: 500, seed: 20261122 },
    );
  });
});
