// End-to-end test of the dashboard: Debian's Chromium, driven by playwright-core, against the real
// `storefleet serve` on the test cluster. It signs in, creates a store and watches it become Ready
// without reloading, opens it, reveals the admin login, hits the quota, reads the audit log, deletes
// the store and watches it vanish, loses the connection, and signs out. Every assertion is on what the
// server or the page shows; screenshots of each state go to target/ui-screenshots/.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';

import { ROOT, Server, kubectl, until } from './server.mjs';

const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const SHOTS = path.join(ROOT, 'target/ui-screenshots');
// Generous: the CI machine has 2 cores and runs other tests at the same time.
const READY_MS = 300_000;
const GONE_MS = 240_000;
const UI_MS = 20_000;
const STORE_NAME = 'Café Zürich 🛒 №1';

test('dashboard: sign in, create, live Ready, credentials, quota, audit, delete, connection loss, sign out', async (t) => {
  // Only this file's screenshots (NN-*.png): node runs the files in name order, so backups-*.png are
  // already there.
  mkdirSync(SHOTS, { recursive: true });
  for (const name of readdirSync(SHOTS).filter((f) => /^\d\d-/.test(f))) rmSync(path.join(SHOTS, name));

  const server = new Server({ maxStores: 1 });
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
  context.on('request', (r) => requests.push({ method: r.method(), url: r.url(), type: r.resourceType() }));
  const page = await context.newPage();
  const problems = [];
  page.on('pageerror', (e) => problems.push(`uncaught: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && /Content.Security.Policy|Refused to/i.test(m.text())) problems.push(`console: ${m.text()}`);
  });
  page.setDefaultTimeout(UI_MS);

  let n = 0;
  const shot = async (name) => page.screenshot({ path: path.join(SHOTS, `${String(++n).padStart(2, '0')}-${name}.png`), fullPage: true });
  const text = async (selector) => (await page.locator(selector).innerText()).trim();
  const row = (name) => page.locator('#stores-body tr', { hasText: name });

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

  let storeId;
  // Every store's state comes from the event stream: the page never GETs /stores/{id}, and opens
  // /events only when it (re)connects. The list is one page at a time (`GET /stores?limit=`, never the
  // whole fleet), asked for when the stores page is shown, after a (re)connect and when an event may
  // add or drop a row: a handful of requests, not a polling loop.
  const assertNoPolling = (maxStreams, maxPages) => {
    const gets = requests.filter((r) => r.method === 'GET').map((r) => new URL(r.url));
    assert.deepEqual(gets.filter((u) => /^\/stores\/store-[0-9a-f]{6}$/.test(u.pathname)).map(String), [], 'the page polls a store');
    const pages = gets.filter((u) => u.pathname === '/stores');
    assert.deepEqual(pages.filter((u) => !u.searchParams.get('limit')).map(String), [], 'the page asked for the whole fleet');
    assert.ok(pages.length <= maxPages, `GET /stores ${pages.length} times: ${pages.map(String).join(' ')}`);
    const streams = gets.filter((u) => u.pathname === '/events').length;
    assert.ok(streams <= maxStreams, `/events opened ${streams} times`);
  };

  await step('the page loads under a strict CSP and asks to sign in', async () => {
    const response = await page.goto(server.base + '/');
    assert.equal(response.status(), 200);
    assert.match(response.headers()['content-security-policy'], /default-src 'none'; script-src 'self'/);
    await page.getByRole('heading', { name: 'Sign in to Storefleet' }).waitFor();
    await shot('signin');
  });

  await step('a rejected token shows an error in place', async () => {
    await page.getByLabel('API token').fill('not-the-token');
    const answer = page.waitForResponse((r) => r.url().endsWith('/session') && r.request().method() === 'POST');
    await page.getByRole('button', { name: 'Sign in' }).click();
    assert.equal((await answer).status(), 401);
    const error = page.locator('#signin-error');
    await error.waitFor();
    assert.match(await error.innerText(), /not accepted/);
    assert.equal(await page.getByLabel('API token').getAttribute('aria-invalid'), 'true');
    await shot('signin-rejected');
  });

  await step('signing in sets an HttpOnly SameSite=Strict cookie and keeps the token out of storage', async () => {
    await page.getByLabel('API token').fill(server.token);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Stores', exact: true }).waitFor();
    await page.locator('#stores-empty').waitFor();
    assert.match(await text('#stores-empty'), /No stores yet/);
    assert.equal(await text('#quota-text'), '0 of 1 store');
    assert.match(await text('#who'), /admin/);
    const cookies = await context.cookies();
    const session = cookies.find((c) => c.name === 'storefleet_session');
    assert.ok(session, `no session cookie in ${JSON.stringify(cookies)}`);
    assert.equal(session.httpOnly, true);
    assert.equal(session.sameSite, 'Strict');
    assert.ok(!session.value.includes(server.token));
    const storage = await page.evaluate(() => JSON.stringify({ ...localStorage }) + JSON.stringify({ ...sessionStorage }) + document.cookie);
    assert.ok(!storage.includes(server.token), 'the token is in web storage');
    assert.equal(storage, '{}{}', 'the page stored something or can read the cookie');
    await shot('stores-empty');
  });

  await step('creating a store shows it at once as Provisioning, with a progress timeline', async () => {
    await page.getByLabel('Name', { exact: true }).fill(STORE_NAME);
    const answer = page.waitForResponse((r) => r.url().endsWith('/stores') && r.request().method() === 'POST');
    await page.getByRole('button', { name: 'Create store' }).click();
    const created = await (await answer).json();
    assert.equal(created.name, STORE_NAME);
    storeId = created.store_id;
    assert.match(storeId, /^store-[0-9a-f]{6}$/);
    await row(STORE_NAME).waitFor();
    assert.match(await row(STORE_NAME).innerText(), new RegExp(storeId));
    const status = await row(STORE_NAME).locator('.badge').innerText();
    // It may finish quickly on an idle machine; it must never show anything else.
    assert.ok(['Provisioning', 'Ready'].includes(status.replace(/^\W+/, '').trim()), status);
    await shot('store-created');

    await row(STORE_NAME).getByRole('link', { name: STORE_NAME }).click();
    await page.getByRole('heading', { name: STORE_NAME }).waitFor();
    const steps = await page.locator('#store-timeline li .step').allInnerTexts();
    assert.deepEqual(steps, ['Namespace', 'Helm release', 'Database', 'WordPress', 'WooCommerce setup']);
    await shot('store-provisioning-timeline');
    await page.getByRole('link', { name: '← All stores' }).click();
    await row(STORE_NAME).waitFor();
  });

  await step('the store turns Ready by itself, without reloading or polling', async () => {
    await row(STORE_NAME).locator('.badge', { hasText: 'Ready' }).waitFor({ timeout: READY_MS });
    // The server agrees.
    const { status, body } = await server.api('GET', `/stores/${storeId}`);
    assert.equal(status, 200);
    assert.equal(body.status, 'Ready');
    await until('the quota line to count the store', UI_MS, async () => (await text('#quota-text')) === '1 of 1 store');
    const documents = requests.filter((r) => r.type === 'document');
    assert.equal(documents.length, 1, `the page was reloaded: ${JSON.stringify(documents)}`);
    assertNoPolling(1, 8);
    await shot('store-ready');
  });

  await step('over the quota, creating shows the quota error in place', async () => {
    await page.getByLabel('Name', { exact: true }).fill('One too many');
    const answer = page.waitForResponse((r) => r.url().endsWith('/stores') && r.request().method() === 'POST');
    await page.getByRole('button', { name: 'Create store' }).click();
    assert.equal((await answer).status(), 403);
    const error = page.locator('#create-error');
    await error.waitFor();
    assert.match(await error.innerText(), /Quota reached: the limit of 1 store\(s\) is reached/);
    assert.equal(await row('One too many').count(), 0);
    await shot('quota-exceeded');
  });

  await step('at phone width the list and the store page still work', async () => {
    await page.setViewportSize({ width: 375, height: 812 });
    await row(STORE_NAME).waitFor();
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    assert.ok(overflow <= 0, `the page scrolls sideways by ${overflow}px at 375px`);
    await shot('phone-stores');
    await row(STORE_NAME).getByRole('link', { name: STORE_NAME }).click();
    await page.getByRole('heading', { name: STORE_NAME }).waitFor();
    await shot('phone-store');
    await page.setViewportSize({ width: 1280, height: 900 });
  });

  await step('the store page shows links, conditions and reveals the admin login from the Secret', async () => {
    assert.equal(await page.locator('#store-url').getAttribute('href'), `http://${storeId}.localhost`);
    assert.equal(await page.locator('#store-admin-url').getAttribute('href'), `http://${storeId}.localhost/wp-admin/`);
    const timeline = await page.locator('#store-timeline li').evaluateAll((items) => items.map((li) => li.className));
    assert.deepEqual(timeline, ['done', 'done', 'done', 'done', 'done']);
    const conditions = await page.locator('#conditions-body tr td:first-child').allInnerTexts();
    for (const type of ['NamespaceReady', 'Released', 'WorkloadsReady', 'SetupComplete', 'Ready', 'MailConfigured']) {
      assert.ok(conditions.includes(type), `${type} not in ${conditions}`);
    }
    // This control plane has no SMTP relay: the store page says the store sends no mail.
    const mail = await page.locator('#conditions-body tr', { hasText: 'MailConfigured' }).innerText();
    assert.ok(mail.includes('NoRelay'), mail);
    assert.equal(await page.locator('#creds').isVisible(), false, 'credentials shown before reveal');
    const reveal = page.getByRole('button', { name: 'Reveal admin login' });
    assert.equal(await reveal.getAttribute('aria-expanded'), 'false');
    await reveal.click();
    await page.locator('#creds').waitFor();
    const secret = JSON.parse(await kubectl('get', 'secret', `${storeId}-credentials`, '-n', storeId, '-o', 'json'));
    const decode = (k) => Buffer.from(secret.data[k], 'base64').toString('utf8');
    assert.equal(await text('#cred-user'), decode('wordpress-admin-user'));
    assert.equal(await text('#cred-password'), decode('wordpress-admin-password'));
    assert.equal(await text('#cred-email'), decode('wordpress-admin-email'));
    assert.equal(await page.getByRole('button', { name: 'Hide admin login' }).getAttribute('aria-expanded'), 'true');
    await shot('store-credentials');
  });

  await step('without a backup target, Back up now says so and the button is disabled', async () => {
    await page.locator('#backups-empty').waitFor();
    const button = page.getByRole('button', { name: 'Back up now' });
    assert.equal(await button.isDisabled(), false);
    const answer = page.waitForResponse((r) => r.url().endsWith(`/stores/${storeId}/backups`) && r.request().method() === 'POST');
    await button.click();
    const response = await answer;
    assert.equal(response.status(), 409);
    assert.match((await response.json()).type, /backups-not-configured$/);
    const error = page.locator('#backups-error');
    await error.waitFor();
    assert.match(await error.innerText(), /This platform has no backup target/);
    assert.equal(await button.isDisabled(), true);
    assert.equal(await page.locator('#backups-body tr').count(), 0);
    assert.deepEqual((await server.api('GET', `/stores/${storeId}/backups`)).body, []);
    // No schedule either (the API answers 409 backups-not-configured): nothing shown, no error.
    assert.equal((await server.api('GET', `/stores/${storeId}/backup-schedule`)).status, 409);
    assert.ok(requests.some((r) => r.method === 'GET' && new URL(r.url).pathname === `/stores/${storeId}/backup-schedule`), 'the page never asked for the schedule');
    assert.equal(await page.locator('#backup-schedule-box').isHidden(), true);
    assert.equal(await page.locator('#backup-schedule-error').isHidden(), true);
    await shot('store-no-backup-target');
  });

  await step('the audit log lists what happened to the store, and the quota refusal', async () => {
    await page.getByRole('link', { name: 'Audit entries for this store' }).click();
    await page.getByRole('heading', { name: 'Audit log' }).waitFor();
    await page.locator('#audit-body tr').first().waitFor();
    const actions = await page.locator('#audit-body tr').evaluateAll((rows) => rows.map((r) => r.dataset.action));
    for (const action of ['create', 'ready', 'credentials_revealed']) {
      assert.ok(actions.includes(action), `${action} not in ${actions}`);
    }
    const stores = await page.locator('#audit-body tr td:nth-child(4)').allInnerTexts();
    assert.ok(stores.every((s) => s.trim() === storeId), `filtered by store, got ${stores}`);
    await shot('audit-store');
    await page.getByRole('button', { name: 'All stores' }).click();
    await page.locator('#audit-body tr', { hasText: 'quota-exceeded' }).first().waitFor();
    await shot('audit-all');
  });

  await step('deleting asks for confirmation naming the store; the row goes to Deleting, then disappears', async () => {
    await page.getByRole('link', { name: 'Stores', exact: true }).click();
    await row(STORE_NAME).getByRole('link', { name: STORE_NAME }).click();
    await page.getByRole('button', { name: 'Delete store…' }).click();
    const dialog = page.getByRole('dialog');
    await dialog.waitFor();
    assert.match(await dialog.innerText(), new RegExp(`${STORE_NAME}.*${storeId}`, 's'));
    await shot('delete-confirmation');
    // Esc keeps the store.
    await page.keyboard.press('Escape');
    await dialog.waitFor({ state: 'hidden' });
    assert.equal((await server.api('GET', `/stores/${storeId}`)).body.status, 'Ready');
    await page.getByRole('button', { name: 'Delete store…' }).click();
    await dialog.getByRole('button', { name: `Delete “${STORE_NAME}”` }).click();
    await row(STORE_NAME).locator('.badge', { hasText: 'Deleting' }).waitFor();
    await shot('store-deleting');
    await row(STORE_NAME).waitFor({ state: 'detached', timeout: GONE_MS });
    await page.locator('#stores-empty').waitFor();
    // The quota line is GET /me's count, asked again once the store is gone.
    await until('the quota line to count the store gone', UI_MS, async () => (await text('#quota-text')) === '0 of 1 store');
    assert.equal((await server.api('GET', `/stores/${storeId}`)).status, 404);
    // Without a backup target there are no deleted stores to recover (409 backups-not-configured):
    // the page asked, and shows no section and no error.
    assert.equal((await server.api('GET', '/deleted-stores')).status, 409);
    assert.ok(requests.some((r) => r.method === 'GET' && new URL(r.url).pathname === '/deleted-stores'), 'the page never asked for the deleted stores');
    assert.equal(await page.locator('#deleted').isHidden(), true);
    await shot('store-gone');
  });

  // Sessions are kept in the server's database (docs/dashboard.md): a restart signs nobody out.
  // Before that, this step saw the sign-in form ("Your session has ended") after the restart.
  await step('a lost connection shows in place; after the restart the page reconnects, still signed in', async () => {
    await server.kill();
    const banner = page.locator('#connection');
    await banner.waitFor();
    assert.match(await banner.innerText(), /Connection lost/);
    await shot('connection-lost');
    await server.start();
    await banner.waitFor({ state: 'hidden', timeout: 120_000 });
    await page.locator('#stores-empty').waitFor();
    assert.equal(await page.getByRole('heading', { name: 'Sign in to Storefleet' }).isVisible(), false, 'asked to sign in again');
    assert.equal(await page.evaluate(async () => (await fetch('/me')).status), 200, 'the cookie no longer works');
  });

  await step('signing out ends the session', async () => {
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByRole('heading', { name: 'Sign in to Storefleet' }).waitFor();
    assert.match(await text('#signin-note'), /signed out/);
    const me = await page.evaluate(async () => (await fetch('/me')).status);
    assert.equal(me, 401);
    await shot('signed-out');
  });

  await step('the page talked to no host but its own and broke no CSP rule', async () => {
    const origin = new URL(server.base).origin;
    const foreign = requests.filter((r) => !r.url.startsWith('data:') && new URL(r.url).origin !== origin);
    assert.deepEqual(foreign, [], 'requests to other hosts');
    assert.ok(requests.length > 10, `only ${requests.length} requests recorded`);
    // Reconnection attempts while the server was down count here; a polling loop would make many more.
    assertNoPolling(20, 20);
    assert.deepEqual(problems, []);
  });
});
