// AeadContext against node:crypto in both directions (records sealed natively
// open with createDecipheriv, and the reverse), the key schedule against an
// HKDF written with createHmac, batches, rekeying, and use after close().
import assert from 'node:assert/strict';
import { createCipheriv, createDecipheriv, createHmac, randomBytes, type CipherGCM, type DecipherGCM } from 'node:crypto';
import { describe, it } from 'node:test';
import { AeadContext, REKEY_KIND, type CipherSuite } from '../../lib/channel/aead.js';
import { AuthError } from '../../lib/errors.js';

const SUITES: CipherSuite[] = ['aes-256-gcm', 'chacha20-poly1305'];

/** The associated data of a record: u32 LE frame length, then kind | flags << 6. */
function header(recordLength: number, kind: number, flags: number): Buffer {
  const h = Buffer.alloc(5);
  h.writeUInt32LE(recordLength, 0);
  h[4] = kind | (flags << 6);
  return h;
}

function nonce(iv: Buffer, seq: number): Buffer {
  const n = Buffer.from(iv);
  const s = Buffer.alloc(8);
  s.writeBigUInt64BE(BigInt(seq));
  for (let i = 0; i < 8; i++) n[4 + i]! ^= s[i]!;
  return n;
}

function nodeSeal(suite: CipherSuite, key: Buffer, iv: Buffer, seq: number, kind: number, flags: number, plain: Buffer): Buffer {
  // Both AEADs share the GCM-style API in node:crypto.
  const c = createCipheriv(suite, key, nonce(iv, seq), { authTagLength: 16 } as never) as unknown as CipherGCM;
  c.setAAD(header(plain.length + 16, kind, flags | 2));
  return Buffer.concat([c.update(plain), c.final(), c.getAuthTag()]);
}

function nodeOpen(suite: CipherSuite, key: Buffer, iv: Buffer, seq: number, kind: number, flags: number, record: Uint8Array): Buffer {
  const d = createDecipheriv(suite, key, nonce(iv, seq), { authTagLength: 16 } as never) as unknown as DecipherGCM;
  d.setAAD(header(record.length, kind, flags));
  d.setAuthTag(record.subarray(record.length - 16));
  return Buffer.concat([d.update(record.subarray(0, record.length - 16)), d.final()]);
}

/** HKDF-Expand (RFC 5869) for outputs of up to two blocks, from createHmac. */
function expand(prk: Buffer, info: string, length: number): Buffer {
  const t1 = createHmac('sha256', prk).update(Buffer.concat([Buffer.from(info), Buffer.from([1])])).digest();
  const t2 = createHmac('sha256', prk).update(Buffer.concat([t1, Buffer.from(info), Buffer.from([2])])).digest();
  return Buffer.concat([t1, t2]).subarray(0, length);
}

describe('AeadContext', () => {
  for (const suite of SUITES) {
    it(`${suite}: native records open with node:crypto and node:crypto records open natively`, () => {
      const key = randomBytes(32);
      const iv = randomBytes(12);
      const sealer = new AeadContext(suite, 'seal', { key, iv });
      const opener = new AeadContext(suite, 'open', { key, iv });
      for (let seq = 0; seq < 40; seq++) {
        const plain = randomBytes([0, 1, 15, 16, 17, 64, 1000, 16384][seq % 8]!);
        const kind = 8 + seq;
        const flags = seq % 2;
        const ours = sealer.seal(kind, flags, plain);
        assert.deepEqual(nodeOpen(suite, key, iv, seq, kind, flags | 2, ours), plain);
        const theirs = nodeSeal(suite, key, iv, seq, kind, flags, plain);
        assert.deepEqual(Buffer.from(ours), theirs);
        assert.deepEqual(Buffer.from(opener.open(kind, flags | 2, theirs)), plain);
      }
      assert.equal(sealer.sequence, 40);
      assert.equal(opener.sequence, 40);
    });

    it(`${suite}: keys and IVs derive from the traffic secret as docs/security.md says, and rekey moves on`, () => {
      const secret = randomBytes(32);
      const sealer = new AeadContext(suite, 'seal', { secret });
      let s: Buffer = secret;
      for (let epoch = 0; epoch < 3; epoch++) {
        const okm = expand(s, 'zs1 traffic', 44);
        const plain = Buffer.from(`epoch ${epoch}`);
        const rec = sealer.seal(9, 0, plain);
        assert.deepEqual(nodeOpen(suite, okm.subarray(0, 32), okm.subarray(32), 0, 9, 2, rec), plain);
        sealer.rekey();
        assert.equal(sealer.sequence, 0);
        s = expand(s, 'zs1 rekey', 32);
      }
    });

    it(`${suite}: batches equal single records, rekey records switch keys in line, and a bad record stops the batch`, () => {
      const secret = randomBytes(32);
      const a = new AeadContext(suite, 'seal', { secret });
      const b = new AeadContext(suite, 'seal', { secret });
      const opener = new AeadContext(suite, 'open', { secret });
      const lengths = new Uint32Array([0, 64, 1024, 0, 16384, 5]);
      const kinds = new Uint8Array([8, 9, 10, REKEY_KIND, 11, 12]);
      const flags = new Uint8Array([0, 1, 0, 0, 1, 0]);
      const offsets = new Uint32Array(lengths.length);
      let total = 0;
      lengths.forEach((l, i) => ((offsets[i] = total), (total += l)));
      const data = randomBytes(total);
      const sealed = Buffer.alloc(total + 16 * lengths.length);
      assert.equal(a.sealBatch(data, offsets, lengths, kinds, flags, sealed), sealed.length);
      // Single seals (with an explicit rekey after the rekey record) give the same bytes.
      const singles: Buffer[] = [];
      for (let i = 0; i < lengths.length; i++) {
        singles.push(Buffer.from(b.seal(kinds[i]!, flags[i]!, data.subarray(offsets[i]!, offsets[i]! + lengths[i]!))));
        if (kinds[i] === REKEY_KIND) b.rekey();
      }
      assert.deepEqual(sealed, Buffer.concat(singles));
      const inOffsets = new Uint32Array(lengths.length);
      const inLengths = lengths.map((l) => l + 16);
      let at = 0;
      inLengths.forEach((l, i) => ((inOffsets[i] = at), (at += l)));
      const wireFlags = flags.map((f) => f | 2);
      const out = Buffer.alloc(total);
      assert.equal(opener.openBatch(sealed, inOffsets, inLengths, kinds, wireFlags, out), lengths.length);
      assert.deepEqual(out, data);
      // Flip one bit in record 4: records 0-3 open, 4 does not.
      const bad = Buffer.from(sealed);
      bad[inOffsets[4]! + 100]! ^= 0x10;
      const fresh = new AeadContext(suite, 'open', { secret });
      const out2 = Buffer.alloc(total, 0xaa);
      assert.equal(fresh.openBatch(bad, inOffsets, inLengths, kinds, wireFlags, out2), 4);
      assert.deepEqual(out2.subarray(0, offsets[4]!), data.subarray(0, offsets[4]!));
      // What decryption wrote of the failed record is wiped; nothing after it is touched.
      assert.equal(out2.subarray(offsets[4]!, offsets[4]! + lengths[4]!).every((x) => x === 0), true);
      assert.equal(out2.subarray(offsets[4]! + lengths[4]!).every((x) => x === 0xaa), true);
    });
  }

  for (const suite of SUITES) {
    it(`${suite}: every single flipped bit of a record, and every other kind or flag, fails to open`, () => {
      const key = randomBytes(32);
      const iv = randomBytes(12);
      const rec = Buffer.from(new AeadContext(suite, 'seal', { key, iv }).seal(8, 0, randomBytes(24)));
      const opener = new AeadContext(suite, 'open', { key, iv });
      for (let bit = 0; bit < rec.length * 8; bit++) {
        rec[bit >> 3]! ^= 1 << (bit & 7);
        assert.throws(() => opener.open(8, 2, rec), AuthError, `bit ${bit}`);
        rec[bit >> 3]! ^= 1 << (bit & 7);
      }
      for (let kind = 0; kind < 64; kind++) if (kind !== 8) assert.throws(() => opener.open(kind, 2, rec), AuthError);
      for (const flags of [0, 1, 3]) assert.throws(() => opener.open(8, flags, rec), AuthError);
      assert.equal(opener.open(8, 2, rec).length, 24);
    });
  }

  it('throws AuthError for an altered, replayed or short record and does not advance', () => {
    const key = randomBytes(32);
    const iv = randomBytes(12);
    const sealer = new AeadContext('aes-256-gcm', 'seal', { key, iv });
    const opener = new AeadContext('aes-256-gcm', 'open', { key, iv });
    const rec = Buffer.from(sealer.seal(8, 0, Buffer.from('hello')));
    rec[0]! ^= 1;
    assert.throws(() => opener.open(8, 2, rec), (e: AuthError) => e instanceof AuthError && e.code === 'ZS_AUTH');
    rec[0]! ^= 1;
    assert.throws(() => opener.open(9, 2, rec), AuthError); // another kind in the header
    assert.throws(() => opener.open(8, 3, rec), AuthError); // another flag in the header
    assert.throws(() => opener.open(8, 2, rec.subarray(0, 10)), AuthError);
    assert.equal(opener.sequence, 0);
    assert.equal(Buffer.from(opener.open(8, 2, rec)).toString(), 'hello');
    assert.throws(() => opener.open(8, 2, rec), AuthError); // replay
  });

  it('checks its arguments and throws on every method after close()', () => {
    assert.throws(() => new AeadContext('aes-128-ecb' as CipherSuite, 'seal', { key: randomBytes(32), iv: randomBytes(12) }), RangeError);
    assert.throws(() => new AeadContext('aes-256-gcm', 'seal', { key: randomBytes(16), iv: randomBytes(12) }), RangeError);
    assert.throws(() => new AeadContext('aes-256-gcm', 'seal', { secret: randomBytes(31) }), RangeError);
    const c = new AeadContext('aes-256-gcm', 'seal', { secret: randomBytes(32) });
    assert.throws(() => c.seal(64, 0, Buffer.alloc(1)), RangeError);
    assert.throws(() => c.seal(8, 0, Buffer.alloc(10), Buffer.alloc(20)), RangeError);
    c.close();
    c.close();
    const u32 = new Uint32Array(0);
    const u8 = new Uint8Array(0);
    for (const call of [
      () => c.seal(8, 0, Buffer.alloc(1)),
      () => c.open(8, 2, Buffer.alloc(17)),
      () => c.sealBatch(u8, u32, u32, u8, u8, u8),
      () => c.openBatch(u8, u32, u32, u8, u8, u8),
      () => c.rekey(),
      () => c.sequence,
    ]) {
      assert.throws(call, /used after close/);
    }
  });
});

describe('native AeadContext and ServerIdentity classes', () => {
  it('throw a clear error from every method after close(), without crashing', async () => {
    const { native } = await import('../../lib/native.js');
    const N = native();
    const ctx = new N.AeadContext(1, true, randomBytes(32));
    ctx.close();
    const buf = Buffer.alloc(64);
    const u32 = new Uint32Array(0);
    const u8 = new Uint8Array(0);
    for (const call of [
      () => ctx.seal(8, 0, buf, 0, 1, buf, 0),
      () => ctx.open(8, 2, buf, 0, 17, buf, 0),
      () => ctx.sealRecords(u8, u32, u32, u8, u8, u8, 0),
      () => ctx.openRecords(u8, u32, u32, u8, u8, u8, 0),
      () => ctx.rekey(),
      () => ctx.sequence(),
      () => ctx.close(),
    ]) {
      assert.throws(call, /AeadContext used after close\(\)/);
    }
    const id = new N.ServerIdentity(randomBytes(32));
    id.close();
    for (const call of [() => id.publicKey(), () => id.respond(1, 1, Buffer.alloc(35)), () => id.close()]) {
      assert.throws(call, /ServerIdentity used after close\(\)/);
    }
  });

  it('re-check ranges so a misuse of the raw addon cannot reach outside its buffers', async () => {
    const { native } = await import('../../lib/native.js');
    const ctx = new (native().AeadContext)(1, true, randomBytes(32));
    const small = Buffer.alloc(8);
    assert.throws(() => ctx.seal(8, 0, small, 0, 8, small, 0), RangeError);
    assert.throws(() => ctx.seal(8, 0, small, 4, 8, Buffer.alloc(64), 0), RangeError);
    assert.throws(() => ctx.sealRecords(small, new Uint32Array([4]), new Uint32Array([8]), new Uint8Array([8]), new Uint8Array([0]), Buffer.alloc(64), 0), RangeError);
    assert.throws(() => ctx.openRecords(Buffer.alloc(32), new Uint32Array([0]), new Uint32Array([32]), new Uint8Array([8]), new Uint8Array([2]), Buffer.alloc(8), 0), RangeError);
    assert.throws(() => new (native().AeadContext)(1, true, randomBytes(32), randomBytes(11)), RangeError);
    assert.throws(() => new (native().AeadContext)(9, true, randomBytes(32)), /unknown suite/);
    ctx.close();
  });
});
