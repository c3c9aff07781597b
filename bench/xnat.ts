/**
 * XNAT against a direct connection and against `ssh -R` remote forwarding, in one run
 * (docs/xnat.md, "Benchmark"):
 *
 *   node --import tsx bench/xnat.ts [--quick] [--only direct,xnat,ssh]
 *
 * The XNAT rows run on both transports (`--transport native` and `--transport node-net`).
 *
 * - one bulk download (1 GiB; --quick 64 MiB) from a local TCP service, in MB/s;
 * - 1,000 concurrent small HTTP requests (--quick 100), each on a new connection, in requests/s;
 * - round-trip latency of one HTTP request on a kept-alive connection (median of 500; --quick 50),
 *   and what the tunnel adds to the direct one.
 *
 * The XNAT server and agent run as `zserver xnat server|agent` processes; `ssh -R` runs OpenSSH's
 * client against a private sshd started here on a loopback port (temporary host key and
 * authorized_keys, no system configuration touched; as root it makes the empty runtime directory
 * /run/sshd that sshd's service would). Without /usr/sbin/sshd (Debian:
 * `apt-get install -y openssh-server`) the ssh row says so and the others still run.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { transportAvailable } from '../lib/transport/factory.js';
import { loadAgentKey } from '../lib/xnat/index.js';
import { formatNumber, median, printTable, quick, writeResults } from './_lib.js';

const BULK = (quick ? 64 : 1024) * 1024 * 1024;
const CONCURRENT = quick ? 100 : 1000;
const LATENCY_SAMPLES = quick ? 50 : 500;
const onlyArg = process.argv.find((a, i) => process.argv[i - 1] === '--only');
const only = new Set((onlyArg ?? 'direct,xnat,ssh').split(','));
const SSHD = '/usr/sbin/sshd';

const dir = mkdtempSync(join(tmpdir(), 'zs-bench-xnat-'));
const children: ChildProcess[] = [];

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

async function waitForPort(port: number, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => (s.destroy(), resolve(true)));
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > end) throw new Error(`port ${port} did not open within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function run(cmd: string, args: string[], waitFor?: RegExp): Promise<ChildProcess> {
  const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(p);
  if (!waitFor) return Promise.resolve(p);
  return new Promise((resolve, reject) => {
    let out = '';
    const on = (b: Buffer) => {
      out += b.toString();
      if (waitFor.test(out)) resolve(p);
    };
    p.stdout!.on('data', on);
    p.stderr!.on('data', on);
    p.once('exit', (code) => reject(new Error(`${cmd} exited with ${code}: ${out}`)));
  });
}

/** The services: a bulk source (sends BULK bytes, then ends) and a tiny HTTP server. */
async function services(): Promise<{ bulk: number; web: number; close: () => void }> {
  const chunk = Buffer.alloc(256 * 1024, 0x5a);
  const bulk = net.createServer((s) => {
    s.on('error', () => {});
    let left = BULK;
    const pump = () => {
      while (left > 0) {
        const n = Math.min(left, chunk.length);
        left -= n;
        if (!s.write(n === chunk.length ? chunk : chunk.subarray(0, n))) return void s.once('drain', pump);
      }
      s.end();
    };
    pump();
  });
  const web = http.createServer((_req, res) => res.end('ok'));
  web.keepAliveTimeout = 60_000;
  await new Promise<void>((r) => bulk.listen(0, '127.0.0.1', r));
  await new Promise<void>((r) => web.listen(0, '127.0.0.1', r));
  return {
    bulk: (bulk.address() as net.AddressInfo).port,
    web: (web.address() as net.AddressInfo).port,
    close: () => {
      bulk.close();
      web.closeAllConnections();
      web.close();
    },
  };
}

/** MB/s of one download of BULK bytes from `port`. */
function download(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    let n = 0;
    const s = net.connect(port, '127.0.0.1');
    s.on('data', (b: Buffer) => (n += b.length));
    s.on('error', reject);
    s.on('end', () => {
      if (n !== BULK) reject(new Error(`got ${n} of ${BULK} bytes`));
      else resolve(BULK / 1e6 / ((performance.now() - t0) / 1000));
      s.destroy();
    });
  });
}

function request(port: number, agent: http.Agent | false): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/', agent, timeout: 30_000 }, (res) => {
      res.resume();
      res.on('end', () => resolve());
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

/** Requests/s of CONCURRENT requests at once, each on a new connection. */
async function concurrent(port: number): Promise<number> {
  const t0 = performance.now();
  await Promise.all(Array.from({ length: CONCURRENT }, () => request(port, false)));
  return CONCURRENT / ((performance.now() - t0) / 1000);
}

/** Median ms of one request on a kept-alive connection. */
async function latency(port: number): Promise<number> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  await request(port, agent); // the connection is made outside the samples
  const samples: number[] = [];
  for (let i = 0; i < LATENCY_SAMPLES; i++) {
    const t0 = performance.now();
    await request(port, agent);
    samples.push(performance.now() - t0);
  }
  agent.destroy();
  return median(samples);
}

function pem(): string {
  return generateKeyPairSync('ed25519').privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
}

/** Starts an XNAT server and agent mapping two public ports to the services; returns the public ports. */
async function startXnat(svc: { bulk: number; web: number }, transport: 'native' | 'node-net'): Promise<{ bulk: number; web: number }> {
  const serverKey = join(dir, 'server.key');
  const agentKey = join(dir, 'agent.key');
  writeFileSync(serverKey, pem(), { mode: 0o600 });
  const agentPem = pem();
  writeFileSync(agentKey, agentPem, { mode: 0o600 });
  const [agentPort, bulk, web] = [await freePort(), await freePort(), await freePort()];
  const zs = ['--import', 'tsx', 'bin/zserver.ts', 'xnat'];
  const t = ['--transport', transport];
  const s = await run(process.execPath, [...zs, 'server', '--key', serverKey, '--listen', `127.0.0.1:${agentPort}`, '--port', `127.0.0.1:${bulk}`, '--port', `127.0.0.1:${web}/4096`, '--agent', `bench=${loadAgentKey(agentPem).fingerprint}`, '--quiet', ...t], /fingerprint ([0-9a-f]{64})/);
  void s;
  const { ServerIdentity } = await import('../lib/channel/index.js');
  const { readFileSync } = await import('node:fs');
  const pin = ServerIdentity.from(readFileSync(serverKey, 'utf8')).fingerprint;
  await run(process.execPath, [...zs, 'agent', '--server', `127.0.0.1:${agentPort}`, '--pin', pin, '--key', agentKey, '--map', `${bulk}=127.0.0.1:${svc.bulk}`, '--map', `${web}=127.0.0.1:${svc.web}`, ...t], /serving as/);
  return { bulk, web };
}

/** Starts a private sshd and `ssh -R` for both services; returns the forwarded ports, or why not. */
async function startSsh(svc: { bulk: number; web: number }): Promise<{ bulk: number; web: number } | string> {
  if (!existsSync(SSHD)) return `no ${SSHD} (apt-get install -y openssh-server)`;
  // sshd run as root wants its privilege-separation directory, which the Debian service creates
  // at start (a runtime directory, empty); make it when the service never ran.
  if (process.getuid?.() === 0 && !existsSync('/run/sshd')) mkdirSync('/run/sshd', { mode: 0o755 });
  const hostKey = join(dir, 'ssh_host_ed25519_key');
  const userKey = join(dir, 'id_ed25519');
  for (const k of [hostKey, userKey]) {
    const r = spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', k]);
    if (r.status !== 0) return `ssh-keygen failed: ${r.stderr}`;
  }
  const { readFileSync } = await import('node:fs');
  writeFileSync(join(dir, 'authorized_keys'), readFileSync(`${userKey}.pub`), { mode: 0o600 });
  const sshdPort = await freePort();
  const config = join(dir, 'sshd_config');
  writeFileSync(
    config,
    [
      `Port ${sshdPort}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${hostKey}`,
      `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
      `PidFile ${join(dir, 'sshd.pid')}`,
      'StrictModes no',
      'UsePAM no',
      'PasswordAuthentication no',
      'AllowTcpForwarding yes',
      'GatewayPorts no',
    ].join('\n') + '\n',
  );
  await run(SSHD, ['-D', '-e', '-f', config]);
  await waitForPort(sshdPort);
  const [bulk, web] = [await freePort(), await freePort()];
  await run('ssh', [
    '-N', '-p', String(sshdPort), '-i', userKey,
    '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'ExitOnForwardFailure=yes', '-o', 'LogLevel=ERROR',
    '-R', `127.0.0.1:${bulk}:127.0.0.1:${svc.bulk}`, '-R', `127.0.0.1:${web}:127.0.0.1:${svc.web}`,
    `${userInfo().username}@127.0.0.1`,
  ]);
  await waitForPort(bulk);
  await waitForPort(web);
  return { bulk, web };
}

async function main(): Promise<void> {
  const svc = await services();
  const paths: { name: string; ports: { bulk: number; web: number } | string }[] = [];
  if (only.has('direct')) paths.push({ name: 'direct', ports: svc });
  // Both transports XNAT runs on, in the same run (the CLI's default is native where it loads).
  if (only.has('xnat')) {
    const nativeLoads = await transportAvailable('native').catch(() => false);
    paths.push({ name: 'xnat native', ports: nativeLoads ? await startXnat(svc, 'native') : 'the native addon does not load here' });
    paths.push({ name: 'xnat node-net', ports: await startXnat(svc, 'node-net') });
  }
  if (only.has('ssh')) paths.push({ name: 'ssh -R', ports: await startSsh(svc).catch((e: Error) => e.message) });
  const rows: Record<string, string | number>[] = [];
  let direct: { mbs: number; rps: number; ms: number } | undefined;
  for (const p of paths) {
    if (typeof p.ports === 'string') {
      rows.push({ path: p.name, 'bulk MB/s': `skipped: ${p.ports}`, 'vs direct': '', [`${CONCURRENT} HTTP req/s`]: '', 'req/s vs direct': '', 'latency ms (p50)': '', 'added ms': '' });
      continue;
    }
    const mbs = await download(p.ports.bulk);
    const rps = await concurrent(p.ports.web);
    const ms = await latency(p.ports.web);
    if (p.name === 'direct') direct = { mbs, rps, ms };
    rows.push({
      path: p.name,
      'bulk MB/s': mbs,
      'vs direct': direct ? `${formatNumber(mbs / direct.mbs)}×` : '',
      [`${CONCURRENT} HTTP req/s`]: rps,
      'req/s vs direct': direct ? `${formatNumber(rps / direct.rps)}×` : '',
      'latency ms (p50)': ms,
      'added ms': direct ? ms - direct.ms : '',
    });
  }
  printTable(`XNAT: ${BULK / 2 ** 20} MiB download, ${CONCURRENT} concurrent HTTP requests, ${LATENCY_SAMPLES} sequential requests (loopback)`, rows);
  writeResults('xnat', rows, { bulkBytes: BULK, concurrent: CONCURRENT, latencySamples: LATENCY_SAMPLES, quick });
  svc.close();
}

try {
  await main();
} finally {
  await Promise.all(
    children.map(async (c) => {
      if (c.exitCode !== null || c.signalCode !== null) return;
      const exited = new Promise((r) => c.once('exit', r));
      c.kill('SIGTERM');
      // ssh may wait on a forwarded connection still open (a kept-alive one): then SIGKILL.
      const hard = setTimeout(() => c.kill('SIGKILL'), 2000);
      await exited;
      clearTimeout(hard);
    }),
  );
  rmSync(dir, { recursive: true, force: true });
}
