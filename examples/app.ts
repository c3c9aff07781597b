/**
 * An app module for `zserver serve` (docs/operations.md, "App modules"):
 *
 *   npx tsx bin/zserver.ts serve examples/app.ts                  one process on 127.0.0.1:9818
 *   npx tsx bin/zserver.ts serve examples/app.ts --workers 4      four workers on the same port
 *
 * then `npx tsx examples/serve-client.ts` style clients call `greet` and `count`. Settings come
 * from the "app" section of a --config file: { "app": { "greeting": "hi" } }.
 */
import type { ServeConfig, Server } from '../lib/index.js';

export default function setup(server: Server, config: ServeConfig): void {
  const greeting = typeof config.app.greeting === 'string' ? config.app.greeting : 'hello';
  server.console('greet', (name) => `${greeting}, ${name} (worker ${config.worker + 1} of ${config.workers})`);
  // Online count of this worker (with a bus, the cluster's count: docs/cluster.md).
  server.console('count', () => String(server.count));
}
