/**
 * Shared by the echo servers of bench/echo.ts: the port argument, and the
 * "READY <port>" line the bench waits for before it starts a load generator.
 */
export const requestedPort = Number(process.argv[2] ?? 0);

export function ready(port: number): void {
  process.stdout.write(`READY ${port}\n`);
}

/** Exits on SIGTERM/SIGINT (the bench stops servers that way). */
export function exitOnSignal(stop: () => unknown = () => undefined): void {
  const quit = () => {
    void stop();
    process.exit(0);
  };
  process.on('SIGTERM', quit);
  process.on('SIGINT', quit);
}
