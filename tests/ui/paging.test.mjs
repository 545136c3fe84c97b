// The dashboard's paged store list and audit log, in Chromium against the real `storefleet serve` on
// the test cluster. A fleet of 10,000 does not fit a test, so the page size comes from the link
// (`#/stores?per_page=2`, `#/audit?per_page=2`, as a user may set it too); everything else is the
// product's own path: `GET /stores?limit=…&cursor=…` with the search and filters, `GET /audit?page=true`.
//
// The fleet: four stores made through the API (one named with HTML in it) and one Store written with
// kubectl whose name is not a store id, which the controller refuses at once (Failed): a store of a
// known status that does not depend on how fast the others provision.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';

import { ROOT, Server, kubectl, until } from './server.mjs';

const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const SHOTS = path.join(ROOT, 'target/ui-screenshots');
const UI_MS = 20_000;
const HTML = '<img src=x onerror="window.__pwned=1">';
const NAMES = ['Paging Apple', 'Paging Banana', 'Paging Cherry', `Tag ${HTML}`];
const LATE = 'Paging Elder';

async function call(server, method, apiPath, body) {
  const headers = { Authorization: `Bearer ${server.token}` };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const response = await fetch(`${server.base}${apiPath}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : null };
}

test('dashboard: paged store list, search, filters, audit "Load more", HTML shown as text', async (t) => {
  mkdirSync(SHOTS, { recursive: true });
  for (const name of readdirSync(SHOTS).filter((f) => f.startsWith('paging-'))) rmSync(path.join(SHOTS, name));
  // Room for the late store, whether or not the hand-written one counts against the quota.
  const server = new Server({ maxStores: NAMES.length + 2 });
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

  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, locale: 'en-GB' });
  const requests = [];
  context.on('request', (r) => requests.push({ method: r.method(), url: new URL(r.url()) }));
  const page = await context.newPage();
  const problems = [];
  page.on('pageerror', (e) => problems.push(`uncaught: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && /Content.Security.Policy|Refused to/i.test(m.text())) problems.push(`console: ${m.text()}`);
  });
  page.setDefaultTimeout(UI_MS);
  let n = 0;
  const shot = async (name) => page.screenshot({ path: path.join(SHOTS, `paging-${String(++n).padStart(2, '0')}-${name}.png`), fullPage: true });
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

  const shownIds = () => page.locator('#stores-body tr').evaluateAll((rows) => rows.map((r) => r.dataset.storeId));
  const listGets = () => requests.filter((r) => r.method === 'GET' && r.url.pathname === '/stores');
  /** Waits until the list shows exactly `ids` (in this order). */
  const listShows = async (what, ids) => {
    await until(what, UI_MS, async () => JSON.stringify(await shownIds()) === JSON.stringify(ids));
  };

  let fleet; // every store id, in the API's order (creation time, then id)
  const byName = new Map();
  let handmade;

  await step('a fleet of five: four stores through the API, one refused hand-written Store', async () => {
    for (const name of NAMES) {
      const created = await call(server, 'POST', '/stores', { name });
      assert.equal(created.status, 202, JSON.stringify(created.body));
      assert.equal(created.body.name, name);
      byName.set(name, created.body.store_id);
    }
    const me = (await call(server, 'GET', '/me')).body;
    handmade = `handmade-${server.instance.slice(-6)}`;
    const file = path.join(server.dir, 'handmade.json');
    writeFileSync(file, JSON.stringify({
      apiVersion: 'storefleet.dev/v1alpha1',
      kind: 'Store',
      metadata: { name: handmade, labels: { 'storefleet.dev/instance': server.instance } },
      spec: { owner: me.user },
    }));
    await kubectl('create', '-f', file);
    await until(`${handmade} Failed`, 60_000, async () => {
      const all = (await call(server, 'GET', '/stores')).body;
      return all.find((s) => s.store_id === handmade)?.status === 'Failed';
    }, 500);
    fleet = (await call(server, 'GET', '/stores')).body.map((s) => s.store_id);
    assert.equal(fleet.length, 5);
  });

  await step('two per page: page 1 shows the first two, "Load more" appends stores page 1 did not show', async () => {
    await page.goto(`${server.base}/#/stores?per_page=2`);
    await page.getByLabel('API token').fill(server.token);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Stores', exact: true }).waitFor();
    await listShows('page 1', fleet.slice(0, 2));
    const first = await shownIds();
    const more = page.getByRole('button', { name: 'Load more stores' });
    await more.waitFor();
    // The quota comes from GET /me, not from counting a list that holds one page.
    const me = (await call(server, 'GET', '/me')).body;
    assert.equal(await page.locator('#quota-text').innerText(), `${me.stores_used} of ${me.max_stores} stores`);
    await shot('page-1');

    await more.click();
    await listShows('pages 1 and 2', fleet.slice(0, 4));
    const second = (await shownIds()).slice(2);
    assert.ok(second.every((id) => !first.includes(id)), `page 2 repeats page 1: ${first} / ${second}`);
    await more.click();
    await listShows('every page', fleet);
    await more.waitFor({ state: 'hidden' });
    await shot('all-pages');

    // Every list request was one page, continued with the previous page's cursor.
    const gets = listGets();
    assert.ok(gets.length >= 3, `${gets.length} list requests`);
    for (const r of gets) assert.equal(r.url.searchParams.get('limit'), '2', `not a page: ${r.url}`);
    const cursors = gets.map((r) => r.url.searchParams.get('cursor')).filter(Boolean);
    assert.equal(cursors.length, 2, `cursors: ${cursors}`);
  });

  await step('a store created elsewhere appears by itself when the whole list is loaded', async () => {
    const created = await call(server, 'POST', '/stores', { name: LATE });
    assert.equal(created.status, 202);
    // It sorts last (the API's order: creation time, then id).
    fleet = (await call(server, 'GET', '/stores')).body.map((s) => s.store_id);
    assert.equal(fleet.at(-1), created.body.store_id);
    await listShows('the new store at the end', fleet);
  });

  await step('search narrows the list to the matching store (as typed, debounced; and on Enter)', async () => {
    const search = page.getByLabel('Search');
    await search.fill('cHeRrY');
    await listShows('only the cherry store', [byName.get('Paging Cherry')]);
    const typed = listGets().at(-1).url;
    assert.equal(typed.searchParams.get('q'), 'cHeRrY');
    assert.equal(typed.searchParams.get('limit'), '2');
    assert.equal(await page.getByRole('button', { name: 'Load more stores' }).isVisible(), false);
    await shot('search');

    // Enter searches at once, without waiting for the pause; by store id too.
    const before = listGets().length;
    const answer = page.waitForResponse((r) => new URL(r.url()).pathname === '/stores' && new URL(r.url()).searchParams.get('q') === byName.get('Paging Banana'));
    await search.fill(byName.get('Paging Banana'));
    await search.press('Enter');
    assert.equal((await answer).status(), 200);
    await listShows('only the banana store', [byName.get('Paging Banana')]);
    assert.ok(listGets().length > before);

    await search.fill('no such store');
    await page.locator('#stores-none').waitFor();
    assert.equal(await page.locator('#stores-empty').isVisible(), false, '"No stores yet" for a search');
  });

  await step('a search with HTML in it is sent as a parameter and shown as text, never as markup', async () => {
    const search = page.getByLabel('Search');
    await search.fill(HTML);
    await search.press('Enter');
    const id = byName.get(`Tag ${HTML}`);
    await listShows('only the store named with HTML', [id]);
    const sent = listGets().filter((r) => r.url.searchParams.get('q') === HTML);
    assert.ok(sent.length > 0, 'the search did not reach the API as q');
    const link = page.locator('#stores-body tr a').first();
    assert.equal(await link.innerText(), `Tag ${HTML}`);
    assert.equal(await page.locator('#stores-body img, #stores-summary img, main img').count(), 0);
    assert.equal(await page.evaluate(() => window.__pwned), undefined);
    assert.equal(await search.inputValue(), HTML);
    const summary = await page.locator('#stores-summary').innerText();
    assert.ok(summary.includes(`matching “${HTML}”`), summary);
    await shot('search-html');
  });

  await step('the status filter lists only stores of that status', async () => {
    await page.getByRole('button', { name: 'Clear' }).click();
    await listShows('the first page again', fleet.slice(0, 2));
    await page.getByLabel('Status').selectOption('Failed');
    await listShows('only the Failed store', [handmade]);
    assert.equal(listGets().at(-1).url.searchParams.get('status'), 'Failed');
    const row = page.locator('#stores-body tr').first();
    assert.match(await row.locator('.badge').innerText(), /Failed/);
    assert.match(await row.innerText(), /not a store id/);
    await shot('status-failed');
    // Admins may filter by owner: nobody else has a store here.
    await page.getByLabel('Status').selectOption('');
    await page.getByLabel('Owner').fill('someone-else');
    await page.getByLabel('Owner').press('Enter');
    await page.locator('#stores-none').waitFor();
    assert.equal(listGets().at(-1).url.searchParams.get('owner'), 'someone-else');
    await page.getByRole('button', { name: 'Clear' }).click();
    await listShows('the first page again', fleet.slice(0, 2));
  });

  await step('the audit log pages: "Load older entries" appends older entries', async () => {
    await page.goto(`${server.base}/#/audit?per_page=2`);
    await page.getByRole('heading', { name: 'Audit log' }).waitFor();
    const ids = () => page.locator('#audit-body tr').evaluateAll((rows) => rows.map((r) => Number(r.dataset.id)));
    await until('the first audit page', UI_MS, async () => (await ids()).length === 2);
    const first = await ids();
    const more = page.getByRole('button', { name: 'Load older entries' });
    await more.click();
    await until('the second audit page', UI_MS, async () => (await ids()).length === 4);
    const all = await ids();
    assert.deepEqual(all.slice(0, 2), first);
    // Newest first, nothing repeated: the new rows are older than page 1's last.
    for (let i = 1; i < all.length; i++) assert.ok(all[i] < all[i - 1], `not newest first: ${all}`);
    const everything = (await call(server, 'GET', '/audit?limit=1000')).body.map((e) => e.id);
    for (const id of all) assert.ok(everything.includes(id), `${id} is not an audit entry`);
    const pages = requests.filter((r) => r.method === 'GET' && r.url.pathname === '/audit');
    assert.ok(pages.every((r) => r.url.searchParams.get('page') === 'true' && r.url.searchParams.get('limit') === '2'), 'audit not paged');
    assert.ok(pages.at(-1).url.searchParams.get('cursor'), 'Load more sent no cursor');
    await shot('audit-more');
  });

  await step('the page never asked for the whole fleet and broke no CSP rule', async () => {
    for (const r of listGets()) assert.ok(r.url.searchParams.get('limit'), `GET ${r.url.pathname}${r.url.search} is not a page`);
    const origin = new URL(server.base).origin;
    assert.deepEqual(requests.filter((r) => r.url.protocol !== 'data:' && r.url.origin !== origin), []);
    assert.deepEqual(problems, []);
  });
});
