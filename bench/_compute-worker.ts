/**
 * The worker module of bench/compute.ts: 'work:N' runs the CPU-bound loop of N rounds (the same
 * function the inline server runs); anything else is echoed (the offload-overhead command).
 */
import { cpuWork } from './_compute-work.js';

export default function handler(text: string): string {
  if (text.startsWith('work:')) return String(cpuWork(Number(text.slice(5))));
  return text;
}
