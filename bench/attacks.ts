/**
 * bench/attacks.ts: the attacks of issue 13 ("a server that no hostile, slow
 * or careless client can take down"), each against a fresh server process
 * (the Server of `zserver serve`, bench/attack/server.ts), with an honest
 * client calling echo every 20 ms from another process throughout.
 *
 *   node --import tsx bench/attacks.ts [--only a,b] [--transport native|node-net]
 *                                      [--rss-cap-mb 2048] [--small | --quick] [--help]
 *
 * Per attack it prints the server's RSS before, at its peak and after (from
 * /proc every 100 ms; the server is killed when it passes the cap: '>cap'),
 * whether the offending peers were closed (client side) and the reasons the
 * server gave, the honest echo round trip p50/p99/max, and whether honest
 * clients still work afterwards; then PASS/FAIL against issue 13's criteria:
 * RSS growth < 256 MB, offender closed or held back, honest echo < 100 ms
 * throughout, honest clients keep working. Writes bench/results/attacks.json
 * (attacks-<transport>.json for node-net). Exit code 0 whatever the verdicts:
 * this is a measuring instrument; test/hardening/attacks.test.ts asserts.
 */
import { printTable, writeResults } from './_lib.js';
import { attacks } from './attack/attacks.js';
import { runAttack, type AttackResult, type Scale, type TransportChoice } from './attack/run.js';

const HELP = `usage: node --import tsx bench/attacks.ts [options]

Repeats the attacks of issue 13 against a zserver serve-style server in a child
process and prints, per attack, RSS growth, whether the offender was closed and
why, the honest client's echo round trip, and PASS/FAIL.

  --only a,b,...           attacks to run (default: all): ${attacks.map((a) => a.id).join(', ')}
  --transport T            server (and honest client) transport: native (default) or node-net
  --rss-cap-mb N           kill the server when its RSS passes N MB (default 2048)
  --small, --quick         the small scale of the tests (fewer connections, shorter; npm run bench)
  --help                   this text

attacks:
${attacks.map((a) => `  ${a.id.padEnd(3)} ${a.title}`).join('\n')}
`;

function parse(argv: string[]) {
  const o = { only: attacks.map((a) => a.id), transport: 'native' as TransportChoice, capMB: 2048, scale: 'full' as Scale };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new RangeError(`${a} needs a value`);
      return v;
    };
    if (a === '--help' || a === '-h') {
      process.stdout.write(HELP);
      process.exit(0);
    } else if (a === '--only') {
      o.only = value().split(',').map((s) => s.trim()).filter(Boolean);
      const unknown = o.only.filter((id) => !attacks.some((x) => x.id === id));
      if (unknown.length) throw new RangeError(`unknown attack(s) ${unknown.join(', ')}; there are ${attacks.map((x) => x.id).join(', ')}`);
    } else if (a === '--transport') {
      const v = value();
      if (v !== 'native' && v !== 'node-net') throw new RangeError(`--transport must be native or node-net, got '${v}'`);
      o.transport = v;
    } else if (a === '--rss-cap-mb') {
      o.capMB = Number(value());
      if (!(o.capMB > 0)) throw new RangeError('--rss-cap-mb must be a positive number');
    } else if (a === '--small' || a === '--quick') o.scale = 'small';
    else throw new RangeError(`unknown option '${a}' (see --help)`);
  }
  return o;
}

const MB = 1024 * 1024;

function reasons(r: AttackResult): string {
  const server = Object.entries(r.serverReasons).map(([k, v]) => `${k}×${v}`).join(' ');
  const client = Object.entries(r.clientSide).map(([k, v]) => `${k}×${v}`).join(' ');
  if (r.offenders === 0) return r.check ? (r.check.ok ? 'refused' : 'accepted') : 'n/a';
  const held = r.heldBack === true ? ', held back' : '';
  return `${r.offendersClosed}/${r.offenders} closed${held} [server: ${server || '-'}; client: ${client}]`;
}

async function main(): Promise<void> {
  const o = parse(process.argv.slice(2));
  const rows: AttackResult[] = [];
  for (const attack of attacks.filter((a) => o.only.includes(a.id))) {
    process.stderr.write(`attack ${attack.id}: ${attack.title} (${o.transport}) ...\n`);
    const r = await runAttack(attack, { transport: o.transport, scale: o.scale, rssCap: o.capMB * MB, growthLimit: 256 * MB, rttLimit: 100 });
    rows.push(r);
    process.stderr.write(`  ${r.pass ? 'PASS' : 'FAIL'} ${r.note}${r.failures.length ? `\n  ${r.failures.join('\n  ')}` : ''}\n`);
  }
  printTable(
    `issue 13 attacks, server transport ${o.transport} (${o.scale} scale; RSS cap ${o.capMB} MB)`,
    rows.map((r) => ({
      attack: `${r.attack} ${r.title}`,
      'RSS before MB': r.rssBeforeMB,
      'RSS peak MB': r.killedAtCap ? `>${o.capMB}` : r.rssPeakMB,
      'RSS after MB': r.killedAtCap ? 'killed' : r.serverDied ? 'died' : r.rssAfterMB,
      'growth MB': r.killedAtCap ? `>${Math.round(o.capMB - r.rssBeforeMB)}` : r.growthMB,
      'offender closed/reason': reasons(r),
      'honest p50 ms': r.honestP50,
      'honest p99 ms': r.honestP99,
      'honest max ms': r.honestMax,
      'honest ok': r.honestOk ? 'yes' : `NO (${r.honestWhy.slice(0, 40)})`,
      verdict: r.pass ? 'PASS' : 'FAIL',
    })),
  );
  for (const r of rows) {
    console.log(`${r.attack}: ${r.note}`);
    if (!r.pass) console.log(`   FAIL: ${r.failures.join('; ')}`);
  }
  writeResults(o.transport === 'native' ? 'attacks' : `attacks-${o.transport}`, rows, { transport: o.transport, scale: o.scale, rssCapMB: o.capMB });
}

main().then(
  () => process.exit(0),
  (err: Error) => {
    process.stderr.write(`bench/attacks.ts: ${err.message}\n`);
    process.exit(1);
  },
);
