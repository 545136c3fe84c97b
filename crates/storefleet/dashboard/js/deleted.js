// The stores page's "Deleted stores" section: stores deleted with a final backup that is still kept
// (`GET /deleted-stores`, the caller's own, every one for an admin), each with Recover…, which makes a
// new store from that backup (the clone dialog, clone.js). Loaded when the stores page is shown and
// when a store is gone (its final backup then lists it); nothing polls. A platform without a backup
// target answers 409 `backups-not-configured`: the section then stays hidden.
import { api } from './api.js';
import { $, el, showError } from './dom.js';
import { dateTime, sentence } from './format.js';
import { askClone } from './clone.js';

let loading = 0;
let notConfigured = false;

/** Reloads the list; the section shows once there is an answer. */
export async function loadDeleted() {
  if (notConfigured) return;
  const ticket = ++loading;
  try {
    const { body } = await api.deletedStores();
    if (ticket !== loading) return;
    showError('deleted-error', null);
    render(body);
    $('deleted').hidden = false;
  } catch (error) {
    if (ticket !== loading || error.status === 401) return;
    if (error.slug === 'backups-not-configured') {
      notConfigured = true;
      $('deleted').hidden = true;
      return;
    }
    showError('deleted-error', error.offline ? error.detail : `Cannot show the deleted stores: ${sentence(error.detail || error.title)}`);
    $('deleted').hidden = false;
  }
}

/** On sign-out: nothing of one user's list stays in the page for the next. */
export function clearDeleted() {
  loading++;
  $('deleted').hidden = true;
  $('deleted-body').replaceChildren();
  showError('deleted-error', null);
}

function render(list) {
  $('deleted-empty').hidden = list.length > 0;
  $('deleted-table').hidden = list.length === 0;
  // Keep focus on its button across a reload (the rows are rebuilt).
  const focused = document.activeElement?.dataset?.deletedAction;
  $('deleted-body').replaceChildren(...list.map(row));
  if (focused) document.querySelector(`[data-deleted-action="${CSS.escape(focused)}"]`)?.focus();
}

function row(d) {
  const backup = d.final_backup;
  const recover = el('button', { type: 'button', class: 'button small secondary', data: { deletedAction: `${d.store_id}:recover` } },
    'Recover', el('span', { class: 'visually-hidden' }, ` “${d.name}”`), '…');
  recover.addEventListener('click', (event) => askRecover(d, event.currentTarget));
  // One element per cell: at phone width a cell is a two-column grid (its label, then its content).
  return el('tr', { data: { storeId: d.store_id, backup: backup.backup_id } },
    el('td', { class: 'name', data: { label: 'Name' } }, el('div', {}, d.name, el('span', { class: 'detail mono' }, d.store_id))),
    el('td', { data: { label: 'Owner' } }, d.owner),
    el('td', { data: { label: 'Deleted', role: 'deleted-at' } }, dateTime(d.deleted_at)),
    el('td', { data: { label: 'Kept until', role: 'kept-until' } }, dateTime(d.kept_until)),
    el('td', { data: { label: 'Final backup' } }, el('div', {},
      el('span', { class: 'mono', data: { role: 'backup' } }, backup.backup_id),
      el('span', { class: 'detail', data: { role: 'size' } }, backup.size ?? ''))),
    el('td', { class: 'actions', data: { label: 'Actions' } }, recover),
  );
}

function askRecover(d, opener) {
  const backup = d.final_backup;
  askClone({
    backupId: backup.backup_id,
    name: d.name,
    title: `Recover “${d.name}”?`,
    text: `A new store is made from the final backup of “${d.name}” (${d.store_id}), taken when it was deleted on ` +
      `${dateTime(d.deleted_at)}${backup.size ? ` (${backup.size})` : ''}. It gets a new store id and its own address, ` +
      'and shows Restoring until the backup is in.',
    confirmLabel: 'Recover the store',
    verb: 'recovered',
    opener,
  });
}
