/**
 * lib/metrics in one process: the Prometheus text (checked line by line
 * against the 0.0.4 format rules that scrapers enforce), the sample ring's
 * rates and quantiles, and metricsHttp's routes, composition and bounds,
 * and over a real native WebSocket port.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Client } from '../../lib/framework/client.js';
import { Server } from '../../lib/framework/server.js';
import { LATENCY_BUCKETS_MS } from '../../lib/framework/stats.js';
import { histogramQuantile, MetricsHistory } from '../../lib/metrics/history.js';
import { metricsHttp } from '../../lib/metrics/http.js';
import { escapeLabelValue, PROMETHEUS_CONTENT_TYPE, renderPrometheus } from '../../lib/metrics/prometheus.js';
import { takeSnapshot, type WorkerSnapshot } from '../../lib/metrics/snapshot.js';
import { NativeWsTransport } from '../../lib/transport/native-ws.js';
import { MemoryTransport } from '../../lib/transport/memory.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Series {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Parses exposition text, failing on anything the 0.0.4 text format forbids. */
function parseExposition(text: string): { series: Series[]; types: Map<string, string> } {
  assert.ok(text.endsWith('\n'), 'ends with a newline');
  const types = new Map<string, string>();
  const helped = new Set<string>();
  const series: Series[] = [];
  const closed = new Set<string>(); // families whose lines ended: they must not come back
  let current = '';
  const family = (name: string) => {
    const t = [...types.keys()].find((f) => name === f || (types.get(f) === 'histogram' && [`${f}_bucket`, `${f}_sum`, `${f}_count`].includes(name)));
    assert.ok(t !== undefined, `sample ${name} without a TYPE line before it`);
    return t;
  };
  for (const line of text.slice(0, -1).split('\n')) {
    let m = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line);
    if (m !== null) {
      const [, kind, name, rest] = m as unknown as [string, string, string, string];
      if (kind === 'TYPE') {
        assert.ok(!types.has(name), `TYPE of ${name} given twice`);
        assert.ok(['counter', 'gauge', 'histogram'].includes(rest), `type ${rest}`);
        types.set(name, rest);
      } else {
        assert.ok(!helped.has(name), `HELP of ${name} given twice`);
        helped.add(name);
      }
      if (current !== name) closed.add(current);
      current = name;
      continue;
    }
    m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(m !== null, `bad sample line: ${JSON.stringify(line)}`);
    const [, name, , body, value] = m as unknown as [string, string, string, string | undefined, string];
    const f = family(name);
    assert.equal(f, current, `${name} is not under its family's TYPE (families must not interleave)`);
    assert.ok(!closed.has(f));
    const labels: Record<string, string> = {};
    if (body !== undefined && body !== '') {
      const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(,|$)/y;
      let at = 0;
      while (at < body.length) {
        re.lastIndex = at;
        const l = re.exec(body);
        assert.ok(l !== null, `bad labels: ${body}`);
        assert.ok(!(l[1]! in labels), `label ${l[1]} twice`);
        labels[l[1]!] = l[2]!.replace(/\\(.)/g, (_s, c: string) => (c === 'n' ? '\n' : c));
        at = re.lastIndex;
      }
    }
    assert.ok(value === '+Inf' || value === 'NaN' || Number.isFinite(Number(value)), `value ${value}`);
    if (types.get(f) === 'counter') assert.ok(name.endsWith('_total'), `counter ${name} ends in _total`);
    series.push({ name, labels, value: Number(value) });
  }
  return { series, types };
}

function get(series: Series[], name: string, labels: Record<string, string>): number | undefined {
  return series.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;
}

async function servedPair(options: ConstructorParameters<typeof Server>[0] = {}) {
  const server = new Server({ quiet: true, ...options });
  const ep = await server.listen(new MemoryTransport(), { host: 'mem', port: 0 });
  const client = new Client({ transport: new MemoryTransport(), host: 'mem', port: ep.address.port, quiet: true });
  await client.connect();
  return { server, client, done: async () => (await client.close(), await server.close()) };
}

describe('Prometheus text', () => {
  it('renders every family once, counters _total, histograms with le, escaped labels, every worker', async () => {
    const { server, client, done } = await servedPair();
    const weird = 'we"ird\\name\nx';
    server.console(weird, (t) => t);
    server.console('fail', () => {
      throw Object.assign(new Error('no'), { code: 'APP_NO' });
    });
    try {
      for (let i = 0; i < 4; i++) await client.callConsole(weird, 'x');
      await assert.rejects(client.callConsole('fail', 'x'));
      const a = takeSnapshot(server, { worker: '0' });
      const b = { ...takeSnapshot(server, { worker: '1' }), pid: 4242 };
      const rows: WorkerSnapshot[] = [a, b, { worker: '2', absent: true, reason: 'test' }];
      const text = renderPrometheus(rows);
      const { series, types } = parseExposition(text);
      assert.equal(types.get('zserver_command_duration_seconds'), 'histogram');
      assert.equal(types.get('zserver_online'), 'gauge');
      for (const w of [{ worker: '0', pid: String(process.pid) }, { worker: '1', pid: '4242' }]) {
        assert.equal(get(series, 'zserver_up', w), 1);
        assert.equal(get(series, 'zserver_online', w), 1);
        assert.equal(get(series, 'zserver_command_calls_total', { ...w, command: weird }), 4);
        assert.equal(get(series, 'zserver_command_errors_total', { ...w, command: 'fail', code: 'APP_NO' }), 1);
        assert.ok(get(series, 'zserver_received_bytes_total', w)! > 0);
        // Buckets rise with le and end at +Inf = _count = calls.
        const buckets = series.filter((s) => s.name === 'zserver_command_duration_seconds_bucket' && s.labels.worker === w.worker && s.labels.command === weird);
        assert.equal(buckets.length, LATENCY_BUCKETS_MS.length + 1);
        assert.equal(buckets.at(-1)!.labels.le, '+Inf');
        for (let i = 1; i < buckets.length; i++) {
          assert.ok(buckets[i]!.value >= buckets[i - 1]!.value);
          if (i < buckets.length - 1) assert.ok(Number(buckets[i]!.labels.le) > Number(buckets[i - 1]!.labels.le));
        }
        assert.equal(buckets.at(-1)!.value, 4);
        assert.equal(get(series, 'zserver_command_duration_seconds_count', { ...w, command: weird }), 4);
        assert.ok(get(series, 'zserver_command_duration_seconds_sum', { ...w, command: weird })! >= 0);
        assert.equal(get(series, 'zserver_limit_hits_total', { ...w, limit: 'requestRate' }), 0);
      }
      assert.equal(get(series, 'zserver_up', { worker: '2' }), 0);
      assert.equal(series.filter((s) => s.labels.worker === '2').length, 1);
      assert.equal(LATENCY_BUCKETS_MS[0], 0.016);
      assert.ok(text.includes('le="0.000016"'));
      assert.equal(escapeLabelValue('a"b\\c\nd'), 'a\\"b\\\\c\\nd');
    } finally {
      await done();
    }
  });

  it('closes by reason appear as labelled series', async () => {
    const { server, client, done } = await servedPair();
    try {
      await client.close();
      await sleep(20);
      const { series } = parseExposition(renderPrometheus([takeSnapshot(server, { worker: '0' })]));
      const closes = series.filter((s) => s.name === 'zserver_closes_total');
      assert.equal(closes.reduce((a, s) => a + s.value, 0), 1);
    } finally {
      await done();
    }
  });
});

describe('transport counters', () => {
  it('adds each listening transport once, with closes by reason (refused included)', async () => {
    const { server, client, done } = await servedPair();
    try {
      const real = takeSnapshot(server, { worker: '0' });
      assert.equal(real.transports.length, 1);
      assert.equal(real.transports[0]!.connections, 1);
      // Two endpoints on one transport count once; admission refusals come from the transport.
      const transport = { name: 'fake', stats: () => ({ connections: 9, framesIn: 0, framesOut: 0, bytesIn: 0, bytesOut: 0, closes: { refused: 7, 'slow-consumer': 1 } }) };
      const fake = { stats: () => server.stats(), endpoints: [{ transport, address: { port: 81 } }, { transport, address: { port: 82 } }] };
      const snap = takeSnapshot(fake, { worker: '0' });
      assert.equal(snap.transports.length, 1);
      const { series } = parseExposition(renderPrometheus([snap]));
      assert.equal(get(series, 'zserver_transport_closes_total', { transport: 'fake', port: '81', reason: 'refused' }), 7);
      assert.equal(get(series, 'zserver_transport_closes_total', { transport: 'fake', reason: 'slow-consumer' }), 1);
      assert.equal(get(series, 'zserver_transport_connections_total', { transport: 'fake' }), 9);
      await client.close();
    } finally {
      await done();
    }
  });
});

describe('MetricsHistory', () => {
  it('samples rates and p50/p99 over each interval, in a bounded ring', async () => {
    assert.throws(() => new MetricsHistory({ stats: () => ({}) as never }, { samples: 0 }), RangeError);
    assert.throws(() => new MetricsHistory({ stats: () => ({}) as never }, { intervalMs: 1 }), RangeError);
    const { server, client, done } = await servedPair();
    server.console('echo', (t) => t);
    server.console('slow', async (t) => (await sleep(5), t));
    const history = new MetricsHistory(server, { samples: 3, intervalMs: 1000 });
    try {
      assert.equal(history.sample(), undefined); // the baseline
      for (let i = 0; i < 10; i++) await client.callConsole('echo', 'x');
      await client.callConsole('slow', 'x');
      const s = history.sample()!;
      assert.equal(s.online, 1);
      assert.ok(s.callsPerSec > 0);
      assert.ok(s.messagesInPerSec > 0 && s.messagesOutPerSec > 0);
      assert.ok(s.p50Ms !== null && s.p99Ms !== null && s.p99Ms >= s.p50Ms);
      assert.ok(s.p99Ms >= 4, `the slow call is the p99: ${s.p99Ms}`);
      const idle = history.sample()!;
      assert.equal(idle.callsPerSec, 0);
      assert.equal(idle.p50Ms, null);
      history.sample();
      history.sample();
      assert.equal(history.samples().length, 3, 'the ring keeps 3');
      assert.equal(history.samples()[2], history.latest());
    } finally {
      history.stop();
      await done();
    }
  });

  it('reads quantiles from cumulative buckets', () => {
    const n = LATENCY_BUCKETS_MS.length;
    const empty = new Array<number>(n + 1).fill(0);
    assert.equal(histogramQuantile(empty, 0.5), null);
    // 100 calls all in the bucket (0.512 ms, 1.024 ms]: the median interpolates to its middle.
    const at = LATENCY_BUCKETS_MS.indexOf(1.024);
    const one = empty.map((_, i) => (i >= at ? 100 : 0));
    assert.ok(Math.abs(histogramQuantile(one, 0.5)! - 0.768) < 1e-9);
    assert.equal(histogramQuantile(one, 1), 1.024);
  });
});

describe('metricsHttp', () => {
  it('serves /metrics, /status.json and /status, passes the rest to next', async () => {
    const { server, client, done } = await servedPair();
    server.console('echo', (t) => t);
    const http = metricsHttp({ server, worker: '7', history: { intervalMs: 1000 }, next: (_m, url) => (url === '/app' ? { body: 'app' } : undefined) });
    try {
      await client.callConsole('echo', 'x');
      const m = http('GET', '/metrics');
      assert.ok(m !== undefined && !(m instanceof Promise));
      assert.equal(m.headers!['content-type'], PROMETHEUS_CONTENT_TYPE);
      const { series } = parseExposition(String(m.body));
      assert.equal(get(series, 'zserver_command_calls_total', { worker: '7', command: 'echo' }), 1);
      http.history!.sample();
      const j = http('GET', '/status.json?history') as { body: string };
      const status = JSON.parse(j.body) as { intervalMs: number; workers: { worker: string; history: unknown[]; recent: unknown }[] };
      assert.equal(status.intervalMs, 1000);
      assert.equal(status.workers[0]!.worker, '7');
      assert.ok(Array.isArray(status.workers[0]!.history));
      const page = http('GET', '/status') as { body: string; headers: Record<string, string> };
      assert.match(page.headers['content-type']!, /text\/html/);
      assert.match(page.body, /<svg id="chart-latency"/);
      assert.doesNotMatch(page.body, /<script[^>]+src=/, 'no script from elsewhere');
      assert.deepEqual(http('GET', '/app'), { body: 'app' });
      assert.equal(http('POST', '/metrics'), undefined);
      assert.equal(http('GET', '/nothing'), undefined);
      assert.equal(http.local('GET', '/metrics')!.headers!['content-type'], PROMETHEUS_CONTENT_TYPE);
    } finally {
      http.stop();
      await done();
    }
  });

  it('answers for the group when given gather; checks its options', async () => {
    const { server, done } = await servedPair();
    try {
      assert.throws(() => metricsHttp({ server: {} as never }), TypeError);
      assert.throws(() => metricsHttp({ server, prefix: 'admin' }), /prefix/);
      const gathered: WorkerSnapshot[] = [takeSnapshot(server, { worker: '0' }), { worker: '1', absent: true, reason: 'late' }];
      const http = metricsHttp({ server, history: false, prefix: '/admin', gather: async () => gathered });
      assert.equal(http('GET', '/metrics'), undefined);
      const answer = await http('GET', '/admin/metrics');
      assert.match(String(answer!.body), /zserver_up\{worker="1"\} 0/);
      const json = JSON.parse(String((await http('GET', '/admin/status.json'))!.body)) as { workers: WorkerSnapshot[] };
      assert.equal(json.workers.length, 2);
    } finally {
      await done();
    }
  });

  it('is the http handler of a native WebSocket port', async () => {
    const server = new Server({ quiet: true });
    server.console('echo', (t) => t);
    const http = metricsHttp({ server, history: false });
    const transport = new NativeWsTransport({ http });
    const ep = await server.listen(transport, { host: '127.0.0.1', port: 0 });
    try {
      const res = await fetch(`http://127.0.0.1:${ep.address.port}/metrics`);
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('content-type'), PROMETHEUS_CONTENT_TYPE);
      const { series } = parseExposition(await res.text());
      assert.equal(get(series, 'zserver_endpoint_online', { transport: transport.name, port: String(ep.address.port) }), 0);
      assert.equal((await fetch(`http://127.0.0.1:${ep.address.port}/zz`)).status, 404);
    } finally {
      await server.close();
    }
  });
});
