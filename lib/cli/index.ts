/**
 * The `zserver` command line: one table of subcommands, one dispatcher.
 * Each subcommand lives in its own module and is loaded only when run.
 */
export interface CliCommand {
  /** One line for the help text. */
  summary: string;
  /** Runs the command with the arguments after its name; resolves to the exit code. */
  run(args: string[]): Promise<number>;
}

export const commands: Record<string, CliCommand> = {
  info: {
    summary: 'print what zserver can do and run the native self-check (the default)',
    run: async (args) => (await import('./info.js')).runInfo(args, printHelp),
  },
  serve: {
    summary: 'run a server with test commands of every kind on 127.0.0.1:9818, and WebSocket + the web example on :9819 (npm start); --compression: compress frames (off by default: compressed frames are refused); [app.js] serves your app module (zserver serve --help); --workers N: a supervised group on the same ports, SIGHUP restarts it worker by worker',
    run: async (args) => (await import('./serve.js')).runServe(args),
  },
  selfcheck: {
    summary: 'check the native hashes against node:crypto and published vectors',
    run: async (args) => (await import('./info.js')).runSelfCheck(args),
  },
  stress: {
    summary: 'open many connections to an echo server group, or framework calls with --mode rpc; report rates, latency, memory (and presence, broadcast)',
    run: async (args) => (await import('./stress.js')).runStressCommand(args),
  },
  worker: {
    summary: 'run a logic-tier worker: `zserver worker ./logic.js --nats URL` serves the commands a server routes to NATS (zserver worker --help)',
    run: async (args) => (await import('./worker.js')).runWorker(args),
  },
  get: {
    summary: 'download a file from a file service, resumable and verified, with a progress line (zserver get --help)',
    run: async (args) => (await import('./files.js')).runGet(args),
  },
  put: {
    summary: 'upload a file to a file service, resumable and verified, with a progress line (zserver put --help)',
    run: async (args) => (await import('./files.js')).runPut(args),
  },
  'serve-files': {
    summary: 'serve a directory with the file service (docs/files.md; zserver serve-files --help)',
    run: async (args) => (await import('./files.js')).runServeFiles(args),
  },
  keygen: {
    summary: 'write a secure-channel server identity (Ed25519, 0600) and print its fingerprint',
    run: async (args) => (await import('./keygen.js')).runKeygen(args),
  },
  xnat: {
    summary: 'reach services behind NAT through an encrypted tunnel: `zserver xnat server` on the public side, `zserver xnat agent` next to the services (zserver xnat --help)',
    run: async (args) => (await import('./xnat.js')).runXnat(args),
  },
};

/** Runs `zserver <command> [args]`; unknown commands print the help and return 2. */
export async function main(argv: string[]): Promise<number> {
  const [name = 'info', ...rest] = argv;
  if (name === 'help' || name === '--help' || name === '-h') {
    printHelp();
    return 0;
  }
  const command = commands[name];
  if (!command) {
    process.stderr.write(`zserver: unknown command '${name}'.\n`);
    printHelp();
    return 2;
  }
  return command.run(rest);
}

export function printHelp(): void {
  const width = Math.max(...Object.keys(commands).map((n) => n.length));
  const lines = Object.entries(commands).map(([n, c]) => `  zserver ${n.padEnd(width)}  ${c.summary}`);
  process.stdout.write(`Usage:\n${lines.join('\n')}\n`);
}
