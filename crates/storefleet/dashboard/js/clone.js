// A new store from a backup: "Clone…" on a store's Succeeded backup (backups.js) and "Recover…" on a
// deleted store's final backup (deleted.js) open this one dialog, which asks the new store's name and
// then calls `POST /stores {"name", "from_backup"}`. On 202 the page goes to the new store, which shows
// Restoring until the backup is in (docs/backups.md, "Clones"). A refusal stays in the dialog, in the
// API's words.
import { api } from './api.js';
import { $, setText, showError, announce } from './dom.js';
import { sentence } from './format.js';

let ctxRef;
// What the dialog is about: { backupId, opener, verb } (verb: "cloned" or "recovered", for messages).
let asking = null;

export function initClone(ctx) {
  ctxRef = ctx;
  const dialog = $('clone-dialog');
  const nameField = $('clone-name');
  $('clone-cancel').addEventListener('click', () => dialog.close('cancel'));
  // A submit: Enter in the name field creates too.
  $('clone-form').addEventListener('submit', (event) => {
    event.preventDefault();
    confirmClone();
  });
  // An error is about the attempt just made; typing starts a new one.
  nameField.addEventListener('input', () => showError('clone-dialog-error', null, nameField));
  dialog.addEventListener('close', () => {
    const opener = asking?.opener;
    asking = null;
    if (dialog.returnValue !== 'created' && opener?.isConnected) opener.focus();
    dialog.returnValue = '';
  });
}

/**
 * Opens the dialog. `name` prefills the new store's name; `title`, `text` and `confirmLabel` say
 * what is made from what; `verb` ("cloned", "recovered") words a refusal.
 */
export function askClone({ backupId, name, title, text, confirmLabel, verb, opener }) {
  asking = { backupId, opener, verb };
  setText('clone-dialog-title', title);
  setText('clone-dialog-text', text);
  setText('clone-confirm', confirmLabel);
  const nameField = $('clone-name');
  nameField.value = name;
  showError('clone-dialog-error', null, nameField);
  $('clone-confirm').disabled = false;
  $('clone-dialog').showModal();
  nameField.focus();
  nameField.select();
}

async function confirmClone() {
  if (!asking) return;
  const { backupId, verb } = asking;
  const nameField = $('clone-name');
  const confirm = $('clone-confirm');
  const name = nameField.value.trim();
  confirm.disabled = true;
  showError('clone-dialog-error', null, nameField);
  try {
    const { status, body: store } = await api.cloneStore(name, backupId);
    if (status === 200) {
      // The caller already has a store of that name: the API answers it and makes nothing.
      ctxRef.upsert(store, { fromCreate: true });
      showError('clone-dialog-error',
        `You already have a store named “${store.name}” (${store.store_id}). Choose another name.`, nameField);
      nameField.focus();
      return;
    }
    $('clone-dialog').close('created');
    ctxRef.upsert(store, { fromCreate: true });
    announce(`Store “${store.name}” is being made from the backup. It shows Restoring until the copy is in.`);
    ctxRef.navigate(`#/stores/${encodeURIComponent(store.store_id)}`);
  } catch (error) {
    if (error.status === 401) return;
    const text = error.offline ? error.detail
      : error.slug === 'quota-exceeded' ? `Quota reached: ${sentence(error.detail)}`
        : `Not ${verb}: ${sentence(error.detail || error.title)}`;
    showError('clone-dialog-error', text, error.status === 422 && /name/i.test(error.detail) ? nameField : null);
  } finally {
    confirm.disabled = false;
  }
}
