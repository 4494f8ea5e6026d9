// The HTTP ceiling: a bare uWebSockets.js responder answering one fixed JSON body,
// forked over node:cluster like the engine (SO_REUSEPORT on one port). Started by
// the ceiling scenario as `node dist/bench/bare-uws.js <workers>`; prints
// {"msg":"listening","port":N} once every worker listens. SIGTERM stops it.
import cluster from 'node:cluster';
import net from 'node:net';
import os from 'node:os';
import { loadUws, uws, UwsUnavailable, UWS_UNAVAILABLE_EXIT } from '../src/http/uws.js';

// About the size of one item as GET /v1/items/:id returns it.
const BODY = JSON.stringify({
  id: 'it_1a2b', category_id: '31', name: 'bench item 1234', description: 'Black Friday bench item', price_cents: 12345,
  currency: 'USD', available: 999876, fulfillment: 'instant', active: true, max_per_customer: null,
  created_at: '2025-11-28T00:00:00.000Z', updated_at: '2025-11-28T00:00:00.000Z',
});

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

async function primary(): Promise<void> {
  refuseWithoutNativeUws();
  const workers = Math.max(1, Math.min(64, Number(process.argv[2]) || os.availableParallelism()));
  const port = Number(process.argv[3]) || (await freePort());
  let ready = 0;
  let stopping = false;
  for (let i = 0; i < workers; i++) {
    const w = cluster.fork({ BARE_PORT: String(port) });
    w.on('message', (m: unknown) => {
      if (m === 'listening' && ++ready === workers) process.stdout.write(`${JSON.stringify({ msg: 'listening', port, workers })}\n`);
    });
  }
  cluster.on('exit', () => {
    if (stopping) return;
    process.stderr.write('bare-uws: a worker died\n');
    process.exit(1);
  });
  const stop = () => {
    stopping = true;
    for (const w of Object.values(cluster.workers ?? {})) w?.process.kill('SIGTERM');
    setTimeout(() => process.exit(0), 200).unref();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

/** Like the engine: a ceiling measured on the JavaScript fallback would be no ceiling. */
function refuseWithoutNativeUws(): void {
  try {
    loadUws();
  } catch (err) {
    if (!(err instanceof UwsUnavailable)) throw err;
    process.stderr.write(`bare-uws: ${err.message}\n`);
    process.exit(UWS_UNAVAILABLE_EXIT);
  }
}

function worker(): void {
  const port = Number(process.env.BARE_PORT);
  uws().App()
    .any('/*', (res) => {
      res.cork(() => { res.writeStatus('200 OK').writeHeader('content-type', 'application/json').end(BODY); });
    })
    .listen('127.0.0.1', port, (socket) => {
      if (!socket) {
        process.stderr.write(`bare-uws: cannot listen on ${port}\n`);
        process.exit(1);
      }
      process.send?.('listening');
    });
  process.on('SIGTERM', () => process.exit(0));
}

if (cluster.isPrimary) await primary();
else worker();
