// Runs once before the suite: the local stack (reused when up), then one engine
// cluster and the simulators on test ports, left running for every test file.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { DIST_DIR } from '../../src/paths.js';
import { prepareStack } from '../../tools/dev/prepare.js';
import { waitForUrl } from '../../tools/lib/wait.js';
import { ENGINE_URL, GATEWAY_PORT, PROVIDER_PORT, engineEnv } from './env.js';
import { recordPids, startDetached } from './procs.js';
import { stopRecorded } from './stop.js';

await stopRecorded();
const stackEnv = await prepareStack();
const env = engineEnv(stackEnv);
const pids: Record<string, number> = {};
if (existsSync(path.join(DIST_DIR, 'sim', 'gateway.js'))) {
  pids.gateway = startDetached('gateway', 'sim/gateway.js', env);
  pids.provider = startDetached('provider', 'sim/provider.js', env);
}
pids.engine = startDetached('engine', 'cluster.js', env);
recordPids(pids);
await waitForUrl(`${ENGINE_URL}/readyz`, 60_000);
if (pids.gateway) {
  await waitForUrl(`http://127.0.0.1:${GATEWAY_PORT}/healthz`, 10_000);
  await waitForUrl(`http://127.0.0.1:${PROVIDER_PORT}/healthz`, 10_000);
}
