/**
 * `zserver stress`: opens many connections to an echo server group (started
 * here, or one already running), lets each exchange messages, closes them,
 * and prints connect time, messages/s, round-trip percentiles, errors by kind
 * and the servers' memory (lib/stress/runner.ts does the work). With
 * `--mode rpc` the connections call the command framework's stress app
 * (lib/stress/app.ts) instead (console or stream calls, optionally in rooms),
 * and the report adds presence, broadcast (and room broadcast) time and memory
 * per connection of each server process.
 */
import { parseArgs } from 'node:util';
import { runStress, type StressOptions, type StressReport } from '../stress/runner.js';
import type { StressCall, StressMode, TransportName } from '../stress/protocol.js';

const USAGE = `Usage: zserver stress [options]
  --connections N     connections in all (default 1000)
  --mode echo|rpc     frame echo (default), or calls to the framework's stress app (lib/stress/app.ts)
  --messages M        messages (rpc: stress.ping calls) per connection, one after another (default 10; rpc 1)
  --call console|stream  rpc: each call is stress.ping (console, default) or stress.add (stream: two int32
                      in, their sum out, checked; a wrong one counts as error wrong-answer)
  --rooms K           rpc: connection g joins room r<g mod K> (default 0: no rooms); then one room
                      broadcast to r0 is timed (Node client processes)
  --secure            rpc: through the secure channel (Node client processes)
  --pin FINGERPRINT   rpc --secure --target: the server fingerprint to pin (default: accept any)
  --size S            payload bytes per message (default 64)
  --clients C         client processes, one loopback source address each (default: 15,000 connections each)
  --server-procs P    echo server processes to start (default: 15,000 connections each)
  --transport T       node-net | native (default node-net)
  --target H:P[,P]    use a server already running instead of starting one
  --server-pids P[,P] with --target: report the RSS of these server processes
  --client-program F  run this compiled client (build/stress-client) instead of Node client processes
  --timeout S         give up after S seconds (default 120 + 0.2 ms per connection, 3 ms with --secure)
  --json              print the report as JSON
  --no-progress       no progress bar on stderr
  --help, -h          print this text
`;

/** Parses the command line into StressOptions; throws RangeError on a bad value. */
export function parseStressArgs(args: string[]): StressOptions & { json: boolean; help?: boolean } {
  const { values } = parseArgs({
    args,
    options: {
      connections: { type: 'string' },
      messages: { type: 'string' },
      size: { type: 'string' },
      clients: { type: 'string' },
      'server-procs': { type: 'string' },
      transport: { type: 'string' },
      mode: { type: 'string' },
      secure: { type: 'boolean', default: false },
      call: { type: 'string' },
      rooms: { type: 'string' },
      pin: { type: 'string' },
      timeout: { type: 'string' },
      target: { type: 'string' },
      'client-program': { type: 'string' },
      'server-pids': { type: 'string' },
      json: { type: 'boolean', default: false },
      'no-progress': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  const num = (v: string | undefined, name: string) => {
    if (v === undefined) return undefined;
    const n = Number(v.replace(/[_,]/g, ''));
    if (!Number.isInteger(n)) throw new RangeError(`--${name} must be an integer, got '${v}'`);
    return n;
  };
  const options: StressOptions & { json: boolean; help?: boolean } = { json: values.json === true };
  if (values.help === true) options.help = true;
  const set = (k: 'connections' | 'messages' | 'size' | 'clients' | 'serverProcs', v: number | undefined) => {
    if (v !== undefined) options[k] = v;
  };
  set('connections', num(values.connections, 'connections'));
  set('messages', num(values.messages, 'messages'));
  set('size', num(values.size, 'size'));
  set('clients', num(values.clients, 'clients'));
  set('serverProcs', num(values['server-procs'], 'server-procs'));
  if (values.transport !== undefined) options.transport = values.transport as TransportName;
  if (values.mode !== undefined) {
    if (values.mode !== 'echo' && values.mode !== 'rpc') throw new RangeError(`--mode must be echo or rpc, got '${values.mode}'`);
    options.mode = values.mode as StressMode;
    if (options.mode === 'rpc' && options.messages === undefined) options.messages = 1;
  }
  if (values.secure === true) {
    if (options.mode !== 'rpc') throw new RangeError('--secure needs --mode rpc');
    options.secure = true;
  }
  if (values.call !== undefined) {
    if (values.call !== 'console' && values.call !== 'stream') throw new RangeError(`--call must be console or stream, got '${values.call}'`);
    if (options.mode !== 'rpc') throw new RangeError('--call needs --mode rpc');
    options.call = values.call as StressCall;
  }
  const rooms = num(values.rooms, 'rooms');
  if (rooms !== undefined) {
    if (options.mode !== 'rpc') throw new RangeError('--rooms needs --mode rpc');
    if (rooms < 0) throw new RangeError(`--rooms must be 0 or more, got '${values.rooms!}'`);
    options.rooms = rooms;
  }
  if (values.pin !== undefined) options.pin = values.pin;
  const timeout = num(values.timeout, 'timeout');
  if (timeout !== undefined) options.timeout = timeout * 1000;
  if (values.target !== undefined) {
    const m = /^(.+):([\d,]+)$/.exec(values.target);
    if (!m) throw new RangeError(`--target must look like 127.0.0.1:9000 or 127.0.0.1:9000,9001, got '${values.target}'`);
    options.target = { host: m[1]!, ports: m[2]!.split(',').map(Number) };
  }
  if (values['server-pids'] !== undefined) {
    const pids = values['server-pids'].split(',').map(Number);
    if (!pids.every((p) => Number.isInteger(p) && p > 0)) throw new RangeError(`--server-pids must be process ids, got '${values['server-pids']}'`);
    options.serverPids = pids;
  }
  if (values['client-program'] !== undefined) options.clientProgram = values['client-program'];
  options.progress = values['no-progress'] !== true;
  return options;
}

const kb = (bytes: number) => `${(bytes / 1024).toFixed(1)} KiB`;
const mb = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;

/** The report as aligned text lines. */
export function formatReport(r: StressReport): string {
  const rpc = r.mode === 'rpc';
  const lines: [string, string][] = [
    ['connections', `${r.connected.toLocaleString('en-US')} of ${r.connections.toLocaleString('en-US')} (${r.clients} client processes, ${r.servers || 'external'} server processes, ${r.transport}${rpc ? `, rpc${r.call === 'stream' ? ' stream calls' : ''}${r.secure ? ', secure channel' : ''}${r.rooms ? `, ${r.rooms} rooms` : ''}` : ''})`],
    ['connect time', `${(r.connectMs / 1000).toFixed(2)} s`],
    ['connect CPU', `servers ${Math.round(r.connectCpu.serverMs)} ms (${r.connectCpu.serverUsPerConnection.toFixed(1)} µs/conn), clients ${Math.round(r.connectCpu.clientMs)} ms (${r.connectCpu.clientUsPerConnection.toFixed(1)} µs/conn)`],
    [rpc ? 'calls' : 'messages', `${r.messages.toLocaleString('en-US')} (${r.messagesPerConnection} per connection) in ${(r.exchangeMs / 1000).toFixed(2)} s`],
    [rpc ? 'calls/s' : 'messages/s', Math.round(r.messagesPerSecond).toLocaleString('en-US')],
    ['exchange CPU', `servers ${Math.round(r.exchangeCpu.serverMs)} ms, clients ${Math.round(r.exchangeCpu.clientMs)} ms (${(((r.exchangeCpu.serverMs + r.exchangeCpu.clientMs) * 1000) / Math.max(1, r.messages)).toFixed(1)} µs/message in all)`],
    [rpc ? 'call latency' : 'round trip', `p50 ${(r.p50us / 1000).toFixed(2)} ms, p99 ${(r.p99us / 1000).toFixed(2)} ms`],
    ['errors', Object.keys(r.errors).length === 0 ? 'none' : Object.entries(r.errors).map(([k, v]) => `${k}: ${v}`).join(', ')],
  ];
  if (r.rpc) {
    const x = r.rpc;
    lines.push(
      ['presence', x.presence < 0 ? 'the call failed' : `${x.presence.toLocaleString('en-US')} online, as the server reports it`],
      ['broadcast', x.broadcastSent < 0 ? 'the call failed' : `sent to ${x.broadcastSent.toLocaleString('en-US')}; reached ${x.ticked === x.tickOf ? 'all ' : ''}${x.ticked.toLocaleString('en-US')}${x.ticked === x.tickOf ? '' : ` of ${x.tickOf.toLocaleString('en-US')}`} in ${x.broadcastMs.toFixed(1)} ms (the call answered in ${x.broadcastAnswerMs.toFixed(1)} ms)`],
    );
    const rc = x.roomcast;
    if (rc) {
      lines.push([
        'room broadcast',
        rc.sent < 0
          ? 'the call failed'
          : `${rc.ticked === rc.tickOf ? `reached all ${rc.ticked.toLocaleString('en-US')} members of r0` : `reached ${rc.ticked.toLocaleString('en-US')} of ${rc.tickOf.toLocaleString('en-US')} members of r0`} in ${rc.ms.toFixed(1)} ms (the server counts ${rc.sent.toLocaleString('en-US')}; the call answered in ${rc.answerMs.toFixed(1)} ms; ${rc.outside === 0 ? 'none outside r0' : `${rc.outside.toLocaleString('en-US')} outside r0`})`,
      ]);
    }
  }
  if (r.perServer) {
    const p = r.perServer;
    const each = p.servers.map((s, i) => `${s.pid}: ${Number.isNaN(p.perProcess[i]) ? '-' : Math.round(p.perProcess[i]!)} B × ${s.connections.toLocaleString('en-US')}`);
    lines.push(
      ['mem per conn', `${Math.round(p.bytesPerConnection).toLocaleString('en-US')} bytes (each server's RSS growth, listening to all connected, over its connections; ${mb(p.servers.reduce((a, s) => a + s.connectedRss, 0))} in all)`],
      ['per server', each.length <= 8 ? each.join(', ') : `${each.slice(0, 8).join(', ')}, … (${each.length} in all)`],
    );
  }
  if (r.serverCpuUsPerConnection !== undefined) lines.push(['server CPU', `${r.serverCpuUsPerConnection.toFixed(1)} µs per connection (connect and calls)`]);
  if (r.memory && !rpc) {
    const m = r.memory;
    lines.push(
      ['server RSS', `before ${mb(m.before.rss)}, connected+idle ${mb(m.during.rss)}, after exchange ${mb(m.afterExchange.rss)}, after close ${mb(m.after.rss)}`],
      ['per idle conn', `${kb(m.bytesPerIdleConnection)} (${Math.round(m.bytesPerIdleConnection)} bytes, RSS growth / connections)`],
    );
  }
  const width = Math.max(...lines.map(([k]) => k.length));
  return lines.map(([k, v]) => `  ${k.padEnd(width)}  ${v}`).join('\n');
}

export async function runStressCommand(args: string[]): Promise<number> {
  let options: ReturnType<typeof parseStressArgs>;
  try {
    options = parseStressArgs(args);
  } catch (err) {
    process.stderr.write(`zserver stress: ${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  if (options.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const report = await runStress(options);
  process.stdout.write(options.json ? `${JSON.stringify(report, null, 2)}\n` : `\nzserver stress\n${formatReport(report)}\n`);
  return Object.keys(report.errors).length === 0 ? 0 : 1;
}
