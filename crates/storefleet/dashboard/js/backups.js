// The store page's Backups panel: the store's backup schedule (a select), its backups newest first,
// "Back up now", Restore…, Clone… and Delete… (each behind a dialog; Clone's is clone.js), and how the
// last restore went, all through the public API (/stores/{id}/backups, /stores/{id}/restore,
// /stores/{id}/restores, /stores/{id}/backup-schedule, POST /stores with from_backup). Backups have no
// event stream, so while one is unfinished (or a restore, or a deletion) and the page is shown, the
// panel reloads every few seconds; it also reloads (the schedule too, an annotation on the store) when
// the store's own live update arrives (a restore changes its status).
import { api } from './api.js';
import { askClone } from './clone.js';
import { $, el, setText, showError, announce } from './dom.js';
import { dateTime, jobBadgeClass, sentence } from './format.js';

const REFRESH_MS = 3_000;
const NOT_CONFIGURED = 'This platform has no backup target, so its stores cannot be backed up or restored. An operator sets one up (docs/backups.md).';

let ctxRef;
// The store shown, its last live state (a new object per update), and what the API last said.
let shownId = null;
let seenStore = null;
let backups = [];
let lastRestore = null;
let loaded = false;
let loading = 0;
let posting = false;
// Deleted from this page: hidden at once, though the controller removes the data (and the object) later.
const deleting = new Set();
// Learnt from the API's 409 `backups-not-configured`: the platform's, so it holds for every store.
let notConfigured = false;
// What a dialog is about: { backup, opener }.
let restoring = null;
let removing = null;
// The store's schedule as `GET …/backup-schedule` last said (null: not known, or no backup target),
// whether a change of it is on its way, and a ticket that makes an older answer lose to a newer one.
let schedule = null;
let scheduleSaving = false;
let scheduleTicket = 0;

const unfinishedBackup = (b) => b.state === 'Pending' || b.state === 'Running';
const unfinishedRestore = (r) => r && r.state !== 'Succeeded' && r.state !== 'Failed';
const shown = () =>
  document.visibilityState === 'visible' && ctxRef?.state.route?.view === 'store' && ctxRef.state.route.id === shownId;
const busy = () => backups.some(unfinishedBackup) || unfinishedRestore(lastRestore) || deleting.size > 0;
const when = (b) => dateTime(b.created_at);

export function initBackups(ctx) {
  ctxRef = ctx;
  $('backup-now').addEventListener('click', backUpNow);
  $('backup-schedule').addEventListener('change', changeSchedule);

  const restoreDialog = $('restore-dialog');
  $('restore-cancel').addEventListener('click', () => restoreDialog.close('cancel'));
  $('restore-confirm').addEventListener('click', confirmRestore);
  restoreDialog.addEventListener('close', () => {
    const opener = restoring?.opener;
    restoring = null;
    if (restoreDialog.returnValue !== 'restored' && opener?.isConnected) opener.focus();
    restoreDialog.returnValue = '';
  });

  const deleteDialog = $('backup-delete-dialog');
  $('backup-delete-cancel').addEventListener('click', () => deleteDialog.close('cancel'));
  $('backup-delete-confirm').addEventListener('click', confirmDelete);
  deleteDialog.addEventListener('close', () => {
    const opener = removing?.opener;
    removing = null;
    if (deleteDialog.returnValue !== 'deleted' && opener?.isConnected) opener.focus();
    deleteDialog.returnValue = '';
  });

  setInterval(() => {
    if (shown() && busy()) load();
  }, REFRESH_MS);
  // A hidden tab does not poll; coming back, catch up at once.
  document.addEventListener('visibilitychange', () => {
    if (shown() && busy()) load();
  });
}

/** Called by the store page on every render: a new store loads its backups, a live update reloads them. */
export function renderBackups(store) {
  if (store.store_id !== shownId) {
    shownId = store.store_id;
    seenStore = store;
    backups = [];
    lastRestore = null;
    loaded = false;
    deleting.clear();
    schedule = null;
    scheduleSaving = false;
    showError('backups-error', notConfigured ? NOT_CONFIGURED : null);
    showError('backup-schedule-error', null);
    render();
    load();
    loadSchedule();
    return;
  }
  if (store !== seenStore) {
    seenStore = store;
    load();
    loadSchedule();
  }
  render();
}

async function load() {
  const id = shownId;
  const ticket = ++loading;
  try {
    const [list, restores] = await Promise.all([api.backups(id), api.restores(id)]);
    if (ticket !== loading || id !== shownId) return;
    const before = new Map(backups.map((b) => [b.backup_id, b.state]));
    const restoreBefore = lastRestore;
    // Oldest first from the API; a deleted one stays hidden until it is gone from the list too.
    const ids = new Set(list.body.map((b) => b.backup_id));
    for (const gone of [...deleting].filter((d) => !ids.has(d))) deleting.delete(gone);
    backups = list.body.filter((b) => !deleting.has(b.backup_id)).reverse();
    lastRestore = restores.body.at(-1) ?? null;
    loaded = true;
    if (!notConfigured) showError('backups-error', null);
    for (const b of backups) {
      const was = before.get(b.backup_id);
      if (was && was !== b.state && !unfinishedBackup(b)) announce(`Backup of ${when(b)} ${b.state === 'Succeeded' ? 'succeeded' : 'failed'}.`);
    }
    if (restoreBefore && restoreBefore.restore_id === lastRestore?.restore_id
      && unfinishedRestore(restoreBefore) && !unfinishedRestore(lastRestore)) {
      announce(`Restore ${lastRestore.state === 'Succeeded' ? 'succeeded' : 'failed'}: ${sentence(lastRestore.message)}`);
    }
    render();
  } catch (error) {
    if (ticket !== loading || id !== shownId || error.status === 401) return;
    // 404: the store is gone; the store page says so.
    if (error.status === 404) return;
    showError('backups-error', error.offline ? error.detail : `Cannot show the backups: ${error.detail || error.title}`);
  }
}

function render() {
  const store = ctxRef.state.stores.get(shownId);
  if (!store) return;
  const status = store.status;
  const frozen = status === 'Restoring' || status === 'Deleting';
  const restoreRuns = status === 'Restoring' || unfinishedRestore(lastRestore);

  $('backup-now').disabled = notConfigured || frozen || posting;
  renderSchedule(status);
  setText('backups-note',
    notConfigured ? ''
      : status === 'Restoring' ? 'A restore runs: the shop is offline, and backups wait until it ends.'
        : status === 'Deleting' ? 'The store is being deleted.'
          : '');
  $('backups-note').hidden = !$('backups-note').textContent;

  $('backups-loading').hidden = loaded;
  $('backups-empty').hidden = !loaded || backups.length > 0;
  $('backups-table').hidden = backups.length === 0;
  // Keep focus on its button across a re-render (the table is rebuilt on every reload).
  const focused = document.activeElement?.dataset?.backupAction;
  $('backups-body').replaceChildren(...backups.map((b) => row(b, { status, frozen, restoreRuns })));
  if (focused) document.querySelector(`[data-backup-action="${CSS.escape(focused)}"]`)?.focus();

  const r = lastRestore;
  $('restore-last').hidden = !r;
  if (r) {
    const from = backups.find((b) => b.backup_id === r.backup_id);
    $('restore-last').replaceChildren(
      el('span', { class: 'label' }, 'Last restore: '),
      el('span', { class: jobBadgeClass(r.state), data: { role: 'restore-state' } }, r.state), ' ',
      el('span', {}, `from the backup of ${from ? when(from) : r.backup_id}`),
      r.finished_at ? el('span', {}, `, ended ${dateTime(r.finished_at)}`) : null,
      r.message ? el('span', { class: 'detail', data: { role: 'restore-message' } }, sentence(r.message)) : null,
    );
    $('restore-last').dataset.state = r.state;
  }
}

function row(b, { status, frozen, restoreRuns }) {
  const id = b.backup_id;
  const time = when(b);
  const button = (verb, label, cls, enabled, onClick) => {
    const node = el('button', { type: 'button', class: `button small ${cls}`, data: { backupAction: `${id}:${verb}` } },
      label, el('span', { class: 'visually-hidden' }, ` the backup of ${time}`), '…');
    node.disabled = !enabled;
    node.addEventListener('click', (event) => onClick(b, event.currentTarget));
    return node;
  };
  const canRestore = !notConfigured && status === 'Ready' && !restoreRuns;
  // Cloning leaves this store alone, but like every button of the panel it waits while a restore runs.
  const canClone = !notConfigured && !frozen && !restoreRuns;
  // One element per cell: at phone width a cell is a two-column grid (its label, then its content).
  return el('tr', { data: { backup: id, state: b.state } },
    el('td', { data: { label: 'Started' } }, el('div', {}, time, el('span', { class: 'detail mono' }, id))),
    el('td', { data: { label: 'Finished' } }, b.finished_at ? dateTime(b.finished_at) : '—'),
    el('td', { class: 'size', data: { label: 'Size', role: 'size' } }, b.size ?? '—'),
    el('td', { data: { label: 'State' } }, el('div', {},
      el('span', { class: jobBadgeClass(b.state), data: { role: 'state' } }, b.state),
      // Why it failed, or what it waits for; a Succeeded backup's status may still hold its last step's.
      b.message && b.state !== 'Succeeded' ? el('span', { class: 'detail', data: { role: 'message' } }, sentence(b.message)) : null)),
    el('td', { class: 'actions', data: { label: 'Actions' } }, el('div', {},
      b.state === 'Succeeded' ? button('restore', 'Restore', 'secondary', canRestore, askRestore) : null,
      b.state === 'Succeeded' ? button('clone', 'Clone', 'secondary', canClone, askCloneOf) : null,
      button('delete', 'Delete', 'danger', !frozen && !restoreRuns, askDelete))),
  );
}

async function backUpNow() {
  const id = shownId;
  posting = true;
  render();
  showError('backups-error', null);
  try {
    const { body } = await api.createBackup(id);
    if (id !== shownId) return;
    // The new backup shows at once (Pending); the reloads then follow it to its end.
    if (!backups.some((b) => b.backup_id === body.backup_id)) backups = [body, ...backups];
    loaded = true;
    announce(`Backup of ${when(body)} started.`);
  } catch (error) {
    if (error.status === 401 || id !== shownId) return;
    if (error.slug === 'backups-not-configured') notConfigured = true;
    showError('backups-error',
      error.slug === 'backups-not-configured' ? NOT_CONFIGURED
        : error.status === 404 ? 'This store no longer exists.'
          : error.offline ? error.detail
            : `Not backed up: ${sentence(error.detail || error.title)}`);
  } finally {
    posting = false;
    if (id === shownId) render();
  }
}

/** A modal confirmation naming the backup; Esc or Cancel keeps everything as it is. */
function askRestore(backup, opener) {
  const store = ctxRef.state.stores.get(shownId);
  restoring = { backup, opener };
  const time = when(backup);
  setText('restore-dialog-title', `Restore the backup of ${time}?`);
  setText('restore-dialog-text',
    `“${store?.name ?? shownId}” goes back to its backup of ${time} (${backup.size ?? 'size unknown'}): ` +
    'its database and files are replaced by the backup\'s, and what changed since is lost. ' +
    'A safety backup of the store as it is now is taken first, and put back if the restore fails. ' +
    'The shop is offline until the restore ends.');
  showError('restore-dialog-error', null);
  $('restore-confirm').disabled = false;
  $('restore-dialog').showModal();
  $('restore-cancel').focus();
}

async function confirmRestore() {
  if (!restoring) return;
  const { backup } = restoring;
  const id = shownId;
  const confirm = $('restore-confirm');
  confirm.disabled = true;
  showError('restore-dialog-error', null);
  try {
    await api.restore(id, backup.backup_id);
    $('restore-dialog').close('restored');
    announce(`Restoring the backup of ${when(backup)}. The shop is offline until it ends.`);
    // The opener is disabled now (a restore runs): start from the panel's heading instead.
    $('backups-title').focus();
    load();
  } catch (error) {
    if (error.status === 401) return;
    // Refusals (409: not Ready, a restore runs, the backup is not usable, no target) stay in the dialog.
    if (error.slug === 'backups-not-configured') notConfigured = true;
    showError('restore-dialog-error',
      error.offline ? error.detail : `Not restored: ${sentence(error.detail || error.title)}`);
  } finally {
    confirm.disabled = false;
  }
}

/** The clone dialog (clone.js), the new store's name prefilled as "Copy of <name>". */
function askCloneOf(backup, opener) {
  const store = ctxRef.state.stores.get(shownId);
  const name = store?.name ?? shownId;
  const time = when(backup);
  // Names are at most 64 characters (code points): a long one's copy is cut, not refused.
  const copyName = Array.from(`Copy of ${name}`).slice(0, 64).join('').trim();
  askClone({
    backupId: backup.backup_id,
    name: copyName,
    title: `Clone the backup of ${time}?`,
    text: `A new store is made from “${name}” as it was in its backup of ${time} (${backup.size ?? 'size unknown'}): ` +
      'a copy of the shop with its own store id and its own address. ' +
      `“${name}” itself is not changed. The new store shows Restoring until the copy is in.`,
    confirmLabel: 'Create the copy',
    verb: 'cloned',
    opener,
  });
}

async function loadSchedule() {
  const id = shownId;
  const ticket = ++scheduleTicket;
  try {
    const { body } = await api.backupSchedule(id);
    if (ticket !== scheduleTicket || id !== shownId) return;
    schedule = body;
    render();
  } catch (error) {
    if (ticket !== scheduleTicket || id !== shownId || error.status === 401 || error.status === 404) return;
    // No backup target: no schedule either; Back up now says why when it is pressed.
    if (error.slug === 'backups-not-configured') {
      schedule = null;
      render();
      return;
    }
    showError('backup-schedule-error', error.offline ? error.detail : `Cannot show the backup schedule: ${sentence(error.detail || error.title)}`);
  }
}

function renderSchedule(status) {
  $('backup-schedule-box').hidden = !schedule;
  if (!schedule) return;
  const select = $('backup-schedule');
  select.querySelector('option[value="platform"]').textContent = `Platform default (${schedule.platform_schedule})`;
  select.querySelector('option[value="hourly"]').textContent =
    ctxRef.state.me?.role === 'admin' ? 'Hourly' : 'Hourly (admins only)';
  // While a change is on its way the select shows the choice made; after it, what the API says.
  if (!scheduleSaving) select.value = schedule.source === 'store' ? schedule.schedule : 'platform';
  select.disabled = scheduleSaving || status === 'Deleting';
  const next = $('backup-schedule-next');
  next.dataset.nextAt = schedule.next_at ?? '';
  next.textContent = schedule.next_at
    ? `Next automatic backup: ${dateTime(schedule.next_at)}. Of the automatic backups, the newest of each of the last ` +
      `${schedule.keep_daily} days and ${schedule.keep_weekly} weeks are kept.`
    : 'Off: this store is not backed up on its own. Back up now still works.';
}

async function changeSchedule() {
  const id = shownId;
  const value = $('backup-schedule').value;
  const ticket = ++scheduleTicket;
  scheduleSaving = true;
  showError('backup-schedule-error', null);
  render();
  try {
    const { body } = await api.setBackupSchedule(id, value === 'platform' ? null : value);
    if (id !== shownId) return;
    if (ticket === scheduleTicket) schedule = body;
    announce(body.next_at
      ? `Automatic backups: ${body.schedule}. Next one ${dateTime(body.next_at)}.`
      : 'Automatic backups are off.');
  } catch (error) {
    if (error.status === 401 || id !== shownId) return;
    // The select goes back to what the store runs (render, below); the refusal says why.
    showError('backup-schedule-error',
      error.status === 404 ? 'This store no longer exists.'
        : error.offline ? error.detail
          : `Not changed: ${sentence(error.detail || error.title)}`);
  } finally {
    scheduleSaving = false;
    if (id === shownId) {
      render();
      // Disabled while saving, the select lost focus: give it back, unless the user moved on.
      if (document.activeElement === document.body) $('backup-schedule').focus();
    }
  }
}

function askDelete(backup, opener) {
  removing = { backup, opener };
  const time = when(backup);
  setText('backup-delete-dialog-title', `Delete the backup of ${time}?`);
  setText('backup-delete-dialog-text',
    `The backup ${backup.backup_id} (${backup.state}${backup.size ? `, ${backup.size}` : ''}) is removed from the backup target. It cannot be undone.`);
  showError('backup-delete-dialog-error', null);
  $('backup-delete-dialog').showModal();
  $('backup-delete-cancel').focus();
}

async function confirmDelete() {
  if (!removing) return;
  const { backup } = removing;
  const id = shownId;
  const confirm = $('backup-delete-confirm');
  confirm.disabled = true;
  showError('backup-delete-dialog-error', null);
  try {
    await api.deleteBackup(id, backup.backup_id);
    finishDelete(backup);
  } catch (error) {
    if (error.status === 401) return;
    // Already gone: what the user wanted.
    if (error.status === 404) finishDelete(backup);
    else showError('backup-delete-dialog-error', error.offline ? error.detail : `Not deleted: ${sentence(error.detail || error.title)}`);
  } finally {
    confirm.disabled = false;
  }
}

function finishDelete(backup) {
  $('backup-delete-dialog').close('deleted');
  deleting.add(backup.backup_id);
  backups = backups.filter((b) => b.backup_id !== backup.backup_id);
  announce(`Backup of ${when(backup)} deleted.`);
  render();
  // Its row is gone: start from the panel's heading.
  $('backups-title').focus();
}
