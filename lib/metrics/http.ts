/**
 * metricsHttp(): the `http` handler of the WebSocket server transports
 * (NativeWsTransport, WsServerTransport, UwsTransport) that serves a
 * Server's metrics on its web port:
 *
 *   GET /metrics       Prometheus text (format 0.0.4) of this process, or of the group
 *   GET /status.json   the same rows as JSON (`?history` adds each process's sample ring)
 *   GET /status        the live status page (status-page.ts)
 *
 * Every other request goes to `next` (webFiles(), an application's own
 * handler), so it composes with an existing handler. With a `gather`
 * function (joinMetricsGroup(...).gather) a scrape answers for every worker
 * of the group and the answer is a promise, which NativeWsTransport's handler
 * accepts; without one it answers synchronously, as WsServerTransport and
 * UwsTransport need.
 */
import { PROMETHEUS_CONTENT_TYPE, renderPrometheus } from './prometheus.js';
import { MetricsHistory, type MetricsHistoryOptions, type StatsSource } from './history.js';
import { takeSnapshot, type ProcessSnapshot, type WorkerSnapshot } from './snapshot.js';
import { STATUS_PAGE_HTML } from './status-page.js';

/** An answer of an `http` handler (the shape every WebSocket server transport takes). */
export interface MetricsHttpAnswer {
  status?: string;
  headers?: Record<string, string>;
  body: string | Uint8Array;
}

/**
 * An `http` handler to compose with (webFiles(), an application's): NativeWsTransport's
 * (method, url, request), or the synchronous (method, url) of the other WebSocket transports.
 */
export interface MetricsHttpHandler {
  (method: string, url: string, request?: never): MetricsHttpAnswer | undefined | Promise<MetricsHttpAnswer | undefined>;
}

/** Options of metricsHttp(). */
export interface MetricsHttpOptions {
  /** The Server whose metrics this process reports. */
  server: StatsSource;
  /** This process's worker label (default: ZS_WORKER, else '0'). */
  worker?: string;
  /**
   * The sample ring behind `recent` and the status page's charts: options for the one made and
   * started here (default one sample a second, 600 kept), an existing MetricsHistory, or false for none.
   */
  history?: MetricsHistoryOptions | MetricsHistory | false;
  /** The group's rows (joinMetricsGroup(...).gather); without it, this process alone. */
  gather?: (history: boolean) => Promise<WorkerSnapshot[]>;
  /** Handles every other request (e.g. webFiles()); without it they get undefined (404). */
  next?: MetricsHttpHandler;
  /** Path prefix of the three URLs (default ''): '/admin' serves /admin/metrics and so on. */
  prefix?: string;
}

/**
 * metricsHttp()'s handler (give it to NativeWsTransport's `http` option), with the parts a
 * process also wants to reach.
 */
export interface MetricsHttp {
  (method: string, url: string, request?: unknown): MetricsHttpAnswer | undefined | Promise<MetricsHttpAnswer | undefined>;
  /**
   * The synchronous handler for WsServerTransport and UwsTransport (their `http` option does not
   * wait): the three URLs of this process alone (no gather), others to `next` when it answers at once.
   */
  readonly local: (method: string, url: string) => MetricsHttpAnswer | undefined;
  /** The sample ring (undefined with history: false). */
  readonly history: MetricsHistory | undefined;
  /** This process's snapshot, as /status.json has it. */
  snapshot(withHistory?: boolean): ProcessSnapshot;
  /** Stops the sample timer made here. */
  stop(): void;
}

const NO_STORE = { 'cache-control': 'no-store' };

function splitUrl(url: string): { path: string; query: string } {
  const q = url.indexOf('?');
  return q < 0 ? { path: url, query: '' } : { path: url.slice(0, q), query: url.slice(q + 1) };
}

type Answer = MetricsHttpAnswer | undefined | Promise<MetricsHttpAnswer | undefined>;

/** Makes the handler; see the file comment. */
export function metricsHttp(options: MetricsHttpOptions): MetricsHttp {
  if (typeof options?.server?.stats !== 'function') throw new TypeError('metricsHttp: options.server must be a Server (something with stats())');
  if (options.next !== undefined && typeof options.next !== 'function') throw new TypeError('metricsHttp: options.next must be an http handler function');
  if (options.gather !== undefined && typeof options.gather !== 'function') throw new TypeError('metricsHttp: options.gather must be a function (history) => Promise<rows>');
  const prefix = options.prefix ?? '';
  if (prefix !== '' && (!prefix.startsWith('/') || prefix.endsWith('/'))) throw new TypeError(`metricsHttp: prefix must start with '/' and not end with one, got '${prefix}'`);
  const server = options.server;
  const made = options.history !== false && !(options.history instanceof MetricsHistory);
  const history =
    options.history === false ? undefined : options.history instanceof MetricsHistory ? options.history : new MetricsHistory(server, options.history).start();
  const snapshot = (withHistory = false) => takeSnapshot(server, { worker: options.worker, history, withHistory });
  const next = options.next as ((method: string, url: string, request?: unknown) => Answer) | undefined;

  const metrics = (rows: WorkerSnapshot[]): MetricsHttpAnswer => ({
    headers: { 'content-type': PROMETHEUS_CONTENT_TYPE, ...NO_STORE },
    body: renderPrometheus(rows),
  });
  const status = (rows: WorkerSnapshot[]): MetricsHttpAnswer => ({
    headers: { 'content-type': 'application/json', ...NO_STORE },
    body: JSON.stringify({ at: Date.now(), intervalMs: history?.intervalMs ?? null, workers: rows }),
  });
  const page: MetricsHttpAnswer = { headers: { 'content-type': 'text/html; charset=utf-8', ...NO_STORE }, body: STATUS_PAGE_HTML };

  /** Which of the three URLs `method url` is, if any. */
  const route = (method: string, url: string): { what: 'metrics' | 'status.json' | 'status'; withHistory: boolean } | undefined => {
    if (method !== 'GET' && method !== 'HEAD') return undefined;
    const { path, query } = splitUrl(url);
    if (path === `${prefix}/metrics`) return { what: 'metrics', withHistory: false };
    if (path === `${prefix}/status.json`) return { what: 'status.json', withHistory: new URLSearchParams(query).has('history') };
    if (path === `${prefix}/status` || path === `${prefix}/status.html`) return { what: 'status', withHistory: false };
    return undefined;
  };

  const local = (method: string, url: string): MetricsHttpAnswer | undefined => {
    const r = route(method, url);
    if (r === undefined) {
      const answer = next?.(method, url);
      return answer instanceof Promise ? undefined : answer;
    }
    if (r.what === 'status') return page;
    const rows = [snapshot(r.withHistory)];
    return r.what === 'metrics' ? metrics(rows) : status(rows);
  };

  const handler = (method: string, url: string, request?: unknown): Answer => {
    const r = route(method, url);
    if (r === undefined) return next?.(method, url, request);
    if (r.what === 'status' || options.gather === undefined) return local(method, url);
    return options.gather(r.withHistory).then((rows) => (r.what === 'metrics' ? metrics(rows) : status(rows)));
  };
  return Object.assign(handler, {
    local,
    history,
    snapshot,
    stop() {
      if (made) history?.stop();
    },
  });
}
