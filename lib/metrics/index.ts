/**
 * Metrics of the command framework (docs/metrics.md): per-process snapshots,
 * Prometheus text over a list of them, a sample ring for the status page, the
 * `http` handler that serves /metrics, /status.json and /status, and the two
 * halves of gathering a worker group's metrics over the supervisor's IPC channel.
 */
export { takeSnapshot, isAbsent, defaultWorkerLabel, type ProcessSnapshot, type AbsentWorker, type WorkerSnapshot, type SnapshotOptions } from './snapshot.js';
export { renderPrometheus, escapeLabelValue, PROMETHEUS_CONTENT_TYPE } from './prometheus.js';
export {
  MetricsHistory,
  histogramQuantile,
  DEFAULT_SAMPLE_INTERVAL,
  DEFAULT_HISTORY_SAMPLES,
  MAX_HISTORY_SAMPLES,
  type MetricsSample,
  type MetricsHistoryOptions,
  type StatsSource,
} from './history.js';
export { metricsHttp, type MetricsHttp, type MetricsHttpOptions, type MetricsHttpAnswer, type MetricsHttpHandler } from './http.js';
export { answerMetrics, joinMetricsGroup, GroupMetrics, DEFAULT_GATHER_TIMEOUT, type GroupMetricsOptions, type MetricsGroupMember, type MetricsMessage } from './group.js';
export { STATUS_PAGE_HTML } from './status-page.js';
