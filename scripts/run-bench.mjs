// `npm run bench`: runs every bench/*.ts in turn (quick variants unless --full),
// each printing its table and writing bench/results/<name>.json.
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';

// Quick variants unless --full is given.
const extra = process.argv.slice(2);
const only = extra.filter((a) => !a.startsWith('--'));
const flags = extra.includes('--full') ? extra.filter((a) => a.startsWith('--') && a !== '--full') : ['--quick'];
const files = readdirSync('bench')
  .filter((f) => f.endsWith('.ts') && !f.startsWith('_'))
  .filter((f) => only.length === 0 || only.some((o) => f.startsWith(o)))
  .sort();
let failed = 0;
for (const f of files) {
  console.log(`\n=== bench/${f}`);
  const r = spawnSync(process.execPath, ['--import', 'tsx', `bench/${f}`, ...flags], { stdio: 'inherit' });
  if (r.status !== 0) failed++;
}
process.exit(failed ? 1 : 0);
