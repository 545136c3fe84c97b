// The store page's Backups panel, in Chromium against the real `storefleet serve` on the test cluster,
// with a filesystem backup target (as tests/backups_restore.rs has). The kubelet stand-in ends Job
// pods Succeeded without running them, so the agent never runs here: a backup asked for from the page
// ends Failed with "the agent reported success but no manifest was found", and the page must say so.
// A Succeeded backup comes from `write-test-backup` (crates/testkit), which writes a sealed backup with
// the product's archive writer before its StoreBackup object exists: the controller then verifies it
// and marks it Succeeded itself. The test drives Back up now, Restore… (Cancel changes nothing; a
// refusal stays in the dialog; confirming takes the store through Restoring with the actions
// disabled, and the page ends where the API says the restore ended) and Delete…, checking each state
// against the API.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';

import { ROOT, Server, until } from './server.mjs';

const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const SHOTS = path.join(ROOT, 'target/ui-screenshots');
// Generous: 2 shared cores.
const READY_MS = 300_000;
const JOB_MS = 180_000;
const UI_MS = 20_000;
// crates/storefleet/src/backups/controller.rs NO_MANIFEST: what the stand-in's "successful" Job means.
const NO_MANIFEST = 'the agent reported success but no manifest was found';

async function call(server, method, apiPath, body) {
  const headers = { Authorization: `Bearer ${server.token}` };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const response = await fetch(`${server.base}${apiPath}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : null };
}

const finished = (state) => state === 'Succeeded' || state === 'Failed';
// The page writes the server's lower-case messages as sentences ("The agent …found.").
const sentenceOf = (message) => `${message.charAt(0).toUpperCase()}${message.slice(1)}${/[.!?]$/.test(message) ? '' : '.'}`;

test('dashboard: a store\'s backups, back up now, restore and delete', async (t) => {
  mkdirSync(SHOTS, { recursive: true });
  const server = new Server({ maxStores: 1, backups: true });
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
  const listGets = [];
  page.on('request', (r) => {
    if (r.method() === 'GET' && /\/stores\/[^/]+\/backups$/.test(new URL(r.url()).pathname)) listGets.push(Date.now());
  });
  page.setDefaultTimeout(UI_MS);
  let n = 0;
  const shot = async (name) => page.screenshot({ path: path.join(SHOTS, `backups-${String(++n).padStart(2, '0')}-${name}.png`), fullPage: true });
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
  let good;
  let asked;
  const row = (id) => page.locator(`#backups-body tr[data-backup="${id}"]`);
  const stateOf = async (id) => row(id).getAttribute('data-state');
  const apiBackup = async (id) => (await call(server, 'GET', `/stores/${storeId}/backups/${id}`)).body;
  const apiRestores = async () => (await call(server, 'GET', `/stores/${storeId}/restores`)).body;
  const apiStore = async () => (await call(server, 'GET', `/stores/${storeId}`)).body;
  // A time as the page writes it (its own locale and format helper, format.js dateTime).
  const shownTime = (iso) => page.evaluate((at) => new Date(at).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'medium' }), iso);
  const restoreDone = async () => {
    const list = await apiRestores();
    const last = list.at(-1);
    return last && finished(last.state) && (await apiStore()).status === 'Ready' ? last : null;
  };

  await step('a Ready store, with the claim a filesystem target needs in its namespace', async () => {
    const created = await call(server, 'POST', '/stores', { name: 'Backed-up shop' });
    assert.equal(created.status, 202, JSON.stringify(created.body));
    storeId = created.body.store_id;
    await until(`${storeId} Ready`, READY_MS, async () => (await apiStore())?.status === 'Ready', 1000);
    await server.backupClaim(storeId);
  });

  await step('a sealed backup on the target: the controller verifies it and marks it Succeeded', async () => {
    good = await server.sealedBackup(storeId);
    const b = await until(`${good} judged`, JOB_MS, async () => {
      const b = await apiBackup(good);
      return b && finished(b.state) ? b : null;
    }, 1000);
    assert.equal(b.state, 'Succeeded', `the controller said ${b.state}: ${b.message}`);
  });

  await step('the store page lists the backup with its time, size and state', async () => {
    await page.goto(server.base + '/');
    await page.getByLabel('API token').fill(server.token);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Stores', exact: true }).waitFor();
    await page.goto(`${server.base}/#/stores/${storeId}`);
    await page.getByRole('heading', { name: 'Backups' }).waitFor();
    await row(good).waitFor();
    const api = await apiBackup(good);
    assert.equal(await stateOf(good), 'Succeeded');
    assert.equal(await row(good).locator('[data-role="state"]').innerText(), 'Succeeded');
    assert.equal(await row(good).locator('[data-role="size"]').innerText(), api.size);
    assert.equal(await row(good).locator('[data-role="message"]').count(), 0, 'a Succeeded backup shows a step message');
    const text = await row(good).innerText();
    assert.ok(text.includes(await shownTime(api.created_at)), `no start time in ${text}`);
    assert.ok(text.includes(await shownTime(api.finished_at)), `no end time in ${text}`);
    assert.equal(await page.getByRole('button', { name: 'Back up now' }).isDisabled(), false);
    assert.equal(await row(good).getByRole('button', { name: /^Restore/ }).isDisabled(), false);
    // Nothing is unfinished: the panel does not poll.
    const before = listGets.length;
    await new Promise((r) => setTimeout(r, 7_000));
    assert.equal(listGets.length, before, 'the panel polls with every backup finished');
    await shot('listed');
  });

  await step('Back up now: the row appears at once as Pending, then ends Failed with the controller\'s message', async () => {
    await page.evaluate(() => {
      // Every state each row showed, in order: the first one must be the POST's answer.
      window.seenStates = {};
      const record = () => {
        for (const tr of document.querySelectorAll('#backups-body tr')) {
          const seen = (window.seenStates[tr.dataset.backup] ??= []);
          if (seen.at(-1) !== tr.dataset.state) seen.push(tr.dataset.state);
        }
      };
      new MutationObserver(record).observe(document.getElementById('backups-body'), { childList: true, subtree: true, attributes: true });
    });
    const answer = page.waitForResponse((r) => r.url().endsWith(`/stores/${storeId}/backups`) && r.request().method() === 'POST');
    await page.getByRole('button', { name: 'Back up now' }).click();
    const response = await answer;
    assert.equal(response.status(), 202);
    asked = (await response.json()).backup_id;
    await row(asked).waitFor({ timeout: 1_000 });
    assert.equal((await page.evaluate((id) => window.seenStates[id], asked))[0], 'Pending');
    // Newest first.
    assert.equal(await page.locator('#backups-body tr').first().getAttribute('data-backup'), asked);
    await shot('asked');
    // It reloads by itself while the backup is unfinished: no click, no reload of the page.
    await until(`${asked} Failed on the page`, JOB_MS, async () => (await stateOf(asked)) === 'Failed', 500);
    const api = await apiBackup(asked);
    assert.equal(api.state, 'Failed');
    assert.equal(api.message, NO_MANIFEST);
    assert.equal(await row(asked).locator('[data-role="message"]').innerText(), sentenceOf(NO_MANIFEST));
    assert.equal(await row(asked).getByRole('button', { name: /^Restore/ }).count(), 0, 'a failed backup offers Restore');
    assert.equal(await row(asked).getByRole('button', { name: /^Delete/ }).isDisabled(), false);
    await shot('asked-failed');
  });

  await step('Restore… names the backup\'s time and size; Cancel changes nothing', async () => {
    const api = await apiBackup(good);
    const time = await shownTime(api.created_at);
    const opener = row(good).getByRole('button', { name: /^Restore/ });
    await opener.click();
    const dialog = page.locator('#restore-dialog');
    await dialog.waitFor();
    assert.equal(await page.locator('#restore-dialog-title').innerText(), `Restore the backup of ${time}?`);
    const text = await page.locator('#restore-dialog-text').innerText();
    assert.ok(text.includes(`backup of ${time} (${api.size})`), text);
    assert.match(text, /safety backup/);
    assert.match(text, /offline/);
    await shot('restore-dialog');
    await page.getByRole('button', { name: 'Cancel' }).click();
    await dialog.waitFor({ state: 'hidden' });
    assert.equal(await page.evaluate(() => document.activeElement?.dataset.backupAction), `${good}:restore`, 'focus did not return to Restore');
    assert.deepEqual(await apiRestores(), []);
    assert.equal((await apiStore()).status, 'Ready');
    assert.equal(await page.locator('#restore-last').isHidden(), true);
  });

  await step('a refusal stays in the dialog, in the API\'s words', async () => {
    await row(good).getByRole('button', { name: /^Restore/ }).click();
    await page.locator('#restore-dialog').waitFor();
    // Another client restores first: the page's own request is then refused (409).
    const first = await call(server, 'POST', `/stores/${storeId}/restore`, { backupId: good });
    assert.equal(first.status, 202, JSON.stringify(first.body));
    const answer = page.waitForResponse((r) => r.url().endsWith(`/stores/${storeId}/restore`) && r.request().method() === 'POST');
    await page.getByRole('button', { name: 'Restore this backup' }).click();
    const response = await answer;
    assert.equal(response.status(), 409);
    const problem = await response.json();
    const error = page.locator('#restore-dialog-error');
    await error.waitFor();
    assert.equal(await error.innerText(), `Not restored: ${sentenceOf(problem.detail)}`);
    assert.equal(await page.locator('#restore-dialog').isVisible(), true);
    await shot('restore-refused');
    await page.getByRole('button', { name: 'Cancel' }).click();
    // That restore runs on; the page shows how it ended, as the API says.
    const last = await until('the first restore to end', JOB_MS, restoreDone, 1000);
    assert.equal(last.restore_id, first.body.restore_id);
    await until('the page to show it', UI_MS, async () => (await page.locator('#restore-last').getAttribute('data-state')) === last.state);
    assert.equal(await page.locator('#restore-last [data-role="restore-message"]').innerText(), sentenceOf(last.message));
  });

  await step('Restore from the page: Restoring with the actions disabled, then where the API says it ended', async () => {
    await until('Restore enabled again', UI_MS, async () => !(await row(good).getByRole('button', { name: /^Restore/ }).isDisabled()));
    const before = (await apiRestores()).length;
    await row(good).getByRole('button', { name: /^Restore/ }).click();
    const answer = page.waitForResponse((r) => r.url().endsWith(`/stores/${storeId}/restore`) && r.request().method() === 'POST');
    await page.getByRole('button', { name: 'Restore this backup' }).click();
    const response = await answer;
    assert.equal(response.status(), 202);
    const restoreId = (await response.json()).restore_id;
    await page.locator('#restore-dialog').waitFor({ state: 'hidden' });
    await until('Restoring on the page', JOB_MS, async () => (await page.locator('#store-badge').innerText()) === 'Restoring', 100);
    assert.equal(await page.getByRole('button', { name: 'Back up now' }).isDisabled(), true);
    for (const b of await page.locator('#backups-body button').all()) {
      assert.equal(await b.isDisabled(), true, `${await b.innerText()} enabled while Restoring`);
    }
    assert.match(await page.locator('#backups-note').innerText(), /restore runs/);
    await shot('restoring');
    const last = await until('the restore to end', JOB_MS, restoreDone, 1000);
    assert.equal(last.restore_id, restoreId);
    assert.equal((await apiRestores()).length, before + 1);
    await until('the page to show it', UI_MS, async () => (await page.locator('#restore-last').getAttribute('data-state')) === last.state
      && (await page.locator('#store-badge').innerText()) === 'Ready');
    assert.equal(await page.locator('#restore-last [data-role="restore-state"]').innerText(), last.state);
    assert.equal(await page.locator('#restore-last [data-role="restore-message"]').innerText(), sentenceOf(last.message));
    // The safety backup it took is one of the store's backups, on the page as in the API.
    assert.ok(last.safety_backup, JSON.stringify(last));
    const safety = await apiBackup(last.safety_backup);
    await until('the safety backup on the page', UI_MS, async () => (await stateOf(last.safety_backup)) === safety.state);
    assert.equal(await page.getByRole('button', { name: 'Back up now' }).isDisabled(), false);
    await shot('restore-ended');
  });

  await step('Delete… asks first, then removes the row, and the API forgets the backup', async () => {
    const time = await shownTime((await apiBackup(asked)).created_at);
    await row(asked).getByRole('button', { name: /^Delete/ }).click();
    const dialog = page.locator('#backup-delete-dialog');
    await dialog.waitFor();
    assert.equal(await page.locator('#backup-delete-dialog-title').innerText(), `Delete the backup of ${time}?`);
    await page.keyboard.press('Escape');
    await dialog.waitFor({ state: 'hidden' });
    assert.equal((await apiBackup(asked)).backup_id, asked, 'Esc deleted it');
    await row(asked).getByRole('button', { name: /^Delete/ }).click();
    const answer = page.waitForResponse((r) => r.url().endsWith(`/backups/${asked}`) && r.request().method() === 'DELETE');
    await page.getByRole('button', { name: 'Delete backup' }).click();
    assert.equal((await answer).status(), 202);
    await row(asked).waitFor({ state: 'detached', timeout: 1_000 });
    await until(`${asked} gone from the API`, JOB_MS, async () => (await call(server, 'GET', `/stores/${storeId}/backups/${asked}`)).status === 404, 500);
    // Still gone after the panel's next reloads, and the others are still there.
    await new Promise((r) => setTimeout(r, 4_000));
    assert.equal(await row(asked).count(), 0);
    assert.equal(await stateOf(good), 'Succeeded');
    await shot('deleted');
  });

  await step('at phone width the panel is cards, without sideways scrolling', async () => {
    await page.setViewportSize({ width: 375, height: 812 });
    await row(good).waitFor();
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    assert.ok(overflow <= 0, `the page scrolls sideways by ${overflow}px at 375px`);
    await page.locator('#backups').screenshot({ path: path.join(SHOTS, `backups-${String(++n).padStart(2, '0')}-phone.png`) });
    await page.setViewportSize({ width: 1280, height: 900 });
  });

  await step('no uncaught error and no CSP violation', async () => {
    assert.deepEqual(problems, []);
  });
});
