// Types of scripts/build-browser.mjs, for the tests and lib/cli/web.ts that import it.

/** A bundle in memory, with every Node dependency found in it. */
export interface BrowserBundle {
  code: string;
  map: string;
  /** One line per Node dependency (a node: import, require(), a Node global); empty for a good bundle. */
  problems: string[];
  /** The source files bundled, relative to the working directory. */
  inputs: string[];
}

/** Bundles lib/browser.ts (or `entry`) for browsers. */
export function bundleBrowser(options?: { entry?: string; minify?: boolean }): Promise<BrowserBundle>;

/** Builds dist/browser/zserver.js and its map; throws when the bundle has Node dependencies. */
export function writeBrowserBundle(): Promise<{ file: string; bytes: number }>;
