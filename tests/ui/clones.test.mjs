// Clones, the backup schedule and deleted stores in the dashboard, as a member (a shop owner) sees
// them, in Chromium against the real `storefleet serve` on the test cluster with a filesystem backup
// target. The kubelet stand-in ends Job pods without running them, so the agent never runs here: a
// backup the API asked for succeeds only because the test writes its data at that id first, as the
// agent would (`write-test-backup`, crates/testkit), before its Job ends; the controller then verifies
// it and marks it Succeeded itself. That is how the source store's backup and its final backup (taken
// when it is deleted) come to be. A clone's own restore cannot run either, so a clone ends Failed
// here (docs/backups.md, "Clones"): what the test checks is that the page made the store from the
// backup it named, as the API and the Store object say.
//
// The page: the Backups panel's "Automatic backups" select (GET and PUT /stores/{id}/backup-schedule;
// hourly is refused to members, in the API's words), Clone… on a Succeeded backup (POST /stores with
// from_backup, then the new store's page; a refusal stays in the dialog), and the stores page's
// "Deleted stores" with Recover….
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';

import { ROOT, Server, kubectl, until } from './server.mjs';

const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const SHOTS = path.join(ROOT, 'target/ui-screenshots');
// Generous: 2 shared cores.
const READY_MS = 300_000;
const GONE_MS = 240_000;
const JOB_MS = 180_000;
const UI_MS = 20_000;
const SOURCE = 'Café source 🛒';
const MEMBER = 'shop-owner';

async function call(server, token, method, apiPath, body) {
  const headers = { Authorization: `Bearer ${token}` };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const response = await fetch(`${server.base}${apiPath}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : null };
}

const finished = (state) => state === 'Succeeded' || state === 'Failed';
// The page writes the server's lower-case messages as sentences.
const sentenceOf = (message) => `${message.charAt(0).toUpperCase()}${message.slice(1)}${/[.!?]$/.test(message) ? '' : '.'}`;
const isSchedulePut = (r, storeId) => r.url().endsWith(`/stores/${storeId}/backup-schedule`) && r.request().method() === 'PUT';
const isCreate = (r) => new URL(r.url()).pathname === '/stores' && r.request().method() === 'POST';

test('dashboard: backup schedule, Clone…, deleted stores and Recover…', async (t) => {
  mkdirSync(SHOTS, { recursive: true });
  for (const name of readdirSync(SHOTS).filter((f) => f.startsWith('clones-'))) rmSync(path.join(SHOTS, name));
  // The platform's limit: the source and one copy; after the source is gone, the copy and the recovered one.
  const server = new Server({ maxStores: 2, backups: true });
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
  const page = await context.newPage();
  const problems = [];
  page.on('pageerror', (e) => problems.push(`uncaught: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && /Content.Security.Policy|Refused to/i.test(m.text())) problems.push(`console: ${m.text()}`);
  });
  page.setDefaultTimeout(UI_MS);
  let n = 0;
  const shot = async (name) => page.screenshot({ path: path.join(SHOTS, `clones-${String(++n).padStart(2, '0')}-${name}.png`), fullPage: true });
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

  let token;
  let storeId;
  let good;
  let copyId;
  let finalBackup;
  let recoveredId;
  const member = (method, apiPath, body) => call(server, token, method, apiPath, body);
  const apiStore = async (id) => (await member('GET', `/stores/${id}`)).body;
  const apiSchedule = async () => (await member('GET', `/stores/${storeId}/backup-schedule`)).body;
  const backupRow = (id) => page.locator(`#backups-body tr[data-backup="${id}"]`);
  const select = () => page.getByLabel('Automatic backups');
  const cloneDialog = page.locator('#clone-dialog');
  // A time as the page writes it (its own locale and format helper, format.js dateTime).
  const shownTime = (iso) => page.evaluate((at) => new Date(at).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'medium' }), iso);
  // What the Store object says it was made from (the API's annotation, written in the same create).
  const cloneFrom = async (id) => {
    const cr = JSON.parse(await kubectl('get', 'stores.storefleet.dev', id, '-o', 'json'));
    const raw = cr.metadata.annotations?.['storefleet.dev/clone-from'];
    assert.ok(raw, `${id} has no clone-from annotation: ${JSON.stringify(cr.metadata.annotations)}`);
    return JSON.parse(raw);
  };
  // The filesystem target's claim in a new store's namespace, as for any store (server.backupClaim):
  // a clone's restore Job mounts it.
  const claimFor = async (id) => {
    await until(`${id}'s namespace`, READY_MS, async () => kubectl('get', 'namespace', id, '-o', 'name').then(() => true, () => false), 1000);
    await server.backupClaim(id);
  };
  const judged = (storePath, id) => until(`${id} judged`, JOB_MS, async () => {
    const b = (await member('GET', `${storePath}/backups/${id}`)).body;
    return b && finished(b.state) ? b : null;
  }, 500);

  await step('a member with a Ready store and a Succeeded backup of it, asked for through the API', async () => {
    const user = await call(server, server.token, 'POST', '/users', { name: MEMBER, role: 'member', max_stores: 2 });
    assert.equal(user.status, 201, JSON.stringify(user.body));
    token = user.body.token;
    const created = await member('POST', '/stores', { name: SOURCE });
    assert.equal(created.status, 202, JSON.stringify(created.body));
    storeId = created.body.store_id;
    await until(`${storeId} Ready`, READY_MS, async () => (await apiStore(storeId))?.status === 'Ready', 1000);
    await server.backupClaim(storeId);
    const asked = await member('POST', `/stores/${storeId}/backups`);
    assert.equal(asked.status, 202, JSON.stringify(asked.body));
    good = asked.body.backup_id;
    // Its data, as the agent would write it, before the stand-in ends its Job.
    await server.writeBackup(storeId, good);
    const b = await judged(`/stores/${storeId}`, good);
    assert.equal(b.state, 'Succeeded', `the controller said ${b.state}: ${b.message}`);
  });

  await step('the Backups panel shows the schedule, the platform\'s default, and when the next backup is', async () => {
    await page.goto(server.base + '/');
    await page.getByLabel('API token').fill(token);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Stores', exact: true }).waitFor();
    await page.goto(`${server.base}/#/stores/${storeId}`);
    await backupRow(good).waitFor();
    await select().waitFor();
    const api = await apiSchedule();
    assert.equal(api.source, 'platform', JSON.stringify(api));
    assert.equal(await select().inputValue(), 'platform');
    assert.equal(await select().locator('option:checked').textContent(), `Platform default (${api.platform_schedule})`);
    assert.equal(await select().locator('option[value="hourly"]').textContent(), 'Hourly (admins only)');
    assert.ok(api.next_at, JSON.stringify(api));
    const next = await page.locator('#backup-schedule-next').innerText();
    assert.ok(next.includes(`Next automatic backup: ${await shownTime(api.next_at)}`), next);
    assert.ok(next.includes(`last ${api.keep_daily} days and ${api.keep_weekly} weeks`), next);
    await shot('schedule');
  });

  await step('choosing Weekly PUTs it: the API then says weekly, the store\'s own, and the page its next time', async () => {
    const answer = page.waitForResponse((r) => isSchedulePut(r, storeId));
    await select().selectOption('weekly');
    const response = await answer;
    assert.equal(response.status(), 200);
    assert.deepEqual(response.request().postDataJSON(), { schedule: 'weekly' });
    const api = await apiSchedule();
    assert.deepEqual([api.schedule, api.source], ['weekly', 'store']);
    const time = await shownTime(api.next_at);
    await until('the new next time on the page', UI_MS, async () => (await page.locator('#backup-schedule-next').innerText()).includes(time));
    assert.equal(await select().inputValue(), 'weekly');
    assert.equal(await select().isDisabled(), false);
  });

  await step('Hourly is for admins: the API\'s refusal is shown and the select goes back to Weekly', async () => {
    const answer = page.waitForResponse((r) => isSchedulePut(r, storeId));
    await select().selectOption('hourly');
    const response = await answer;
    assert.equal(response.status(), 403);
    const problem = await response.json();
    assert.match(problem.type, /admin-only$/);
    const error = page.locator('#backup-schedule-error');
    await error.waitFor();
    assert.equal(await error.innerText(), `Not changed: ${sentenceOf(problem.detail)}`);
    await until('the select back on Weekly', UI_MS, async () => (await select().inputValue()) === 'weekly');
    assert.equal((await apiSchedule()).schedule, 'weekly');
    await shot('schedule-hourly-refused');
  });

  await step('Off, then the platform\'s default again (schedule null)', async () => {
    let answer = page.waitForResponse((r) => isSchedulePut(r, storeId));
    await select().selectOption('off');
    assert.equal((await answer).status(), 200);
    let api = await apiSchedule();
    assert.deepEqual([api.schedule, api.source, api.next_at], ['off', 'store', null]);
    await until('"Off" on the page', UI_MS, async () => /^Off: this store is not backed up on its own/.test(await page.locator('#backup-schedule-next').innerText()));
    assert.equal(await page.locator('#backup-schedule-error').isHidden(), true, 'the earlier refusal is still shown');
    answer = page.waitForResponse((r) => isSchedulePut(r, storeId));
    await select().selectOption('platform');
    const response = await answer;
    assert.equal(response.status(), 200);
    assert.deepEqual(response.request().postDataJSON(), { schedule: null });
    api = await apiSchedule();
    assert.deepEqual([api.schedule, api.source], [api.platform_schedule, 'platform']);
    const time = await shownTime(api.next_at);
    await until('the next time on the page', UI_MS, async () => (await page.locator('#backup-schedule-next').innerText()).includes(time));
  });

  await step('Clone… on the Succeeded backup asks the new store\'s name ("Copy of …"); Esc makes nothing', async () => {
    const b = (await member('GET', `/stores/${storeId}/backups/${good}`)).body;
    const opener = backupRow(good).getByRole('button', { name: /^Clone/ });
    assert.equal(await opener.isDisabled(), false);
    await opener.click();
    await cloneDialog.waitFor();
    assert.equal(await page.locator('#clone-dialog-title').innerText(), `Clone the backup of ${await shownTime(b.created_at)}?`);
    assert.match(await page.locator('#clone-dialog-text').innerText(), new RegExp(`“${SOURCE}”.*\\(${b.size}\\)`));
    assert.equal(await page.getByLabel('Name of the new store').inputValue(), `Copy of ${SOURCE}`);
    await shot('clone-dialog');
    await page.keyboard.press('Escape');
    await cloneDialog.waitFor({ state: 'hidden' });
    assert.equal(await page.evaluate(() => document.activeElement?.dataset.backupAction), `${good}:clone`, 'focus did not return to Clone');
    const mine = (await member('GET', '/stores')).body;
    assert.deepEqual((mine.items ?? mine).map((s) => s.store_id), [storeId]);
  });

  await step('Create the copy: POST /stores from the backup, then the new store\'s page; the store is a clone of it', async () => {
    await backupRow(good).getByRole('button', { name: /^Clone/ }).click();
    await cloneDialog.waitFor();
    const answer = page.waitForResponse(isCreate);
    await page.getByRole('button', { name: 'Create the copy' }).click();
    const response = await answer;
    assert.equal(response.status(), 202);
    assert.deepEqual(response.request().postDataJSON(), { name: `Copy of ${SOURCE}`, from_backup: good });
    assert.ok(response.request().headers()['idempotency-key'], 'no Idempotency-Key');
    copyId = (await response.json()).store_id;
    await cloneDialog.waitFor({ state: 'hidden' });
    await until('the new store\'s page', UI_MS, async () => new URL(page.url()).hash === `#/stores/${copyId}`);
    await until('its name as the title', UI_MS, async () => (await page.locator('#store-title').innerText()) === `Copy of ${SOURCE}`);
    const api = await apiStore(copyId);
    assert.equal(api.name, `Copy of ${SOURCE}`);
    assert.ok(['Provisioning', 'Restoring'].includes(api.status), api.status);
    assert.ok(['Provisioning', 'Restoring'].includes(await page.locator('#store-badge').innerText()));
    const from = await cloneFrom(copyId);
    assert.deepEqual([from.backupId, from.storeId], [good, storeId]);
    await shot('cloned');
    await claimFor(copyId);
  });

  await step('a refusal stays in the dialog, in the API\'s words (the quota: two stores)', async () => {
    await page.goto(`${server.base}/#/stores/${storeId}`);
    await backupRow(good).getByRole('button', { name: /^Clone/ }).click();
    await cloneDialog.waitFor();
    await page.getByLabel('Name of the new store').fill('One copy too many');
    const answer = page.waitForResponse(isCreate);
    await page.getByRole('button', { name: 'Create the copy' }).click();
    const response = await answer;
    assert.equal(response.status(), 403);
    const problem = await response.json();
    assert.match(problem.type, /quota-exceeded$/);
    const error = page.locator('#clone-dialog-error');
    await error.waitFor();
    assert.equal(await error.innerText(), `Quota reached: ${sentenceOf(problem.detail)}`);
    assert.equal(await cloneDialog.isVisible(), true);
    assert.equal(new URL(page.url()).hash, `#/stores/${storeId}`);
    await shot('clone-refused');
    await page.getByRole('button', { name: 'Cancel' }).click();
    await cloneDialog.waitFor({ state: 'hidden' });
    const mine = (await member('GET', '/stores')).body;
    assert.equal((mine.items ?? mine).length, 2);
  });

  await step('deleting the source from its page takes a final backup, then the store goes', async () => {
    await page.getByRole('button', { name: 'Delete store…' }).click();
    const answer = page.waitForResponse((r) => r.url().endsWith(`/stores/${storeId}`) && r.request().method() === 'DELETE');
    await page.locator('#delete-dialog').getByRole('button', { name: `Delete “${SOURCE}”` }).click();
    const response = await answer;
    assert.equal(response.status(), 202);
    finalBackup = (await response.json()).final_backup;
    assert.ok(finalBackup, 'no final backup');
    // Its data, as the agent would write it, before the stand-in ends its Job.
    await server.writeBackup(storeId, finalBackup);
    await until(`${storeId} gone`, GONE_MS, async () => (await member('GET', `/stores/${storeId}`)).status === 404, 1000);
  });

  await step('the stores page lists it under Deleted stores with its final backup; Recover… makes a store from it', async () => {
    const listed = (await member('GET', '/deleted-stores')).body;
    const gone = listed.find((d) => d.store_id === storeId);
    assert.ok(gone, JSON.stringify(listed));
    assert.equal(gone.final_backup.backup_id, finalBackup);
    // Still on the stores page (the delete went there): the list came when the store was gone.
    assert.equal(new URL(page.url()).hash, '#/stores');
    const row = page.locator(`#deleted-body tr[data-store-id="${storeId}"]`);
    await row.waitFor();
    assert.equal(await row.getAttribute('data-backup'), finalBackup);
    assert.equal(await row.locator('[data-role="backup"]').innerText(), finalBackup);
    assert.equal(await row.locator('[data-role="size"]').innerText(), gone.final_backup.size);
    assert.equal(await row.locator('[data-role="kept-until"]').innerText(), await shownTime(gone.kept_until));
    assert.match(await row.innerText(), new RegExp(`${SOURCE}[\\s\\S]*${storeId}[\\s\\S]*${MEMBER}`));
    await shot('deleted-stores');

    await row.getByRole('button', { name: /^Recover/ }).click();
    await cloneDialog.waitFor();
    assert.equal(await page.locator('#clone-dialog-title').innerText(), `Recover “${SOURCE}”?`);
    assert.equal(await page.getByLabel('Name of the new store').inputValue(), SOURCE);
    const answer = page.waitForResponse(isCreate);
    await page.getByRole('button', { name: 'Recover the store' }).click();
    const response = await answer;
    assert.equal(response.status(), 202);
    assert.deepEqual(response.request().postDataJSON(), { name: SOURCE, from_backup: finalBackup });
    recoveredId = (await response.json()).store_id;
    assert.notEqual(recoveredId, storeId);
    await until('the recovered store\'s page', UI_MS, async () => new URL(page.url()).hash === `#/stores/${recoveredId}`);
    await until('its name as the title', UI_MS, async () => (await page.locator('#store-title').innerText()) === SOURCE);
    const from = await cloneFrom(recoveredId);
    assert.deepEqual([from.backupId, from.storeId], [finalBackup, storeId]);
    assert.equal((await apiStore(recoveredId)).name, SOURCE);
    await shot('recovered');
    await claimFor(recoveredId);
  });

  await step('each new store\'s restore reads the source store\'s backup; the page ends where the API does', async () => {
    for (const [id, backup] of [[copyId, good], [recoveredId, finalBackup]]) {
      const restores = await until(`${id}'s restore`, READY_MS, async () => {
        const list = (await member('GET', `/stores/${id}/restores`)).body;
        return list?.length ? list : null;
      }, 1000);
      assert.equal(restores.length, 1, JSON.stringify(restores));
      assert.deepEqual([restores[0].backup_id, restores[0].source_store_id], [backup, storeId]);
    }
    // The stand-in runs no agent: the recovered store's restore ends Failed, and so does the store.
    const settled = await until(`${recoveredId} settled`, JOB_MS, async () => {
      const s = await apiStore(recoveredId);
      return s.status === 'Ready' || s.status === 'Failed' ? s : null;
    }, 1000);
    await until('the page to show it', UI_MS, async () => (await page.locator('#store-badge').innerText()) === settled.status);
    await shot('recovered-settled');
  });

  await step('at phone width the stores page with its deleted stores does not scroll sideways', async () => {
    await page.setViewportSize({ width: 375, height: 812 });
    await page.goto(`${server.base}/#/stores`);
    await page.locator(`#deleted-body tr[data-store-id="${storeId}"]`).waitFor();
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    assert.ok(overflow <= 0, `the page scrolls sideways by ${overflow}px at 375px`);
    await shot('phone');
    await page.setViewportSize({ width: 1280, height: 900 });
  });

  await step('no uncaught error and no CSP violation', async () => {
    assert.deepEqual(problems, []);
  });
});
