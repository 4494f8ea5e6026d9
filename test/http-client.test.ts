// The tools' HTTP client (load generators, probes, this suite) against a plain peer that
// never closes an idle connection itself, so whatever closes one is the client.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import t from 'tap';
import { HttpClient } from '../tools/lib/http.js';
import { eventually } from '../tools/lib/wait.js';

t.test('a kept-alive socket is closed by the client before uWS (10-12 s idle) would close it', async (t) => {
  const closedByClient: number[] = [];
  const server = http.createServer((_req, res) => res.end('{}'));
  server.keepAliveTimeout = 60_000;
  server.on('connection', (sock) => {
    const opened = performance.now();
    sock.on('end', () => closedByClient.push(performance.now() - opened));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const client = new HttpClient(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  t.teardown(() => { client.close(); server.close(); });

  t.equal((await client.call('GET', '/')).status, 200);
  t.equal((await client.call('GET', '/')).status, 200, 'the second call reuses the socket');
  await eventually(() => closedByClient.length > 0, 9_000, 100);
  t.equal(closedByClient.length, 1, `the one socket closed by the client after ${((closedByClient[0] ?? NaN) / 1000).toFixed(1)} s, before the server's 10 s idle`);
  t.equal((await client.call('GET', '/')).status, 200, 'the next call opens a new one');
});
