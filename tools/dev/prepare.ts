// Stack up, shards migrated, demo catalog seeded: what `npm start` and the tests share.
import { loadConfig } from '../../src/config.js';
import { openTool } from '../../src/engine.js';
import { migrateAll } from '../../src/shard/migrate.js';
import { seedDemo } from './seed.js';
import { ensureStack } from './stack.js';

const say = (msg: string) => process.stdout.write(`start: ${msg}\n`);

export async function prepareStack(): Promise<NodeJS.ProcessEnv> {
  const urls = await ensureStack();
  const env = { ...process.env, PG_SHARDS: urls.pgShards.join(','), REDIS_URLS: urls.redisUrls.join(',') };
  await migrateAll(urls.pgShards);
  const tool = openTool(loadConfig(env));
  try {
    if (await seedDemo(tool.deps)) say('seeded the demo catalog');
  } finally {
    await tool.close();
  }
  return env;
}

