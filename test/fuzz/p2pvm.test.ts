// Bounded fuzz loop for P2PVM packet parsing (lib/p2pvm/core.ts, "parse", the packet
// layout of lib/p2pvm/wire.ts and the paths it feeds: connections, receive,
// credits, reassembly). Each iteration opens a real tunnel to a P2pvmHost over
// the in-process MemoryTransport with a raw peer (handshake, one virtual
// connection), then sends a mutated sequence of valid packets of every type
// for that connection (DATA, DATA_START + DATA_MORE, CREDIT, CLOSE,
// CLOSE_ACK, ECHO, LISTEN, UNLISTEN, CONNECT, ACCEPT, REFUSE, BYE) in one to
// three physical frames. Checked:
//  - nothing throws out of the parser or the host (no uncaught exception or
//    unhandled rejection), and every 'error' the host reports is a
//    P2pvmProtocolError (ZS_P2PVM_PROTOCOL);
//  - every packet the host sends back has a known type and a body that fits;
//  - reassembly never holds more than reassemblyLimit, and the memory outside
//    the JavaScript heap (where Buffers live) never grows by more than 32 MiB
//    within one iteration (no total a peer declares is allocated up front);
//  - once the physical connection closes, the host holds no tunnel, no virtual
//    connection and no reassembly bytes of it;
//  - an honest tunnel is served afterwards.
// And the address codec of LISTEN/CONNECT (wire.ts): any 16 bytes a peer
// sends format to text that parses back to them; mutated address text parses
// to 16 bytes or null, never throws.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { P2pvmProtocolError } from '../../lib/errors.js';
import { formatAddress, P2pvmHost, P2pvmPacket as P, P2pvmTunnel, parseAddress } from '../../lib/p2pvm/index.js';
import { MemoryNetwork, MemoryTransport } from '../../lib/transport/memory.js';
import type { FrameBatch } from '../../lib/transport/types.js';
import { helloBody, packet, RawPeer, until } from '../p2pvm/helpers.js';
import { fuzzLoop, fuzzLoopAsync, mutate, type Rng } from './mutate.js';

const tick = () => new Promise((r) => setImmediate(r));
const reassemblyLimit = 256 * 1024;

function body(...fields: [bytes: number, value: number][]): Buffer {
  const b = Buffer.alloc(fields.reduce((n, [k]) => n + k, 0));
  let at = 0;
  for (const [k, v] of fields) {
    if (k === 1) b[at] = v;
    else if (k === 2) b.writeUInt16LE(v, at);
    else b.writeUInt32LE(v >>> 0, at);
    at += k;
  }
  return b;
}

/** ::1 port 80 as LISTEN / CONNECT carry it: 16 address bytes, u16 port. */
function endpoint(port = 80): Buffer {
  const b = Buffer.alloc(18);
  b[15] = 1;
  b.writeUInt16LE(port, 16);
  return b;
}

/** A valid-looking sequence of packets for the host's connection `id`. */
function sequence(rng: Rng, id: number): Buffer {
  const out: Buffer[] = [];
  for (let n = 1 + rng.below(6); n > 0; n--) {
    switch (rng.below(12)) {
      case 0:
        out.push(packet(P.Data, Buffer.concat([body([4, id], [1, 8]), rng.bytes(rng.below(300))])));
        break;
      case 1: {
        const total = 100 + rng.below(9000);
        const first = rng.below(Math.min(total, 4096));
        out.push(packet(P.DataStart, Buffer.concat([body([4, id], [1, 9], [4, total]), rng.bytes(first)])));
        let left = total - first;
        while (left > 0 && rng.below(4) !== 0) {
          const k = Math.min(left, 1 + rng.below(4096));
          out.push(packet(P.DataMore, Buffer.concat([body([4, id], [1, 9]), rng.bytes(k)])));
          left -= k;
        }
        break;
      }
      case 2: out.push(packet(P.Credit, body([4, id], [4, rng.below(1 << 20)]))); break;
      case 3: out.push(packet(P.Close, body([4, id], [1, rng.below(3)]))); break;
      case 4: out.push(packet(P.CloseAck, body([4, id]))); break;
      case 5: out.push(packet(P.Echo, body([4, rng.u32()], [4, 0]))); break;
      case 6: out.push(packet(P.Listen, endpoint(1000 + rng.below(5)))); break;
      case 7: out.push(packet(P.Unlisten, endpoint(1000 + rng.below(5)))); break;
      case 8: out.push(packet(P.Connect, Buffer.concat([body([4, 100 + rng.below(50)]), endpoint(rng.below(2) ? 80 : 81)]))); break;
      case 9: out.push(packet(P.Accept, body([4, rng.below(8)], [4, rng.below(8)]))); break;
      case 10: out.push(packet(P.Refuse, body([4, rng.below(8)], [1, 1]))); break;
      default: out.push(rng.below(4) === 0 ? packet(P.Bye, body([1, 0])) : packet(P.EchoReply, body([4, rng.u32()], [4, 0])));
    }
  }
  return Buffer.concat(out);
}

/** Opens a virtual connection from the raw side; returns the host's id for it, or undefined if refused. */
async function rawConnect(raw: RawPeer, src: number): Promise<number | undefined> {
  const before = raw.of(P.Accept).length;
  raw.send(packet(P.Connect, Buffer.concat([body([4, src]), endpoint()])));
  await until(() => raw.of(P.Accept).length > before || raw.closed, 3000, 'ACCEPT');
  return raw.of(P.Accept)[before]?.body.readUInt32LE(4);
}

describe('P2PVM packet parsing fuzz loop', () => {
  it('mutated packet sequences on a live tunnel never throw, stay bounded and leave nothing behind', async () => {
    const network = new MemoryNetwork();
    const server = new MemoryTransport({ network });
    const at = await server.listen({ host: '127.0.0.1', port: 0 });
    const host = new P2pvmHost(server, { accept: () => true, window: 65536, maxFragmentSize: 4096, reassemblyLimit });
    await host.listen({ host: '::1', port: 80 });
    const reported: Error[] = [];
    host.on('error', (e) => reported.push(e));
    let delivered = 0;
    host.on('frames', (b: FrameBatch) => (delivered += b.count));
    let peak = 0;
    let peakGrowth = 0;
    const escaped: unknown[] = [];
    const onError = (err: unknown) => escaped.push(err);
    process.on('uncaughtException', onError);
    process.on('unhandledRejection', onError);
    let violations = 0;
    try {
      const ran = await fuzzLoopAsync({ count: 200, ms: 6000, seed: 20261212 }, async (rng) => {
        const raw = await RawPeer.connect(network, at);
        raw.send(packet(P.Hello, helloBody(65536, 4096)));
        await until(() => raw.of(P.Welcome).length === 1, 3000, 'WELCOME');
        const id = await rawConnect(raw, 1);
        assert.ok(id !== undefined, 'the host refused a connection to its listener');
        const base = process.memoryUsage().arrayBuffers;
        const seq = sequence(rng, id);
        const bytes = rng.below(5) === 0 ? seq : mutate(rng, seq);
        // One to three physical frames, cut anywhere (packets may not span frames: the host must say so).
        const cuts = [0, ...Array.from({ length: rng.below(3) }, () => rng.below(bytes.length + 1)).sort((a, b) => a - b), bytes.length];
        for (let c = 0; c + 1 < cuts.length; c++) {
          if (raw.closed) break;
          raw.transport.send(raw.peer, 63, 0, bytes.subarray(cuts[c]!, cuts[c + 1]!));
          await tick();
          peak = Math.max(peak, host.stats().reassemblyBytes);
        }
        for (let t = 0; t < 3; t++) await tick();
        peak = Math.max(peak, host.stats().reassemblyBytes);
        peakGrowth = Math.max(peakGrowth, process.memoryUsage().arrayBuffers - base);
        for (const p of raw.packets) {
          assert.ok(p.type >= P.Hello && p.type <= P.DataStart, `host sent packet type ${p.type}`);
        }
        if (raw.closed) violations++;
        else raw.transport.close(raw.peer, true);
        await until(() => host.stats().tunnels === 0, 3000, 'the tunnel to be gone');
        const s = host.stats();
        assert.equal(s.vconns, 0, 'virtual connections left behind');
        assert.equal(s.reassemblyBytes, 0, 'reassembly bytes left behind');
        await raw.transport.shutdown();
      });
      assert.ok(ran >= 30, `only ${ran} iterations ran`);
      assert.ok(violations > 0 && violations < ran, `${violations} of ${ran} tunnels failed: the loop did not reach both outcomes`);
      assert.ok(delivered > 0, 'no virtual frame was ever delivered: the loop did not reach the receive path');
      assert.ok(peakGrowth < 32 << 20, `Buffer memory grew by ${peakGrowth} bytes in one iteration`);
      assert.ok(peak <= reassemblyLimit, `reassembly held ${peak} bytes, limit ${reassemblyLimit}`);
      for (const e of reported) {
        assert.ok(e instanceof P2pvmProtocolError, `host reported ${String(e)}`);
        assert.equal(e.code, 'ZS_P2PVM_PROTOCOL');
      }

      // An honest tunnel still works.
      const transport = new MemoryTransport({ network });
      const phys = await transport.connect(at);
      const tunnel = await P2pvmTunnel.open(transport, phys, {});
      const vpeer = await tunnel.connect({ host: '::1', port: 80 });
      const got = new Promise<number>((resolve) => host.once('frames', (b: FrameBatch) => resolve(b.count)));
      tunnel.send(vpeer, 8, 0, Buffer.from('still here'));
      assert.equal(await got, 1);
      await tunnel.shutdown();
      await transport.shutdown();
      await new Promise((r) => setTimeout(r, 20));
      assert.deepEqual(escaped, [], 'errors escaped the parser');
    } finally {
      process.off('uncaughtException', onError);
      process.off('unhandledRejection', onError);
      await host.shutdown();
      await server.shutdown();
    }
  });

  it('any 16 address bytes format and parse back; mutated address text parses or is refused, never throws', () => {
    const texts = ['::1', '[::1]', 'fe80::1%eth0', '::ffff:10.0.0.1', '10.1.2.3', '2001:db8::ff00:42:8329', '1:2:3:4:5:6:7:8'].map((t) => Buffer.from(t));
    let parsed = 0;
    const ran = fuzzLoop({ count: 5000, ms: 2000, seed: 20261213 }, (rng) => {
      const bytes = rng.bytes(16);
      for (let i = 0; i < 16; i++) if (rng.below(3) === 0) bytes[i] = 0; // zero runs for '::'
      assert.deepEqual(parseAddress(formatAddress(bytes)), bytes, formatAddress(bytes));
      const text = mutate(rng, rng.pick(texts), texts).toString('latin1');
      const out = parseAddress(text);
      if (out !== null) {
        parsed++;
        assert.equal(out.length, 16, text);
      }
    });
    assert.ok(ran >= 300 && parsed > 0, `${ran} iterations, ${parsed} mutated texts parsed`);
  });
});
