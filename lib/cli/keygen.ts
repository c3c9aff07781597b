/**
 * `zserver keygen [--out path] [--force]`: makes a server identity for the
 * secure channel. Writes the Ed25519 private key as PKCS#8 PEM to `path`
 * (default ./server.key) with mode 0600, the public key as SPKI PEM to
 * `path.pub`, and prints the fingerprint clients pin (SHA-256 of the raw
 * 32-byte public key, hex; docs/security.md).
 */
import { generateKeyPairSync } from 'node:crypto';
import { chmodSync, existsSync, unlinkSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fingerprint } from '../channel/handshake.js';

export async function runKeygen(args: string[]): Promise<number> {
  let out = 'server.key';
  let force = false;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--out' && args[i + 1]) out = args[++i]!;
    else if (a.startsWith('--out=')) out = a.slice(6);
    else if (a === '--force') force = true;
    else {
      process.stderr.write(`zserver keygen: unknown argument '${a}'. Usage: zserver keygen [--out path] [--force]\n`);
      return 2;
    }
  }
  const keyPath = resolve(out);
  const pubPath = `${keyPath}.pub`;
  for (const p of [keyPath, pubPath]) {
    if (existsSync(p)) {
      if (!force) {
        process.stderr.write(`zserver keygen: ${p} exists; pass --force to replace it\n`);
        return 1;
      }
      unlinkSync(p);
    }
  }
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  // 'wx' creates the file with mode 0600 from the start, so the key is never readable by others.
  writeFileSync(keyPath, privateKey.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600, flag: 'wx' });
  chmodSync(keyPath, 0o600);
  writeFileSync(pubPath, publicKey.export({ format: 'pem', type: 'spki' }), { mode: 0o644, flag: 'wx' });
  const raw = Buffer.from(publicKey.export({ format: 'jwk' }).x!, 'base64url');
  process.stdout.write(`private key: ${keyPath} (mode 0600)\npublic key:  ${pubPath}\nfingerprint: ${fingerprint(raw)}\n`);
  return 0;
}
