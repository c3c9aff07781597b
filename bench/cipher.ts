/**
 * bench/cipher.ts: the secure channel's AEAD records and handshakes against node:crypto.
 *
 * Records: for 64 B, 1 KiB and 16 KiB plaintexts, records/s and MB/s of
 * node:crypto (createCipheriv + setAAD + update + final + getAuthTag per
 * record, as a program would seal records with it) and of zserver's
 * AeadContext, one native call per record (seal) and one native call per batch
 * (sealBatch, openBatch), for AES-256-GCM and ChaCha20-Poly1305. The ratio
 * column compares each row with node:crypto for the same suite and size.
 *
 * Handshakes: the server's share (key generation, key agreement, signature,
 * key derivation, two record contexts) with node:crypto KeyObjects and with
 * zserver (one native call plus the two contexts); and a full handshake
 * (both sides, messages checked) with zserver. Besides wall-clock rates, the
 * handshake table gives CPU time per handshake (process.cpuUsage over a fixed
 * count), which holds steadier when other work shares the machine.
 *
 * Run: node --import tsx bench/cipher.ts [--quick]
 */
import { type CipherGCM, type KeyObject, createCipheriv, diffieHellman, generateKeyPairSync, hkdfSync, randomBytes, sign, createHash, createPublicKey } from 'node:crypto';
import { AeadContext, type CipherSuite } from '../lib/channel/aead.js';
import { ClientHandshake, parseClientHello, ServerIdentity } from '../lib/channel/handshake.js';
import { printTable, quick, rate, writeResults } from './_lib.js';

const suites: CipherSuite[] = ['aes-256-gcm', 'chacha20-poly1305'];
const sizes = [64, 1024, 16384];
const rows: Record<string, string | number>[] = [];

for (const suite of suites) {
  for (const size of sizes) {
    const count = Math.min(1024, Math.max(16, Math.floor((1 << 20) / size)));
    const plain = randomBytes(count * size);
    const offsets = Uint32Array.from({ length: count }, (_, i) => i * size);
    const lengths = new Uint32Array(count).fill(size);
    const kinds = new Uint8Array(count).fill(8);
    const flags = new Uint8Array(count);
    const sealed = Buffer.alloc(count * (size + 16));
    const key = randomBytes(32);
    const iv = randomBytes(12);
    const header = Buffer.alloc(5);
    header.writeUInt32LE(size + 16);
    header[4] = 8 | 0x80;
    let seq = 0;
    const nonce = Buffer.from(iv);
    const nodeSeal = () => {
      nonce.writeUInt32BE((iv.readUInt32BE(8) ^ seq++) >>> 0, 8);
      const c = createCipheriv(suite, key, nonce, { authTagLength: 16 } as never) as unknown as CipherGCM;
      c.setAAD(header);
      const i = seq % count;
      c.update(plain.subarray(i * size, i * size + size));
      c.final();
      return c.getAuthTag();
    };
    const sealer = new AeadContext(suite, 'seal', { key, iv });
    const out = Buffer.alloc(size + 16);
    let next = 0;
    const oursSeal = () => {
      next = (next + 1) % count;
      return sealer.seal(8, 0, plain.subarray(next * size, next * size + size), out);
    };
    const batchSealer = new AeadContext(suite, 'seal', { key, iv });
    const oursBatch = () => batchSealer.sealBatch(plain, offsets, lengths, kinds, flags, sealed);
    // openBatch needs records in sequence: re-seal one batch with a fresh context per opened batch
    // would measure sealing too, so open the same batch with a context reset by a fresh secret pair.
    const secret = randomBytes(32);
    const recSealer = new AeadContext(suite, 'seal', { secret });
    const records = Buffer.alloc(count * (size + 16));
    recSealer.sealBatch(plain, offsets, lengths, kinds, flags, records);
    const inOffsets = Uint32Array.from({ length: count }, (_, i) => i * (size + 16));
    const inLengths = new Uint32Array(count).fill(size + 16);
    const wireFlags = new Uint8Array(count).fill(2);
    const opened = Buffer.alloc(count * size);
    const openers = Array.from({ length: 64 }, () => new AeadContext(suite, 'open', { secret }));
    let o = 0;
    const oursOpen = () => {
      const ctx = openers[o++ % openers.length]!;
      if (ctx.sequence !== 0) {
        openers[(o - 1) % openers.length] = new AeadContext(suite, 'open', { secret });
        ctx.close();
        return openers[(o - 1) % openers.length]!.openBatch(records, inOffsets, inLengths, kinds, wireFlags, opened);
      }
      return ctx.openBatch(records, inOffsets, inLengths, kinds, wireFlags, opened);
    };
    const cases: [string, () => unknown, number][] = [
      ['node:crypto createCipheriv per record', nodeSeal, 1],
      ['zserver seal (one call per record)', oursSeal, 1],
      ['zserver sealBatch', oursBatch, count],
      ['zserver openBatch (incl. context setup)', oursOpen, count],
    ];
    let baseline = 0;
    for (const [name, fn, perCall] of cases) {
      const perSec = rate(fn) * perCall;
      if (name.startsWith('node:crypto')) baseline = perSec;
      rows.push({
        suite,
        size: size >= 1024 ? `${size / 1024} KiB` : `${size} B`,
        implementation: name,
        'records/s': perSec,
        'MB/s': (perSec * size) / 1e6,
        'vs node': perSec / baseline,
      });
    }
    sealer.close();
    batchSealer.close();
    recSealer.close();
    for (const c of openers) c.close();
  }
}

printTable('AEAD records: records/s and MB/s (median of samples); ratio against node:crypto, same suite and size', rows);

// Handshakes.
const { privateKey: edKey, publicKey: edPub } = generateKeyPairSync('ed25519');
const identity = ServerIdentity.from(edKey);
const clientHello = new ClientHandshake(['aes-256-gcm']).hello;
const clientKeyObject = createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: Buffer.from(clientHello.subarray(3)).toString('base64url') }, format: 'jwk' });
const edPubRaw = Buffer.from(edPub.export({ format: 'jwk' }).x!, 'base64url');
// The ephemeral public key comes back DER-encoded from the key-generation call
// itself: exporting a fresh KeyObject (export({ format: 'jwk' })) in this loop
// deadlocked Node 20.20 when a garbage collection finalised a key-generation
// job during the export (node::crypto::KeyGenJob destructor waiting on a lock
// the export holds).
const nodeServer = () => {
  const eph = generateKeyPairSync('x25519', { publicKeyEncoding: { type: 'spki', format: 'der' } } as never) as unknown as {
    publicKey: Buffer;
    privateKey: KeyObject;
  };
  const shared = diffieHellman({ privateKey: eph.privateKey, publicKey: clientKeyObject });
  const ephRaw = eph.publicKey.subarray(eph.publicKey.length - 32);
  const th = createHash('sha256').update(clientHello).update(Buffer.from([1, 1])).update(ephRaw).update(edPubRaw).digest();
  const sig = sign(null, Buffer.concat([Buffer.from('zs1 server signature'), th]), edKey);
  const secrets = Buffer.from(hkdfSync('sha256', shared, th, 'zs1 secrets', 64));
  return [sig, secrets];
};
const oursServer = () => {
  const { suite } = parseClientHello(clientHello, ['aes-256-gcm']);
  const r = identity.respond(clientHello, suite);
  new AeadContext(suite, 'open', { secret: r.c2s }).close();
  new AeadContext(suite, 'seal', { secret: r.s2c }).close();
  return r;
};
const oursFull = () => {
  const client = new ClientHandshake(['aes-256-gcm', 'chacha20-poly1305']);
  const { suite } = parseClientHello(client.hello, ['aes-256-gcm', 'chacha20-poly1305']);
  const r = identity.respond(client.hello, suite);
  const done = client.finish(r.serverHello, [identity.fingerprint]);
  for (const [s, dir] of [[r.c2s, 'open'], [r.s2c, 'seal'], [done.c2s, 'seal'], [done.s2c, 'open']] as const) {
    new AeadContext(suite, dir, { secret: s }).close();
  }
};
const hsRows: Record<string, string | number>[] = [];
let hsBase = 0;
/** CPU time per call of `fn` over a fixed count: steadier than wall time on a shared machine. */
const cpuMicros = (fn: () => unknown, n = quick ? 500 : 3000): number => {
  const start = process.cpuUsage();
  for (let i = 0; i < n; i++) fn();
  const used = process.cpuUsage(start);
  return (used.user + used.system) / n;
};
for (const [name, fn] of [
  ['node:crypto KeyObjects, server share (no record contexts)', nodeServer],
  ['zserver server share: respond only (one native call)', () => identity.respond(clientHello, 'aes-256-gcm')],
  ['zserver server share (respond + 2 contexts)', oursServer],
  ['zserver full handshake, both sides', oursFull],
] as const) {
  const perSec = rate(fn);
  if (name.startsWith('node')) hsBase = perSec;
  const cpu = cpuMicros(fn);
  hsRows.push({
    implementation: name,
    'handshakes/s': perSec,
    'µs each': 1e6 / perSec,
    'CPU µs each': cpu,
    'per core/s (CPU)': 1e6 / cpu,
    'vs node': perSec / hsBase,
  });
}
printTable('Handshakes on one core (median of samples); ratio against node:crypto', hsRows);
identity.close();
writeResults('cipher', rows, { handshakes: hsRows });
