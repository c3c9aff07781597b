/**
 * The live status page that metricsHttp() serves at /status: one static HTML
 * document with a small script, no framework and nothing fetched from
 * elsewhere. It reads status.json (a relative URL, so a path prefix works)
 * once with `?history` to fill its charts, then once per sample interval, and
 * draws online count, messages/s and p50/p99 latency of the last ten minutes
 * as SVG polylines, with one table row per worker. Group figures: online,
 * messages and calls are summed over workers; p50 is the calls-weighted mean
 * of the workers' p50, p99 the largest worker p99 (an upper bound of the
 * group's). Text from the server (worker labels) goes in with textContent only.
 */

/** The page, as served. */
export const STATUS_PAGE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>zserver status</title>
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #1d2330; background: #f7f8fa; }
  h1 { font-size: 1.3em; margin: 0 0 .8em; }
  .cards { display: flex; flex-wrap: wrap; gap: .8em; margin-bottom: 1em; }
  .card { background: #fff; border: 1px solid #dde1e8; border-radius: 6px; padding: .6em 1em; min-width: 8em; }
  .card b { display: block; font-size: 1.6em; font-variant-numeric: tabular-nums; }
  .charts { display: flex; flex-wrap: wrap; gap: .8em; }
  figure { margin: 0; background: #fff; border: 1px solid #dde1e8; border-radius: 6px; padding: .5em; }
  figcaption { font-size: .9em; color: #555; }
  svg { display: block; width: 420px; height: 140px; }
  polyline { fill: none; stroke-width: 1.5; }
  .s0 { stroke: #2f6fde; } .s1 { stroke: #d9482b; }
  table { border-collapse: collapse; margin-top: 1em; background: #fff; }
  th, td { border: 1px solid #dde1e8; padding: .25em .7em; text-align: right; font-variant-numeric: tabular-nums; }
  tr.absent td { color: #b00; }
  #error { color: #b00; }
</style>
</head>
<body>
<h1>zserver status</h1>
<div class="cards">
  <div class="card">online<b id="online">–</b></div>
  <div class="card">messages/s<b id="messages">–</b></div>
  <div class="card">calls/s<b id="calls">–</b></div>
  <div class="card">p50 ms<b id="p50">–</b></div>
  <div class="card">p99 ms<b id="p99">–</b></div>
  <div class="card">workers up<b id="workers">–</b></div>
</div>
<div class="charts">
  <figure><figcaption>online</figcaption><svg id="chart-online" viewBox="0 0 420 140" preserveAspectRatio="none"></svg></figure>
  <figure><figcaption>messages/s (in + out)</figcaption><svg id="chart-messages" viewBox="0 0 420 140" preserveAspectRatio="none"></svg></figure>
  <figure><figcaption>latency ms: <span class="s0" style="color:#2f6fde">p50</span>, <span style="color:#d9482b">p99</span></figcaption><svg id="chart-latency" viewBox="0 0 420 140" preserveAspectRatio="none"></svg></figure>
</div>
<table>
  <thead><tr><th>worker</th><th>pid</th><th>online</th><th>messages/s</th><th>calls/s</th><th>p50 ms</th><th>p99 ms</th><th>RSS MiB</th><th>uptime s</th></tr></thead>
  <tbody id="rows"></tbody>
</table>
<p id="error"></p>
<p><small>Samples: <span id="samples">0</span>, updated <span id="updated">never</span>. Metrics for Prometheus: <a href="metrics">metrics</a>.</small></p>
<script>
(() => {
  const KEEP = 600;
  const points = []; // { t, online, messages, calls, p50, p99 }
  let lastT = 0;
  let interval = 1000;
  const $ = (id) => document.getElementById(id);
  const fmt = (v, digits) => (v === null || v === undefined || !isFinite(v) ? '–' : Number(v).toFixed(digits));

  // One group point from one sample per worker (workers not answering count nothing).
  function combine(samples) {
    let online = 0, messages = 0, calls = 0, weighted = 0, weight = 0, p99 = null, t = 0;
    for (const s of samples) {
      online += s.online;
      messages += s.messagesInPerSec + s.messagesOutPerSec;
      calls += s.callsPerSec;
      if (s.p50Ms !== null) { weighted += s.p50Ms * Math.max(s.callsPerSec, 1e-9); weight += Math.max(s.callsPerSec, 1e-9); }
      if (s.p99Ms !== null) p99 = p99 === null ? s.p99Ms : Math.max(p99, s.p99Ms);
      t = Math.max(t, s.t);
    }
    return { t, online, messages, calls, p50: weight > 0 ? weighted / weight : null, p99 };
  }

  function push(p) {
    points.push(p);
    if (points.length > KEEP) points.splice(0, points.length - KEEP);
  }

  function draw(svg, series) {
    const w = 420, h = 140, pad = 4;
    let max = 0;
    for (const s of series) for (const v of s) if (v !== null && v > max) max = v;
    if (max <= 0) max = 1;
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    series.forEach((s, k) => {
      const n = s.length;
      const pts = [];
      s.forEach((v, i) => {
        if (v === null) return;
        const x = n <= 1 ? w - pad : pad + ((w - 2 * pad) * i) / (n - 1);
        const y = h - pad - ((h - 2 * pad) * v) / max;
        pts.push(x.toFixed(1) + ',' + y.toFixed(1));
      });
      const line = document.createElementNS('http://www.w3.org/2000/svg', 'polyline');
      line.setAttribute('class', 's' + k);
      line.setAttribute('points', pts.join(' '));
      svg.appendChild(line);
    });
    svg.dataset.max = String(max);
  }

  function cell(tr, text) {
    const td = document.createElement('td');
    td.textContent = text;
    tr.appendChild(td);
  }

  function render(workers) {
    const up = workers.filter((w) => !w.absent);
    const last = points[points.length - 1];
    $('online').textContent = String(up.reduce((a, w) => a + w.stats.online, 0));
    $('messages').textContent = last ? fmt(last.messages, 0) : '–';
    $('calls').textContent = last ? fmt(last.calls, 0) : '–';
    $('p50').textContent = last ? fmt(last.p50, 3) : '–';
    $('p99').textContent = last ? fmt(last.p99, 3) : '–';
    $('workers').textContent = up.length + ' / ' + workers.length;
    $('samples').textContent = String(points.length);
    $('updated').textContent = new Date().toLocaleTimeString();
    draw($('chart-online'), [points.map((p) => p.online)]);
    draw($('chart-messages'), [points.map((p) => p.messages)]);
    draw($('chart-latency'), [points.map((p) => p.p50), points.map((p) => p.p99)]);
    const body = $('rows');
    while (body.firstChild) body.removeChild(body.firstChild);
    for (const w of workers) {
      const tr = document.createElement('tr');
      tr.dataset.worker = w.worker;
      if (w.absent) {
        tr.className = 'absent';
        cell(tr, w.worker);
        const td = document.createElement('td');
        td.colSpan = 8;
        td.textContent = 'absent: ' + w.reason;
        tr.appendChild(td);
      } else {
        const r = w.recent;
        cell(tr, w.worker);
        cell(tr, String(w.pid));
        cell(tr, String(w.stats.online));
        cell(tr, r ? fmt(r.messagesInPerSec + r.messagesOutPerSec, 0) : '–');
        cell(tr, r ? fmt(r.callsPerSec, 0) : '–');
        cell(tr, r ? fmt(r.p50Ms, 3) : '–');
        cell(tr, r ? fmt(r.p99Ms, 3) : '–');
        cell(tr, fmt(w.memory.rss / 1048576, 1));
        cell(tr, fmt(w.uptimeSeconds, 0));
      }
      body.appendChild(tr);
    }
  }

  async function load(withHistory) {
    const res = await fetch(withHistory ? 'status.json?history' : 'status.json', { cache: 'no-store' });
    // A message, not an Error: the page's own script, shown in the error line by loop() below.
    if (!res.ok) throw 'status.json: HTTP ' + res.status;
    const data = await res.json();
    if (typeof data.intervalMs === 'number' && data.intervalMs > 0) interval = data.intervalMs;
    const up = data.workers.filter((w) => !w.absent);
    if (withHistory) {
      // Align the workers' rings by age: the i-th newest sample of each makes one point.
      const rings = up.map((w) => w.history || []);
      const n = Math.max(0, ...rings.map((r) => r.length));
      for (let i = n - 1; i >= 0; i--) {
        const row = rings.map((r) => r[r.length - 1 - i]).filter(Boolean);
        if (row.length > 0) push(combine(row));
      }
      if (points.length > 0) lastT = points[points.length - 1].t;
    } else {
      const recent = up.map((w) => w.recent).filter(Boolean);
      const p = recent.length > 0 ? combine(recent) : null;
      if (p !== null && p.t > lastT) {
        push(p);
        lastT = p.t;
      }
    }
    render(data.workers);
  }

  async function loop(first) {
    try {
      await load(first);
      $('error').textContent = '';
    } catch (err) {
      $('error').textContent = String(err && err.message ? err.message : err);
    }
    setTimeout(() => loop(false), interval);
  }
  loop(true);
})();
</script>
</body>
</html>
`;
