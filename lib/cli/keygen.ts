/**
 * `zserver keygen [--out path] [--force]`: makes a server identity for the
 * secure channel. Writes the Ed25519 private key as PKCS#8 PEM to `path`
 * (default ./server.key) with mode 0600, the public key as SPKI PEM to
 * `path.pub`, and prints the fingerprint clients pin (SHA-256 of the raw
 * 32-byte public key, hex; docs/security.md). `--show` prints the fingerprint of
 * an existing key instead (what clients must pin), writing nothing.
 */
import { generateKeyPairSync } from 'node:crypto';
import { chmodSync, existsSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fingerprint, ServerIdentity } from '../channel/handshake.js';

const USAGE = `Usage: zserver keygen [--out path] [--force] [--show]

Makes a server identity for the secure channel (docs/security.md): the Ed25519 private key as
PKCS#8 PEM at path (default ./server.key, mode 0600), its public key at path.pub, and prints the
fingerprint that clients pin.

  --out path   where to write the key (default server.key)
  --force      replace an existing key (clients pinned to the old one are refused from then on)
  --show       print the fingerprint of the existing key at path; write nothing
  --help       this text

Examples:
  zserver keygen --out /etc/zserver/server.key
  zserver keygen --out /etc/zserver/server.key --show
`;

/** `zserver keygen`: see the file comment; returns the exit code. */
export async function runKeygen(args: string[]): Promise<number> {
  let out = 'server.key';
  let force = false;
  let show = false;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--help' || a === '-h') {
      process.stdout.write(USAGE);
      return 0;
    }
    if (a === '--out' && args[i + 1]) out = args[++i]!;
    else if (a.startsWith('--out=')) out = a.slice(6);
    else if (a === '--force') force = true;
    else if (a === '--show') show = true;
    else {
      process.stderr.write(`zserver keygen: unknown argument '${a}'. Usage: zserver keygen [--out path] [--force] [--show] (zserver keygen --help)\n`);
      return 2;
    }
  }
  const keyPath = resolve(out);
  if (show) {
    let id: ServerIdentity;
    try {
      id = ServerIdentity.from(readFileSync(keyPath, 'utf8'));
    } catch (err) {
      process.stderr.write(`zserver keygen: cannot read a server key from ${keyPath}: ${(err as Error).message}\n`);
      return 1;
    }
    process.stdout.write(`fingerprint: ${id.fingerprint}\n`);
    id.close();
    return 0;
  }
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
