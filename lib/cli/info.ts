/** `zserver info` (the default) and `zserver selfcheck`. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { native, packageRoot } from '../native.js';
import { selfCheck } from '../selfcheck.js';
import { printHelp } from './index.js';

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

export async function runInfo(args: string[]): Promise<number> {
  process.stdout.write(
    `zserver ${version()} on Node ${process.version}, ${process.platform}-${process.arch}, ` +
      `native addon Node-API ${native().napiVersion}\n\n` +
      `Available now:\n` +
      `  native hashing: md5, crc32, crc32c, xxh64 (one-shot and batch) from 'zserver'\n\n`,
  );
  printHelp();
  process.stdout.write('\nNative self-check:\n');
  return runSelfCheck(args);
}
