/** `zserver info` (the default) and `zserver selfcheck`. */
import { getCiphers } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SUITE_IDS, type CipherSuite } from '../channel/wire.js';
import { compressionMethods } from '../compression/header.js';
import { native, packageRoot } from '../native.js';
import { transportAvailable, webSocketServerName, type TransportName } from '../transport/factory.js';
import { selfCheck } from '../selfcheck.js';

function version(): string {
  return (JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version: string }).version;
}

/** Prints the self-check; returns 0 when every check holds, 1 otherwise. */
export async function runSelfCheck(_args: string[]): Promise<number> {
  const results = selfCheck();
  for (const r of results) process.stdout.write(`  ${r.ok ? 'ok  ' : 'FAIL'}  ${r.name}: ${r.detail}\n`);
  const failed = results.filter((r) => !r.ok).length;
  process.stdout.write(failed ? `self-check: ${failed} of ${results.length} FAILED\n` : `self-check: all ${results.length} passed\n`);
  return failed ? 1 : 0;
}

/** What each transport name is, for the list of `zserver info`. */
const TRANSPORTS: [TransportName, string][] = [
  ['native', 'native TCP in the epoll loop'],
  ['native-ws', 'WebSocket (and wss with TLS) in the epoll loop'],
  ['node-net', 'Node net TCP'],
  ['uws', 'WebSocket server on uWebSockets.js'],
  ['ws', 'WebSocket server on the ws package'],
  ['memory', 'in-process, for tests'],
];

/** What createWebSocketServer() makes, by webSocketServerName(). */
const WS_SERVERS = {
  'native-ws': 'native-ws (WebSocket in the native epoll loop)',
  uws: 'uWebSockets.js',
  ws: 'ws package (no native loop here, and uWebSockets.js has no binary for this Node)',
} as const;

/** The lines of "Available now": what this build on this Node can do. */
export async function capabilities(): Promise<string[]> {
  const transports: string[] = [];
  for (const [name, what] of TRANSPORTS) if (await transportAvailable(name)) transports.push(`${name} (${what})`);
  const missing = TRANSPORTS.filter(([name]) => !transports.some((t) => t.startsWith(`${name} `))).map(([name]) => name);
  const ciphers = new Set(getCiphers());
  const suites = (Object.keys(SUITE_IDS) as CipherSuite[]).filter((s) => ciphers.has(s));
  const ws = await webSocketServerName();
  return [
    `transports: ${transports.join(', ')}${missing.length ? `; not here: ${missing.join(', ')}` : ''}`,
    `WebSocket server in use (zserver serve, createWebSocketServer): ${WS_SERVERS[ws]}`,
    `framework: console, stream, direct, big stream and complete buffer commands, both ways, over any transport`,
    `secure channel: X25519 + Ed25519 identity, AEAD records ${suites.join(', ')}, in the native loop on native TCP`,
    `compression: ${compressionMethods.filter((m) => m !== 'none').join(', ')} (per frame, pipeline stage)`,
    `hashing: md5, crc32, crc32c, xxh64 (native, one-shot and batch)`,
    `P2PVM: virtual connections inside one physical connection`,
    `browser client: the bundle zserver/browser (WebSocket, secure channel, compression)`,
  ];
}

/** Prints what this build can do, then `printHelp` (the command table's, which index.ts owns), then the self-check. */
export async function runInfo(args: string[], printHelp: () => void): Promise<number> {
  process.stdout.write(
    `zserver ${version()} on Node ${process.version}, ${process.platform}-${process.arch}, ` +
      `native addon Node-API ${native().napiVersion}\n\n` +
      `Available now:\n` +
      (await capabilities()).map((line) => `  ${line}\n`).join('') +
      '\n',
  );
  printHelp();
  process.stdout.write('\nNative self-check:\n');
  return runSelfCheck(args);
}
