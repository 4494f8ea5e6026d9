// `npm run stack -- up|stop`: manage the local Postgres shards and Redis alone.
import { parseCli, UsageError } from '../lib/args.js';
import { prepareStack } from './prepare.js';
import { stopStack } from './stack.js';

const USAGE = 'usage: npm run stack -- up|stop\n';

let cmd: string;
try {
  const { values, positionals } = parseCli(process.argv.slice(2), { options: { help: { type: 'boolean', short: 'h' } }, positionals: 1 });
  if (values.help) {
    process.stdout.write(USAGE);
    process.exit(0);
  }
  cmd = positionals[0] ?? 'up';
  if (cmd !== 'up' && cmd !== 'stop') throw new UsageError(`unknown command ${cmd}`);
} catch (err) {
  if (!(err instanceof UsageError)) throw err;
  process.stderr.write(`stack: ${err.message}\n${USAGE}`);
  process.exit(2);
}
if (cmd === 'stop') stopStack();
else {
  await prepareStack();
  process.stdout.write('stack: up\n');
}
