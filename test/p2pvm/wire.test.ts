import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { State, VconnTable } from '../../lib/p2pvm/table.js';
import { entryKey, formatAddress, parseAddress } from '../../lib/p2pvm/wire.js';

describe('P2PVM addresses', () => {
  it('parses IPv6 text forms and IPv4 (mapped) into 16 bytes', () => {
    assert.equal(parseAddress('::1')!.toString('hex'), '00000000000000000000000000000001');
    assert.equal(parseAddress('[2001:db8::7]')!.toString('hex'), '20010db8000000000000000000000007');
    assert.equal(parseAddress('fe80::1%eth0')!.toString('hex'), 'fe800000000000000000000000000001');
    assert.equal(parseAddress('::ffff:1.2.3.4')!.toString('hex'), '00000000000000000000ffff01020304');
    assert.equal(parseAddress('1.2.3.4')!.toString('hex'), '00000000000000000000ffff01020304');
    assert.equal(parseAddress('1:2:3:4:5:6:7:8')!.toString('hex'), '00010002000300040005000600070008');
    assert.equal(parseAddress('::')!.toString('hex'), '0'.repeat(32));
    for (const bad of ['', 'localhost', '1::2::3', '12345::', '1.2.3.256', ':::']) assert.equal(parseAddress(bad), null, bad);
  });

  it('formats canonically (RFC 5952) and round-trips any 16 bytes', () => {
    assert.equal(formatAddress(parseAddress('2001:0db8:0000:0000:0001:0000:0000:0001')!), '2001:db8::1:0:0:1');
    assert.equal(formatAddress(parseAddress('1:0:0:2:0:0:0:3')!), '1:0:0:2::3');
    assert.equal(formatAddress(parseAddress('1:2:3:4:5:6:7:8')!), '1:2:3:4:5:6:7:8');
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), (bytes) => {
        const text = formatAddress(bytes);
        assert.deepEqual(new Uint8Array(parseAddress(text)!), bytes);
        assert.equal(entryKey(parseAddress(text)!, 80), entryKey(bytes, 80));
      }),
      { numRuns: 300 },
    );
  });
});

describe('VconnTable', () => {
  it('reuses slots first-in first-out with a new generation, and lookup rejects stale ids', () => {
    const t = new VconnTable();
    const a = t.alloc();
    const b = t.alloc();
    t.state[a] = State.Open;
    t.state[b] = State.Open;
    const staleA = t.wireId(a);
    assert.equal(t.lookup(staleA), a);
    t.free(a);
    t.free(b);
    assert.equal(t.lookup(staleA), -1, 'a freed slot is not found');
    const c = t.alloc();
    t.state[c] = State.Open;
    assert.equal(c, a, 'oldest freed slot first');
    assert.equal(t.lookup(staleA), -1, 'the old generation never reaches the new connection');
    assert.equal(t.lookup(t.wireId(c)), c);
    assert.equal(t.size, 1);
  });

  it('grows by doubling and keeps every column', () => {
    const t = new VconnTable();
    const n = 5000;
    for (let i = 0; i < n; i++) {
      const s = t.alloc();
      t.state[s] = State.Open;
      t.remote[s] = i * 3;
    }
    assert.equal(t.capacity, 8192);
    assert.equal(t.bytes, 8192 * VconnTable.bytesPerSlot);
    assert.equal(VconnTable.bytesPerSlot, 26);
    for (let i = 0; i < n; i++) assert.equal(t.remote[i], i * 3);
  });
});
