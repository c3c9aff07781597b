/**
 * Agent authentication of XNAT (docs/xnat.md, "Threat model"). It runs inside the secure channel,
 * after the agent has checked the server's pinned identity, so nothing here is visible on the wire.
 *
 * Key: the server sends a fresh 32-byte challenge; the agent signs
 *   "zs xnat agent v1" ‖ 0x00 ‖ challenge ‖ the server fingerprint the agent verified (64 hex)
 * with its Ed25519 key and sends its raw public key and the signature. The server accepts a key
 * whose fingerprint (SHA-256 of the raw public key, as `zserver keygen` prints) is listed in its
 * config. A signature cannot be replayed (the challenge is new on every connection) nor relayed
 * through another server (it names the server's identity).
 * Token: a shared secret listed in the server's config, compared in constant time.
 */
import { createHash, createPrivateKey, createPublicKey, randomBytes, sign, timingSafeEqual, verify, type KeyObject } from 'node:crypto';
import { fingerprint } from '../channel/handshake.js';

const CONTEXT = Buffer.from('zs xnat agent v1\0');

/** A fresh challenge for one agent connection. */
export function newChallenge(): Buffer {
  return randomBytes(32);
}

function signedBytes(challenge: Uint8Array, serverFingerprint: string): Buffer {
  return Buffer.concat([CONTEXT, challenge, Buffer.from(serverFingerprint, 'ascii')]);
}

/** An agent's Ed25519 key: its private key, raw public key and fingerprint. */
export interface AgentKey {
  readonly privateKey: KeyObject;
  readonly publicKey: Buffer;
  readonly fingerprint: string;
}

/** Loads an agent key from PKCS#8 PEM text (what `zserver keygen` writes) or a 32-byte seed. */
export function loadAgentKey(key: string | Uint8Array): AgentKey {
  let privateKey: KeyObject;
  try {
    if (typeof key === 'string') privateKey = createPrivateKey(key);
    else {
      if (key.length !== 32) throw new RangeError(`an Ed25519 seed is 32 bytes, got ${key.length}`);
      // PKCS#8 prefix of an Ed25519 private key, then the 32-byte seed.
      const der = Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), key]);
      privateKey = createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
    }
  } catch (err) {
    throw new TypeError(`xnat: the agent key is not an Ed25519 private key (PKCS#8 PEM from \`zserver keygen\`, or a 32-byte seed): ${(err as Error).message}`);
  }
  if (privateKey.asymmetricKeyType !== 'ed25519') {
    throw new TypeError(`xnat: the agent key must be Ed25519, got ${privateKey.asymmetricKeyType ?? 'unknown'}`);
  }
  const jwk = createPublicKey(privateKey).export({ format: 'jwk' });
  const publicKey = Buffer.from(jwk.x!, 'base64url');
  return { privateKey, publicKey, fingerprint: fingerprint(publicKey) };
}

/** The agent's answer to a challenge. */
export function signChallenge(key: AgentKey, challenge: Uint8Array, serverFingerprint: string): Buffer {
  return sign(null, signedBytes(challenge, serverFingerprint), key.privateKey);
}

/**
 * True when `signature` is `publicKey`'s signature of the challenge for this server. The caller
 * checks separately that the key's fingerprint is listed.
 */
export function verifyChallenge(publicKey: Uint8Array, signature: Uint8Array, challenge: Uint8Array, serverFingerprint: string): boolean {
  if (publicKey.length !== 32 || signature.length !== 64) return false;
  try {
    const key = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(publicKey).toString('base64url') }, format: 'jwk' });
    return verify(null, signedBytes(challenge, serverFingerprint), key, signature);
  } catch {
    return false;
  }
}

/** True when `given` equals one of `tokens`, each compared in constant time (hashes, so lengths do not leak). */
export function tokenListed(given: string, tokens: readonly string[]): boolean {
  const g = createHash('sha256').update(given).digest();
  let found = false;
  for (const t of tokens) if (timingSafeEqual(g, createHash('sha256').update(t).digest())) found = true;
  return found;
}
