/**
 * An XNAT agent in a child process, for the test that kills one mid-transfer (SIGKILL: no close
 * record, no FIN from this process's code). Its options come as JSON in XNAT_AGENT (the key seed
 * as hex); it prints "serving" once in service.
 */
import { XnatAgent, type XnatAgentOptions } from '../../lib/xnat/index.js';

const o = JSON.parse(process.env.XNAT_AGENT!) as XnatAgentOptions & { seed: string };
const agent = new XnatAgent({ ...o, key: Buffer.from(o.seed, 'hex'), quiet: true });
agent.on('serving', () => process.stdout.write('serving\n'));
await agent.start();
