/**
 * `zserver serve` (lib/cli/serve-echo.ts): a group of worker processes sharing one port with
 * SO_REUSEPORT echoes frames, the kernel spreads connections across the
 * workers, and SIGTERM stops the whole group cleanly.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { describe, it } from 'node:test';
import { encodeFrame, rawClient } from '../helpers/frames.js';

describe('zserver serve --echo', () => {
  it('runs 2 workers on one port, echoes, spreads connections, and stops on SIGTERM', { timeout: 40_000 }, async () => {
    const group = spawn(process.execPath, ['--import', 'tsx', 'bin/zserver.ts', 'serve', '--echo', '--port', '0', '--workers', '2', '--report', '1'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const kill = setTimeout(() => group.kill('SIGKILL'), 30_000);
    try {
      const lines: Record<string, unknown>[] = [];
      let buf = '';
      let notify = () => {};
      group.stdout.on('data', (d: Buffer) => {
        buf += d.toString();
        let nl;
        while ((nl = buf.indexOf('\n')) >= 0) {
          lines.push(JSON.parse(buf.slice(0, nl)) as Record<string, unknown>);
          buf = buf.slice(nl + 1);
        }
        notify();
      });
      const until = async (pred: () => boolean) => {
        while (!pred()) await new Promise<void>((r) => (notify = r));
      };
      await until(() => lines.some((l) => 'serving' in l));
      const serving = lines.find((l) => 'serving' in l)!;
      assert.equal(serving.workers, 2);
      const port = Number(String(serving.serving).split(':')[1]);

      const clients = await Promise.all(Array.from({ length: 40 }, () => rawClient(port)));
      for (const [i, c] of clients.entries()) c.socket.write(encodeFrame(9, 0, Buffer.from(`hello ${i}`)));
      for (const [i, c] of clients.entries()) assert.equal((await c.frames(1))[0]!.payload.toString(), `hello ${i}`);

      // Each worker reports its open connections; together they hold all 40, and both hold some.
      const latest = () => {
        const byPid = new Map<unknown, number>();
        for (const l of lines) if ('open' in l) byPid.set(l.pid, l.open as number);
        return byPid;
      };
      await until(() => [...latest().values()].reduce((a, b) => a + b, 0) === 40 && latest().size === 2);
      assert.ok([...latest().values()].every((n) => n > 0), `connections per worker: ${[...latest().values()]}`);

      for (const c of clients) c.socket.destroy();
      const code = await new Promise<number | null>((resolve) => {
        group.once('exit', resolve);
        group.kill('SIGTERM');
      });
      assert.equal(code, 0);
    } finally {
      clearTimeout(kill);
      if (group.exitCode === null) group.kill('SIGKILL');
    }
  });
});
