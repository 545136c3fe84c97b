// The dashboard's fleet-rollout view (admins only), in Chromium against the real `storefleet serve` on
// the test cluster: a rollout to a broken image shows Paused with the reason and the canary RolledBack,
// Abort (through its dialog) ends it; a second rollout, queued behind the first, is paused from the
// page before it starts, starts Paused once the first is aborted, and Resume runs it to Completed. A
// member sees no Rollouts link and is refused the view. Every state is checked against the API too.
// On the test cluster the kubelet stand-in puts images containing `broken` in ImagePullBackOff.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';

import { ROOT, Server, kubectl, until } from './server.mjs';

const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const SHOTS = path.join(ROOT, 'target/ui-screenshots');
// Generous: 2 shared cores; a rollout gates each store on Ready.
const READY_MS = 300_000;
const ROLLOUT_MS = 420_000;
const UI_MS = 20_000;

/** The API with the admin token (or `token`), JSON in and out. */
async function call(server, method, apiPath, body, token = server.token) {
  const headers = { Authorization: `Bearer ${token}` };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const response = await fetch(`${server.base}${apiPath}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : null };
}

test('dashboard (admin): fleet rollouts with pause, resume and abort', async (t) => {
  mkdirSync(SHOTS, { recursive: true });
  const server = new Server({ maxStores: 2 });
  await server.start();
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
  });
  const rollouts = [];
  t.after(async () => {
    await browser.close().catch(() => {});
    // Rollouts are cluster-scoped objects: remove this run's.
    for (const id of rollouts) await kubectl('delete', 'storerollout', id, '--ignore-not-found').catch(() => {});
    await server.cleanup();
  });

  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, locale: 'en-GB' });
  const page = await context.newPage();
  const problems = [];
  page.on('pageerror', (e) => problems.push(`uncaught: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && /Content.Security.Policy|Refused to/i.test(m.text())) problems.push(`console: ${m.text()}`);
  });
  page.setDefaultTimeout(UI_MS);
  let n = 0;
  const shot = async (name) => page.screenshot({ path: path.join(SHOTS, `rollouts-${String(++n).padStart(2, '0')}-${name}.png`), fullPage: true });
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
  const card = (id) => page.locator(`article[data-rollout="${id}"]`);
  const phaseOf = (id) => card(id).locator('[data-role="phase"]');
  const apiRollout = async (id) => (await call(server, 'GET', `/rollouts/${id}`)).body;

  let storeId;
  let broken;
  let good;

  await step('a store, Ready', async () => {
    const created = await call(server, 'POST', '/stores', { name: 'Rollout shop' });
    assert.equal(created.status, 202, JSON.stringify(created.body));
    storeId = created.body.store_id;
    await until(`${storeId} Ready`, READY_MS, async () => (await call(server, 'GET', `/stores/${storeId}`)).body?.status === 'Ready', 1000);
  });

  await step('an admin signs in and sees the Rollouts link; no rollouts yet', async () => {
    await page.goto(server.base + '/');
    await page.getByLabel('API token').fill(server.token);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Stores', exact: true }).waitFor();
    await page.getByRole('link', { name: 'Rollouts' }).click();
    await page.getByRole('heading', { name: 'Fleet rollouts' }).waitFor();
    await page.locator('#rollouts-empty').waitFor();
    await shot('empty');
  });

  await step('a rollout to a broken image shows Paused, the reason, and the canary rolled back', async () => {
    const created = await call(server, 'POST', '/rollouts', {
      target: 'wp-ui-broken', values: { wordpress: { image: { tag: '6.8.3-broken' } } }, gate_timeout_seconds: 240,
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    broken = created.body.rollout_id;
    rollouts.push(broken);
    // The page reloads the list by itself while a rollout is unfinished: no click needed after Refresh.
    await page.getByRole('button', { name: 'Refresh' }).click();
    await card(broken).waitFor();
    await until(`${broken} Paused on the page`, ROLLOUT_MS, async () => (await phaseOf(broken).innerText()) === 'Paused', 1000);
    const shown = await card(broken).innerText();
    assert.match(shown, /wordpress\.image\.tag=6\.8\.3-broken/);
    assert.match(shown, new RegExp(storeId));
    const row = card(broken).locator(`tr[data-store="${storeId}"]`);
    assert.equal(await row.getAttribute('data-step'), 'RolledBack');
    assert.match(await row.innerText(), /Rolled back/);
    assert.equal(await card(broken).locator('[data-role="progress"]').innerText(), '0/1');
    assert.equal(await card(broken).getByRole('button', { name: 'Pause' }).isDisabled(), true);
    assert.equal(await card(broken).getByRole('button', { name: 'Resume' }).isDisabled(), false);
    const api = await apiRollout(broken);
    assert.equal(api.phase, 'Paused');
    const message = (await card(broken).locator('[data-role="message"]').innerText()).toLowerCase();
    assert.ok(message.includes(api.message.toLowerCase()), `the page says ${message}, the API ${api.message}`);
    await shot('broken-paused');
  });

  await step('a second rollout waits behind it; Pause on the page pauses it before it starts', async () => {
    const created = await call(server, 'POST', '/rollouts', {
      target: 'wp-ui-good', values: { wordpress: { image: { tag: '6.8.3-ui-r2' } } }, gate_timeout_seconds: 240,
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    good = created.body.rollout_id;
    rollouts.push(good);
    await page.getByRole('button', { name: 'Refresh' }).click();
    await card(good).waitFor();
    assert.equal(await phaseOf(good).innerText(), 'Waiting');
    assert.match(await card(good).innerText(), /one rollout at a time/);
    const answer = page.waitForResponse((r) => r.url().endsWith(`/rollouts/${good}/pause`) && r.request().method() === 'POST');
    await card(good).getByRole('button', { name: 'Pause' }).click();
    assert.equal((await answer).status(), 200);
    await until('Resume enabled', UI_MS, async () => !(await card(good).getByRole('button', { name: 'Resume' }).isDisabled()));
    assert.equal((await apiRollout(good)).paused, true);
  });

  await step('Abort asks first (Esc keeps it), then ends the broken rollout', async () => {
    await card(broken).getByRole('button', { name: 'Abort…' }).click();
    const dialog = page.locator('#abort-dialog');
    await dialog.waitFor();
    assert.match(await dialog.innerText(), new RegExp(`Abort rollout ${broken}\\?`));
    await shot('abort-dialog');
    await page.keyboard.press('Escape');
    await dialog.waitFor({ state: 'hidden' });
    assert.equal((await apiRollout(broken)).aborted, false, 'Esc aborted it');
    await card(broken).getByRole('button', { name: 'Abort…' }).click();
    const answer = page.waitForResponse((r) => r.url().endsWith(`/rollouts/${broken}/abort`) && r.request().method() === 'POST');
    await page.getByRole('button', { name: `Abort ${broken}` }).click();
    assert.equal((await answer).status(), 200);
    await until(`${broken} Aborted on the page`, ROLLOUT_MS, async () => (await phaseOf(broken).innerText()) === 'Aborted', 1000);
    for (const name of ['Pause', 'Resume', 'Abort…']) {
      assert.equal(await card(broken).getByRole('button', { name }).isDisabled(), true, `${name} still enabled`);
    }
    assert.equal((await apiRollout(broken)).phase, 'Aborted');
  });

  await step('the queued rollout starts Paused; Resume runs it to Completed', async () => {
    await until(`${good} Paused on the page`, ROLLOUT_MS, async () => (await phaseOf(good).innerText()) === 'Paused', 1000);
    assert.equal(await card(good).locator(`tr[data-store="${storeId}"]`).getAttribute('data-step'), 'Pending');
    await shot('good-paused');
    const answer = page.waitForResponse((r) => r.url().endsWith(`/rollouts/${good}/resume`) && r.request().method() === 'POST');
    await card(good).getByRole('button', { name: 'Resume' }).click();
    assert.equal((await answer).status(), 200);
    await until(`${good} Completed on the page`, ROLLOUT_MS, async () => (await phaseOf(good).innerText()) === 'Completed', 1000);
    assert.equal(await card(good).locator('[data-role="progress"]').innerText(), '1/1');
    assert.equal(await card(good).locator(`tr[data-store="${storeId}"]`).getAttribute('data-step'), 'Upgraded');
    const api = await apiRollout(good);
    assert.equal(api.phase, 'Completed');
    assert.equal(api.stores[0].step, 'Upgraded');
    await shot('good-completed');
  });

  await step('every action is in the audit log', async () => {
    const { body: entries } = await call(server, 'GET', '/audit?limit=200');
    const rolloutEntries = entries.filter((e) => e.action === 'rollout').map((e) => `${e.outcome} ${e.detail}`);
    for (const [outcome, id] of [['pause', good], ['abort', broken], ['resume', good], ['rolled_back', broken], ['completed', good]]) {
      assert.ok(rolloutEntries.some((e) => e.startsWith(outcome) && e.includes(id)), `no ${outcome} of ${id} in ${JSON.stringify(rolloutEntries, null, 1)}`);
    }
  });

  await step('a member sees no Rollouts link and is refused the view', async () => {
    const user = await call(server, 'POST', '/users', { name: 'mia', role: 'member', max_stores: 1 });
    assert.equal(user.status, 201, JSON.stringify(user.body));
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByLabel('API token').fill(user.body.token);
    await page.getByRole('button', { name: 'Sign in' }).click();
    // Still on #/rollouts: the member lands on the view, which shows the API's refusal, no rollout.
    await page.locator('#rollouts-error').waitFor();
    assert.match(await page.locator('#rollouts-error').innerText(), /Only admins/);
    assert.match(await page.locator('#who').innerText(), /mia \(member\)/);
    assert.equal(await page.locator('#nav-rollouts').isHidden(), true);
    assert.equal(await page.locator('article[data-rollout]').count(), 0);
    await shot('member-refused');
  });

  await step('no uncaught error and no CSP violation', async () => {
    assert.deepEqual(problems, []);
  });
});
