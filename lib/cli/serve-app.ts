/**
 * The app module contract of `zserver serve ./app.js` (docs/operations.md, "App modules"), and
 * the loader that holds an app to it. An app is an ES module that exports a setup function,
 * default or named `setup`:
 *
 *   export default async function setup(server: Server, config: ServeConfig): void | Promise<void>
 *
 * `serve` calls it once per process (once per worker with --workers N) on a new Server, before
 * any endpoint listens, so no client ever sees a server without the app's commands. The app
 * registers commands (server.console, stream, buffer, bigStream, ...), listens to events, and
 * reads its own settings from `config.app` (the "app" section of the --config file). It must
 * not call listen() or close(): endpoints, drain and exit belong to `serve`. A setup that throws
 * (or rejects) stops the process with exit code 1 and the error on stderr.
 *
 * A `.ts` app loads through tsx when the tsx package is installed (the loader is registered on
 * first need); without it, loading fails with a message saying how to install it.
 */
import { existsSync } from 'node:fs';
import { createRequire, register } from 'node:module';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { AppLoadError } from '../errors.js';
import type { Server } from '../framework/server.js';

/** What an app's setup function gets besides the Server: where and how this process serves. */
export interface ServeConfig {
  /** This process's index in the group, 0-based (0 without --workers). */
  worker: number;
  /** How many worker processes serve together (1 without --workers). */
  workers: number;
  /** The host the endpoints listen on. */
  host: string;
  /** The framework TCP (or TLS) port; with --workers, the one port every worker shares. */
  port: number;
  /** The WebSocket and web page port; null when serve runs without one (--no-web). */
  wsPort: number | null;
  /** The NATS URL of the group's bus (--nats, or the local nats-server serve started); undefined: none. */
  nats: string | undefined;
  /** The "app" section of the --config file ({} without one): the app's own settings. */
  app: Record<string, unknown>;
}

/** The setup function an app module exports (default or named `setup`). */
export type ServeSetup = (server: Server, config: ServeConfig) => void | Promise<void>;

let tsxRegistered = false;

/** Registers tsx's ESM loader once, so `import()` of a .ts file works; throws AppLoadError when tsx is missing. */
function registerTsx(path: string): void {
  if (tsxRegistered || process.execArgv.some((a) => a.includes('tsx'))) return;
  const require = createRequire(pathToFileURL(resolve(path)).href);
  let esm: string;
  try {
    esm = require.resolve('tsx/esm');
  } catch {
    try {
      esm = createRequire(import.meta.url).resolve('tsx/esm');
    } catch {
      throw new AppLoadError(
        `cannot load ${path}: a .ts app needs the tsx package (npm install tsx, next to the app or in this project), or compile it to .js first`,
      );
    }
  }
  register(pathToFileURL(esm).href, import.meta.url);
  tsxRegistered = true;
}

/** Loads the app module at `path` and returns its setup function; AppLoadError says what is wrong. */
export async function loadApp(path: string): Promise<ServeSetup> {
  const full = resolve(path);
  if (!existsSync(full)) throw new AppLoadError(`app module ${path} does not exist (resolved to ${full})`);
  if (/\.(c|m)?ts$/.test(full)) registerTsx(path);
  let mod: { default?: unknown; setup?: unknown };
  try {
    mod = (await import(pathToFileURL(full).href)) as typeof mod;
  } catch (err) {
    throw new AppLoadError(`cannot load app module ${path}: ${(err as Error).message}`, { cause: err });
  }
  const setup = typeof mod.default === 'function' ? mod.default : mod.setup;
  if (typeof setup !== 'function') {
    throw new AppLoadError(
      `app module ${path} exports no setup function: export default async function setup(server, config) { server.console('hi', () => 'hello') } (docs/operations.md)`,
    );
  }
  return setup as ServeSetup;
}
