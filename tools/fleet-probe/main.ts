// Drives a running fleet through its public HTTP API: the proof in
// deploy/6-node/deploy-local.sh, or a smoke test of a staging fleet.
//   setup --engines URL,URL,.. --admin-email E --admin-password P --state FILE
//   smoke --state FILE [--requests N] [--concurrency C] [--gateway URL]
//   load  --state FILE --rotation-file F --stop-file F [--max-ms T] [--concurrency C]
//         steady traffic through a stand-in load balancer: hosts listed in the
//         rotation file are out of rotation (drained); stops when the stop file appears
//   record --state FILE --out DIR --stop-file F [--concurrency 6] [--gateway URL] [--max-ms 600000]
//          [--pay-every 3] [--timeout-ms 10000] [--give-up-ms 60000]
//         the HA proof's steady checkouts, card payments and reads, every answer and every
//         acknowledged write written to DIR (ha-records.ts), DIR/status for bash
//   ha-verify --state FILE --records DIR --pg-shards URLS [--marks FILE] [--timeout-ms 30000] [--settle-ms 15000]
//         every acknowledged write read back from each shard's current primary; invariants;
//         per marked phase, what the client saw (ha-verify.ts, ha-phases.ts)
// Every phase prints what it saw and, last, `RESULT <phase> <json>`; exit 0 = as expected.
// Every request has a client-side deadline, every loop a bound: the probe itself
// cannot hang, so a hung engine shows up as a number, not as a stuck proof.
import { UsageError, isEntry } from '../lib/args.js';
import { Flags } from './common.js';
import { load } from './load.js';
import { record } from './ha-load.js';
import { haVerify } from './ha-verify.js';
import { setup, smoke } from './smoke.js';

const PHASES: Record<string, (a: Flags) => Promise<boolean>> = { setup, smoke, load, record, 'ha-verify': haVerify };
const USAGE = 'usage: fleet-probe setup|smoke|load|record|ha-verify --state FILE [...] (see the header of tools/fleet-probe/main.ts)\n';

async function main(): Promise<void> {
  const [phase, ...rest] = process.argv.slice(2);
  const run = PHASES[phase ?? ''];
  if (!run) {
    process.stderr.write(USAGE);
    process.exit(2);
  }
  try {
    process.exit((await run(new Flags(rest))) ? 0 : 1);
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`probe: ${phase}: ${err.message}\n${USAGE}`);
      process.exit(2);
    }
    process.stderr.write(`probe: ${phase} failed: ${(err as Error).message}\n`);
    process.exit(1);
  }
}

if (isEntry(import.meta.url)) await main();
