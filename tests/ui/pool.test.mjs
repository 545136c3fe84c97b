// The warm pool in the dashboard (docs/pool.md), in Chromium against the real `storefleet serve` on the
// test cluster with `--pool woocommerce/small=1`: an admin sees the "Warm pool" summary and the pool
// store marked "pool" in the list; "Create store" hands out that very store (same id), which leaves
// the pool and the summary, and a new pool store takes its place. A member sees neither the summary
// nor any pool store. Every state is checked against the API too.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';

import { ROOT, Server, until } from './server.mjs';

const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const SHOTS = path.join(ROOT, 'target/ui-screenshots');
const READY_MS = 300_000;
const UI_MS = 20_000;

async function call(server, method, apiPath, body, token = server.token) {
  const headers = { Authorization: `Bearer ${token}` };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const response = await fetch(`${server.base}${apiPath}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : null };
}

/** The ids of Ready unclaimed pool stores, as an admin lists them. */
async function readyPool(server) {
  const { body } = await call(server, 'GET', '/stores');
  const items = Array.isArray(body) ? body : body.items;
  return items.filter((s) => s.pool && s.status === 'Ready').map((s) => s.store_id);
}

test('dashboard: the warm pool, for admins only; Create store claims from it', async (t) => {
  mkdirSync(SHOTS, { recursive: true });
  const server = new Server({ maxStores: 4, pool: 'woocommerce/small=1' });
  await server.start();
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
  });
  t.after(async () => {
    await browser.close().catch(() => {});
    await server.cleanup();
  });
  const page = await (await browser.newContext({ viewport: { width: 1280, height: 900 }, locale: 'en-GB' })).newPage();
  const problems = [];
  page.on('pageerror', (e) => problems.push(`uncaught: ${e.message}`));
  page.setDefaultTimeout(UI_MS);
  let n = 0;
  const shot = async (name) => page.screenshot({ path: path.join(SHOTS, `pool-${String(++n).padStart(2, '0')}-${name}.png`), fullPage: true });
  let failed = false;
  const step = (name, fn) =>
    t.test(name, { skip: failed && 'an earlier step failed' }, async () => {
      try {
        await fn();
      } catch (e) {
        failed = true;
        await shot(`FAILED-${name.replace(/\W+/g, '-')}`).catch(() => {});
        throw new Error(`${e.message}\n----- storefleet serve (last 60 lines) -----\n${server.log().split('\n').slice(-60).join('\n')}`, { cause: e });
      }
    });
  const signIn = async (token) => {
    await page.goto(server.base + '/');
    await page.getByLabel('API token').fill(token);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Stores', exact: true }).waitFor();
  };
  const row = (id) => page.locator('#stores-body tr', { hasText: id });

  let pooled;
  await step('the pool fills', async () => {
    pooled = (await until('a Ready pool store', READY_MS, async () => (await readyPool(server))[0], 1000));
  });

  await step('an admin sees the summary and the pool store, marked', async () => {
    await signIn(server.token);
    await page.locator('#pool-summary').waitFor();
    await until('1 of 1 ready', UI_MS, async () => /woocommerce small: 1 of 1 ready/.test(await page.locator('#pool-kinds').innerText()));
    await row(pooled).waitFor();
    assert.equal(await row(pooled).locator('.badge-pool').innerText(), 'pool');
    await shot('admin');
  });

  let member;
  await step('Create store hands out the pool store, which leaves the pool', async () => {
    member = (await call(server, 'POST', '/users', { name: 'mia', role: 'member', max_stores: 2 })).body.token;
    await page.getByLabel('Name', { exact: true }).fill('Admin shop');
    const answer = page.waitForResponse((r) => r.url().endsWith('/stores') && r.request().method() === 'POST');
    await page.getByRole('button', { name: 'Create store' }).click();
    const created = await (await answer).json();
    assert.equal(created.store_id, pooled, 'not claimed from the pool');
    assert.equal(created.name, 'Admin shop');
    await until('the row named and unmarked', UI_MS, async () =>
      /Admin shop/.test(await row(pooled).innerText()) && (await row(pooled).locator('.badge-pool').count()) === 0);
    const store = await call(server, 'GET', `/stores/${pooled}`);
    assert.equal(store.body.pool, undefined, JSON.stringify(store.body));
    // A new pool store takes its place, and the summary follows (the live stream, no reload).
    await until('a new Ready pool store', READY_MS, async () => (await readyPool(server)).some((id) => id !== pooled), 1000);
    await until('the summary back at 1 of 1', READY_MS, async () => /1 of 1 ready/.test(await page.locator('#pool-kinds').innerText()), 1000);
    await shot('claimed');
  });

  await step('a member sees no pool and no pool store', async () => {
    await page.getByRole('button', { name: 'Sign out' }).click();
    await signIn(member);
    await page.locator('#stores-empty, #stores-table').first().waitFor();
    assert.equal(await page.locator('#pool-summary').isVisible(), false);
    assert.equal(await page.locator('#stores-body .badge-pool').count(), 0);
    const pool = await call(server, 'GET', '/pool', undefined, member);
    assert.equal(pool.status, 403);
    await shot('member');
    assert.deepEqual(problems, []);
  });
});
