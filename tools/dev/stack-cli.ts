// `npm run stack -- up|stop`: manage the local Postgres shards and Redis alone.
import { prepareStack } from './prepare.js';
import { stopStack } from './stack.js';

const cmd = process.argv[2] ?? 'up';
if (cmd === 'stop') stopStack();
else if (cmd === 'up') {
  await prepareStack();
  process.stdout.write('stack: up\n');
} else {
  process.stderr.write('usage: npm run stack -- up|stop\n');
  process.exit(2);
}
