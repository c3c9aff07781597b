/**
 * Prometheus text exposition (format 0.0.4) of a list of process snapshots:
 * one scrape returns the series of every worker of a group, each labelled
 * with its `worker` and `pid`. Each family is written once (HELP, TYPE, then
 * its series for every process), as the format asks. Label values are escaped
 * (backslash, double quote, newline); command names and error codes are
 * application data and may hold anything.
 *
 * docs/metrics.md lists every series with its meaning.
 */
import { LATENCY_BUCKETS_MS, type CommandStatsSnapshot } from '../framework/stats.js';
import type { ServerStats } from '../framework/server.js';
import { isAbsent, type ProcessSnapshot, type WorkerSnapshot } from './snapshot.js';
import type { XnatServerStats } from '../xnat/server.js';

/** The Content-Type of the text format. */
export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

type Labels = Record<string, string>;

/** A label value as the format writes it between double quotes. */
export function escapeLabelValue(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

function escapeHelp(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

function labelText(labels: Labels): string {
  const parts = Object.entries(labels).map(([k, v]) => `${k}="${escapeLabelValue(v)}"`);
  return parts.length === 0 ? '' : `{${parts.join(',')}}`;
}

/** Seconds as the `le` label writes them: enough digits for 16 µs, no float noise. */
function leText(ms: number): string {
  return String(Number((ms / 1000).toPrecision(6)));
}

/** Accumulates families in order; each family's lines stay together. */
class Exposition {
  readonly #families = new Map<string, { help: string; type: string; lines: string[] }>();

  family(name: string, type: 'counter' | 'gauge' | 'histogram', help: string): string[] {
    let f = this.#families.get(name);
    if (f === undefined) {
      f = { help, type, lines: [] };
      this.#families.set(name, f);
    }
    return f.lines;
  }

  sample(name: string, type: 'counter' | 'gauge', help: string, labels: Labels, value: number): void {
    this.family(name, type, help).push(`${name}${labelText(labels)} ${formatValue(value)}`);
  }

  text(): string {
    let out = '';
    for (const [name, f] of this.#families) {
      out += `# HELP ${name} ${escapeHelp(f.help)}\n# TYPE ${name} ${f.type}\n`;
      for (const line of f.lines) out += `${line}\n`;
    }
    return out;
  }
}

/** The counters of ServerStats written as `zserver_<name>_total`, with their help text. */
const COUNTERS: [keyof ServerStats, string, string][] = [
  ['connections', 'zserver_connections_total', 'Peers connected since the server started.'],
  ['messagesIn', 'zserver_messages_received_total', 'Framework messages received.'],
  ['messagesOut', 'zserver_messages_sent_total', 'Framework messages sent.'],
  ['bytesIn', 'zserver_received_bytes_total', 'Payload bytes of the framework messages received.'],
  ['bytesOut', 'zserver_sent_bytes_total', 'Payload bytes of the framework messages sent.'],
  ['requestsFailed', 'zserver_outgoing_requests_failed_total', 'Requests this server sent to peers that failed (error, timeout, closed).'],
  ['timeouts', 'zserver_outgoing_request_timeouts_total', 'Requests this server sent to peers that timed out.'],
  ['protocolErrors', 'zserver_protocol_errors_total', 'Messages that broke the protocol (their peer was closed).'],
  ['requestsRefused', 'zserver_requests_refused_total', 'Requests of peers refused by a limit (ZS_LIMIT).'],
  ['requestsRateLimited', 'zserver_requests_rate_limited_total', 'Requests of peers refused by requestRate (ZS_RATE_LIMITED).'],
  ['logLinesSuppressed', 'zserver_log_lines_suppressed_total', 'Peer-caused log lines left out by the log rate limit.'],
];

function writeCommand(x: Exposition, base: Labels, command: string, c: CommandStatsSnapshot): void {
  const l = { ...base, command };
  x.sample('zserver_command_calls_total', 'counter', 'Requests handled, per command (every kind, direct ones too).', l, c.calls);
  x.family('zserver_command_errors_total', 'counter', 'Requests answered with an error, per command and error code.');
  for (const [code, n] of Object.entries(c.errorsByCode)) {
    x.sample('zserver_command_errors_total', 'counter', '', { ...l, code }, n);
  }
  x.sample('zserver_command_received_bytes_total', 'counter', 'Request bytes, per command.', l, c.bytesIn);
  x.sample('zserver_command_sent_bytes_total', 'counter', 'Reply bytes, per command.', l, c.bytesOut);
  const h = x.family('zserver_command_duration_seconds', 'histogram', 'Handler time, per command (log buckets, powers of two microseconds).');
  for (let i = 0; i < LATENCY_BUCKETS_MS.length; i++) {
    h.push(`zserver_command_duration_seconds_bucket${labelText({ ...l, le: leText(LATENCY_BUCKETS_MS[i]!) })} ${c.latencyBuckets[i] ?? 0}`);
  }
  const count = c.latencyBuckets[LATENCY_BUCKETS_MS.length] ?? 0;
  h.push(`zserver_command_duration_seconds_bucket${labelText({ ...l, le: '+Inf' })} ${count}`);
  h.push(`zserver_command_duration_seconds_sum${labelText(l)} ${formatValue(c.sumMs / 1000)}`);
  h.push(`zserver_command_duration_seconds_count${labelText(l)} ${count}`);
}

function writeXnat(x: Exposition, base: Labels, s: XnatServerStats): void {
  x.sample('zserver_xnat_agents', 'gauge', 'XNAT agents in service.', base, s.agents);
  x.sample('zserver_xnat_agents_refused_total', 'counter', 'XNAT agents refused (key, token, port or address).', base, s.refused);
  for (const p of s.ports) {
    const l = { ...base, port: String(p.port) };
    x.sample('zserver_xnat_port_agents', 'gauge', 'Agents serving an XNAT public port.', l, p.agents);
    x.sample('zserver_xnat_connections', 'gauge', 'Public connections open now, per XNAT public port.', l, p.connections);
    x.sample('zserver_xnat_connections_total', 'counter', 'Public connections carried to an agent, per port.', l, p.accepted);
    x.sample('zserver_xnat_connections_failed_total', 'counter', 'Public connections reset because no agent took them, per port.', l, p.failed);
    x.sample('zserver_xnat_received_bytes_total', 'counter', 'Bytes from public clients to agents, per port.', l, p.bytesIn);
    x.sample('zserver_xnat_sent_bytes_total', 'counter', 'Bytes from agents to public clients, per port.', l, p.bytesOut);
  }
}

function writeProcess(x: Exposition, s: ProcessSnapshot): void {
  const base: Labels = { worker: s.worker, pid: String(s.pid) };
  const st = s.stats;
  x.sample('zserver_up', 'gauge', '1 for a process that answered this scrape, 0 for a worker that did not.', base, 1);
  x.sample('zserver_online', 'gauge', 'Peers connected now.', base, st.online);
  for (const e of st.endpoints) {
    x.sample('zserver_endpoint_online', 'gauge', 'Peers connected now, per listening endpoint.', { ...base, transport: e.transport, port: String(e.port) }, e.online);
  }
  for (const [key, name, help] of COUNTERS) x.sample(name, 'counter', help, base, st[key] as number);
  x.family('zserver_closes_total', 'counter', 'Connections closed, by close reason.');
  for (const [reason, n] of Object.entries(st.closes)) x.sample('zserver_closes_total', 'counter', '', { ...base, reason }, n ?? 0);
  for (const [limit, n] of Object.entries(st.limitsHit)) {
    x.sample('zserver_limit_hits_total', 'counter', 'Times a limit of docs/limits.md was reached, per limit.', { ...base, limit }, n);
  }
  for (const t of s.transports ?? []) {
    const l = { ...base, transport: t.transport, port: String(t.port) };
    x.sample('zserver_transport_connections_total', 'counter', 'Connections a listening transport opened.', l, t.connections);
    x.family('zserver_transport_closes_total', 'counter', "Connections a listening transport closed, by reason; 'refused' counts those admission turned away.");
    for (const [reason, n] of Object.entries(t.closes)) x.sample('zserver_transport_closes_total', 'counter', '', { ...l, reason }, n ?? 0);
  }
  for (const [command, c] of Object.entries(st.commands)) writeCommand(x, base, command, c);
  if (s.xnat !== undefined) writeXnat(x, base, s.xnat);
  x.sample('zserver_process_resident_memory_bytes', 'gauge', 'Resident set size of the process.', base, s.memory.rss);
  x.sample('zserver_process_heap_used_bytes', 'gauge', 'V8 heap in use.', base, s.memory.heapUsed);
  x.sample('zserver_process_external_memory_bytes', 'gauge', 'Memory of Buffers and other objects outside the V8 heap.', base, s.memory.external);
  x.sample('zserver_process_uptime_seconds', 'gauge', 'Seconds since the process started.', base, s.uptimeSeconds);
}

/** The Prometheus text of `snapshots` (one per process of a group; absent workers as zserver_up 0). */
export function renderPrometheus(snapshots: readonly WorkerSnapshot[]): string {
  const x = new Exposition();
  for (const s of snapshots) {
    if (isAbsent(s)) x.sample('zserver_up', 'gauge', '1 for a process that answered this scrape, 0 for a worker that did not.', { worker: s.worker }, 0);
    else writeProcess(x, s);
  }
  return x.text();
}
