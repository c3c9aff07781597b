#!/usr/bin/env node
/** The `zserver` executable: see lib/cli/index.ts for the commands. */
import { main } from '../lib/cli/index.js';

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`zserver: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
