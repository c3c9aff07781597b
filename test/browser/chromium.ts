// Shared by the browser tests: headless Chromium driven by playwright-core. Which Chromium:
//   ZS_CHROMIUM=/path/to/chromium   that binary;
//   ZS_CHROMIUM=bundled             the one inside the npm package @sparticuz/chromium (a
//                                   devDependency, so `npm install` brings it; unpacked to
//                                   /tmp/chromium on first use);
//   unset                           /usr/bin/chromium (Debian's package) when it is there,
//                                   else the bundled one.
import assert from 'node:assert/strict';
import { accessSync, constants, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import type { BrowserContext, Page } from 'playwright-core';

/** The distribution's Chromium, used when present unless ZS_CHROMIUM says otherwise. */
export const SYSTEM_CHROMIUM = '/usr/bin/chromium';

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

let found: Promise<{ path: string; source: string }> | undefined;

/** The Chromium binary the browser tests run and where it came from (see the file comment). */
export function chromiumExecutable(): Promise<{ path: string; source: string }> {
  found ??= (async () => {
    const chosen = process.env.ZS_CHROMIUM;
    if (chosen && chosen !== 'bundled') {
      assert.ok(executable(chosen), `ZS_CHROMIUM=${chosen} is not an executable file`);
      return { path: chosen, source: 'ZS_CHROMIUM' };
    }
    if (!chosen && executable(SYSTEM_CHROMIUM)) return { path: SYSTEM_CHROMIUM, source: 'system' };
    const { default: bundled } = await import('@sparticuz/chromium');
    return { path: await bundled.executablePath(), source: '@sparticuz/chromium' };
  })();
  return found;
}

/** Flags for a quiet, self-contained headless Chromium (no network besides the page's own). */
export const chromiumArgs = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** A browser with a throw-away profile; close() removes both. */
export interface TestBrowser {
  context: BrowserContext;
  close(): Promise<void>;
}

/** `extraArgs`: more flags, e.g. --ignore-certificate-errors-spki-list=<pin> for a test certificate. */
export async function launchChromium(extraArgs: readonly string[] = []): Promise<TestBrowser> {
  const { path } = await chromiumExecutable();
  const profile = mkdtempSync(join(tmpdir(), 'zs-chromium-'));
  const context = await chromium.launchPersistentContext(profile, { executablePath: path, headless: true, args: [...chromiumArgs, ...extraArgs] });
  return {
    context,
    close: async () => {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/** Collects a page's uncaught errors, to assert that there were none. */
export function pageErrors(page: Page): string[] {
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  return errors;
}
