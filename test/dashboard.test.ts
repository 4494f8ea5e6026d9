// The live dashboard in a real headless browser (Debian chromium driven by
// playwright-core): the page loads with no external assets and no CSP violations,
// shows per-shard health, and an item's number changes after a hold made through the
// API; a pasted customer token shows that customer's orders, live. A screenshot goes
// to .stack/dashboard.png.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import t from 'tap';
import { ROOT } from '../src/paths.js';
import { api, category, customer, item, order } from './helpers/api.js';
import { ENGINE_URL } from './setup/env.js';

const CHROMIUM = '/usr/bin/chromium';

// No silent skip: without the browser this is a failure that says how to fix it
// (.ci/run installs it).
t.test('the browser is installed', async (t) => {
  t.ok(existsSync(CHROMIUM), `${CHROMIUM} missing: apt-get install -y chromium`);
});

t.test('the dashboard shows live counts, orders and health', async (t) => {
  const cat = await category();
  const hot = await item({ category_id: cat.id, name: 'Flash sale headphones', stock: 25, price_cents: 4999 });
  await item({ category_id: cat.id, name: 'Gift card', stock: 3, price_cents: 2500 });
  const userDir = mkdtempSync(path.join(os.tmpdir(), 'dashboard-chromium-'));
  // A fresh profile: playwright passes it as --user-data-dir.
  const browser = await chromium.launchPersistentContext(userDir, {
    executablePath: CHROMIUM, headless: true, viewport: { width: 1280, height: 860 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
  t.teardown(async () => {
    await browser.close();
    rmSync(userDir, { recursive: true, force: true });
  });
  const page = browser.pages()[0] ?? await browser.newPage();
  const problems: string[] = [];
  const external: string[] = [];
  page.on('console', (m) => { if (m.type() === 'error') problems.push(m.text()); });
  page.on('pageerror', (e) => problems.push(String(e)));
  page.on('request', (r) => { if (!r.url().startsWith(ENGINE_URL.replace('http', 'ws')) && !r.url().startsWith(ENGINE_URL)) external.push(r.url()); });

  const res = await page.goto(`${ENGINE_URL}/dashboard?category=${cat.id}`);
  t.equal(res?.status(), 200);
  const count = page.locator(`tr[data-id="${hot.id}"] [data-testid="available"]`);
  await count.waitFor({ timeout: 10_000 });
  t.equal(await count.textContent(), '25');
  await page.locator('#stream-state', { hasText: 'live' }).waitFor({ timeout: 5000 });
  await page.locator('.tile', { hasText: 'Shard 2' }).waitFor({ timeout: 5000 });
  t.equal(await page.locator('.tile.down').count(), 0, 'every shard and Redis tile is up');

  const buyer = await customer();
  const made = await order(buyer.token, [{ item_id: hot.id, quantity: 3 }]);
  t.equal(made.status, 201);
  await page.waitForFunction(({ id }) => document.querySelector(`tr[data-id="${id}"] [data-testid="available"]`)?.textContent === '22',
    { id: hot.id }, { timeout: 5000 });
  t.pass('the count went 25 -> 22 without a reload');

  // A customer's token: their orders, and a cancel streams in.
  await page.fill('#token', buyer.token);
  await page.click('#token-form button[type=submit]');
  const orderRow = page.locator('#orders li', { hasText: made.body.orders[0].id });
  await orderRow.waitFor({ timeout: 5000 });
  t.match(await orderRow.textContent(), /awaiting payment/);
  await order(buyer.token, [{ item_id: hot.id, quantity: 2 }]);
  await page.waitForFunction(({ id }) => document.querySelector(`tr[data-id="${id}"] [data-testid="available"]`)?.textContent === '20',
    { id: hot.id }, { timeout: 5000 });
  await api('POST', `/v1/orders/${made.body.orders[0].id}/cancel`, { token: buyer.token, body: {} });
  await page.locator('#orders li', { hasText: made.body.orders[0].id }).locator('.status', { hasText: 'canceled' }).waitFor({ timeout: 5000 });
  await page.waitForFunction(({ id }) => document.querySelector(`tr[data-id="${id}"] [data-testid="available"]`)?.textContent === '23',
    { id: hot.id }, { timeout: 5000 });
  t.pass('the order turned canceled and the units came back, live');

  const shot = path.join(ROOT, '.stack', 'dashboard.png');
  await page.screenshot({ path: shot, fullPage: true });
  t.ok(existsSync(shot), `screenshot at ${shot}`);
  t.same(external, [], 'no request leaves the engine (no CDN, no external assets)');
  t.same(problems, [], 'no console errors (CSP included)');
});
