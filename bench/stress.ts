/**
 * The stress runner as a benchmark: the same options as `zserver stress`
 * (docs/transport.md, "Stress runner"); prints the report and writes
 * bench/results/stress.json. `--quick` runs 2,000 connections × 10 messages.
 *
 *   node --import tsx bench/stress.ts [--quick] [--connections 60000 --messages 10 --transport node-net]
 */
import { formatReport, parseStressArgs } from '../lib/cli/stress.js';
import { runStress } from '../lib/stress/runner.js';
import { quick, writeResults } from './_lib.js';

const args = process.argv.slice(2).filter((a) => a !== '--quick');
const options = parseStressArgs(args);
if (quick && options.connections === undefined) options.connections = 2000;
const report = await runStress(options);
console.log(`\nStress: ${report.connections.toLocaleString('en-US')} connections × ${report.messagesPerConnection} messages\n`);
console.log(formatReport(report));
writeResults('stress', [report]);
