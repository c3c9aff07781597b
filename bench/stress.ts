/**
 * The stress runner as a benchmark: the same options as `zserver stress`
 * (docs/stress.md); prints the report and writes
 * bench/results/stress.json. `--quick` runs 2,000 connections × 10 messages.
 * The clients are the C++ program bench/loadgen/stress-client.cc, compiled
 * into build/ on first use, so that the clients are not what limits the
 * connect rate; `--node-clients` uses the Node client processes instead.
 *
 *   node --import tsx bench/stress.ts [--quick] [--connections 60000 --messages 10 --transport node-net]
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { formatReport, parseStressArgs } from '../lib/cli/stress.js';
import { runStress } from '../lib/stress/runner.js';
import { quick, writeResults } from './_lib.js';

const args = process.argv.slice(2).filter((a) => a !== '--quick' && a !== '--node-clients');
const options = parseStressArgs(args);
if (!process.argv.includes('--node-clients') && options.clientProgram === undefined) {
  const src = 'bench/loadgen/stress-client.cc';
  const out = 'build/stress-client';
  if (!existsSync(out) || statSync(out).mtimeMs < statSync(src).mtimeMs) {
    mkdirSync('build', { recursive: true });
    execFileSync('g++', ['-O2', '-std=c++17', '-o', out, src], { stdio: 'inherit' });
  }
  options.clientProgram = out;
}
if (quick && options.connections === undefined) options.connections = 2000;
const report = await runStress(options);
console.log(`\nStress: ${report.connections.toLocaleString('en-US')} connections × ${report.messagesPerConnection} messages\n`);
console.log(formatReport(report));
writeResults('stress', [report]);
