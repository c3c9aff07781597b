// The handshake pieces alone: ServerIdentity from every key form, the
// fingerprint definition, message checks with their bounds, and use after close().
import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { ClientHandshake, encodeClientHello, fingerprint, MAX_CLIENT_HELLO, normalizeFingerprint, parseClientHello, ServerIdentity } from '../../lib/channel/handshake.js';
import { HandshakeError } from '../../lib/errors.js';

describe('secure channel handshake', () => {
  it('loads an identity from a KeyObject, PEM or raw seed with the same public key and fingerprint', () => {
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    const raw = Buffer.from(publicKey.export({ format: 'jwk' }).x!, 'base64url');
    const seed = Buffer.from(privateKey.export({ format: 'jwk' }).d!, 'base64url');
    for (const input of [privateKey, privateKey.export({ format: 'pem', type: 'pkcs8' }) as string, seed]) {
      const id = ServerIdentity.from(input);
      assert.deepEqual(id.publicKey, raw);
      assert.equal(id.fingerprint, createHash('sha256').update(raw).digest('hex'));
      id.close();
    }
    assert.throws(() => ServerIdentity.from(generateKeyPairSync('x25519').privateKey), TypeError);
    assert.throws(() => ServerIdentity.from(randomBytes(31)), RangeError);
  });

  it('server and client halves agree, and the client sees the server fingerprint', () => {
    const id = ServerIdentity.from(randomBytes(32));
    const client = new ClientHandshake(['chacha20-poly1305', 'aes-256-gcm']);
    const { suite } = parseClientHello(client.hello, ['aes-256-gcm', 'chacha20-poly1305']);
    assert.equal(suite, 'aes-256-gcm');
    const server = id.respond(client.hello, suite);
    const done = client.finish(server.serverHello, [id.fingerprint]);
    assert.equal(done.fingerprint, id.fingerprint);
    assert.deepEqual(done.c2s, server.c2s);
    assert.deepEqual(done.s2c, server.s2c);
    id.close();
    id.close();
    assert.throws(() => id.respond(client.hello, suite), /used after close/);
  });

  it('rejects malformed ClientHellos with exact messages, reading nothing past the size check', () => {
    const pref = ['aes-256-gcm'] as const;
    const good = encodeClientHello(randomBytes(32), ['aes-256-gcm']);
    const bad = (m: Buffer, re: RegExp) => assert.throws(() => parseClientHello(m, pref), (e: HandshakeError) => e.code === 'ZS_HANDSHAKE' && re.test(e.message));
    bad(Buffer.alloc(0), /ClientHello of 0 bytes/);
    bad(Buffer.alloc(MAX_CLIENT_HELLO + 1, 1), new RegExp(`ClientHello of ${MAX_CLIENT_HELLO + 1} bytes`));
    bad(Buffer.alloc(16 * 1024 * 1024), /ClientHello of 16777216 bytes/);
    bad(Buffer.concat([Buffer.from([2]), good.subarray(1)]), /unsupported protocol version 2/);
    bad(Buffer.concat([Buffer.from([1, 0]), good.subarray(2)]), /malformed ClientHello/);
    bad(good.subarray(0, good.length - 1), /malformed ClientHello/);
    bad(encodeClientHello(randomBytes(32), ['chacha20-poly1305']), /no common cipher suite/);
  });

  it('normalises pins and rejects anything that is not 64 hex digits', () => {
    const fp = fingerprint(randomBytes(32));
    assert.equal(normalizeFingerprint(fp.toUpperCase().match(/../g)!.join(':')), fp);
    assert.throws(() => normalizeFingerprint('abcd'), RangeError);
  });
});

describe('secure channel handshake under random input (fast-check)', () => {
  it('any bytes as ClientHello, ServerHello or record either parse or fail with the typed error, never crash', async () => {
    const fc = (await import('fast-check')).default;
    const { AeadContext } = await import('../../lib/channel/aead.js');
    const { AuthError } = await import('../../lib/errors.js');
    const id = ServerIdentity.from(randomBytes(32));
    const opener = new AeadContext('aes-256-gcm', 'open', { secret: randomBytes(32) });
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.uint8Array({ minLength: 128, maxLength: 128 }), (bytes, body) => {
        const msg = Buffer.from(bytes);
        try {
          const { suite } = parseClientHello(msg, ['aes-256-gcm', 'chacha20-poly1305']);
          id.respond(msg, suite); // a well-formed hello with any key: agreement works or throws HandshakeError
        } catch (e) {
          assert.ok(e instanceof HandshakeError, String(e));
        }
        try {
          new ClientHandshake(['aes-256-gcm']).finish(msg, []);
          assert.fail('a random ServerHello must not verify');
        } catch (e) {
          assert.ok(e instanceof HandshakeError, String(e));
        }
        // Random keys and signature in a ServerHello of the right size, version and suite: the
        // signature fails. (Random, not zero-padded: OpenSSL's Ed25519 verification accepts some
        // forged signatures for small-order keys such as all zeros; docs/security.md explains why
        // that does not matter once a fingerprint is pinned.)
        const shaped = Buffer.concat([Buffer.from([1, 1]), body]);
        assert.throws(() => new ClientHandshake(['aes-256-gcm']).finish(shaped, []), /signature does not verify|key agreement failed/);
        assert.throws(() => opener.open(8, 2, msg), AuthError);
      }),
      { numRuns: 300 },
    );
    assert.equal(opener.sequence, 0);
    id.close();
  });
});
