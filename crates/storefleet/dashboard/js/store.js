// One store: links, progress timeline, admin login behind "reveal", conditions, backups, delete.
import { api } from './api.js';
import { initBackups, renderBackups } from './backups.js';
import { $, el, routeHash, setText, showError, announce } from './dom.js';
import { badgeClass, dateTime, engineName, sentence } from './format.js';
import { steps } from './timeline.js';

let shownId = null;
let revealedFor = null;

export function initStore(ctx) {
  $('reveal').addEventListener('click', () => toggleCredentials(ctx));
  $('copy-password').addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText($('cred-password').textContent);
      announce('Password copied.');
    } catch {
      announce('Copying is not allowed here; select the password and copy it by hand.');
    }
  });
  const askDelete = (event) => {
    const store = ctx.state.stores.get(shownId);
    if (store) confirmDelete(ctx, store, event.currentTarget);
  };
  $('delete-store').addEventListener('click', askDelete);
  $('failed-delete').addEventListener('click', askDelete);

  const dialog = $('delete-dialog');
  $('delete-cancel').addEventListener('click', () => dialog.close('cancel'));
  initBackups(ctx);
}

export function renderStore(state, id) {
  if (id !== shownId) {
    shownId = id;
    hideCredentials();
    showError('delete-error', null);
  }
  const store = state.stores.get(id);
  $('store-found').hidden = !store;
  $('store-missing').hidden = !!store || !state.loaded;
  if (!store) {
    setText('store-missing-text', state.loaded ? `There is no store ${id}. It may have been deleted.` : '');
    return;
  }
  document.title = `${store.name} · Storefleet`;
  setText('store-title', store.name);
  const badge = $('store-badge');
  badge.className = badgeClass(store.status);
  badge.textContent = store.status;
  setText('store-message', store.status === 'Failed' ? '' : sentence(store.message));

  const failed = store.status === 'Failed';
  $('store-failure').hidden = !failed;
  if (failed) setText('store-failure-text', sentence(store.message) || 'The store did not become ready.');

  link('store-url', store.url);
  link('store-admin-url', store.admin_url);
  setText('store-id', store.store_id);
  setText('store-engine-name', engineName(store.engine));
  setText('store-owner', store.owner);
  setText('store-created', dateTime(store.created_at));
  setText('store-ready', store.ready_at ? dateTime(store.ready_at) : 'not yet');
  $('store-audit-link').href = routeHash('/audit', { store: store.store_id });

  $('store-timeline').replaceChildren(
    ...steps(store).map((s) =>
      el('li', { class: s.state, data: { step: s.key } },
        el('span', { class: 'step' }, s.label), ' ',
        el('span', { class: 'state' }, `— ${s.stateText}`),
        s.note ? el('span', { class: 'detail' }, s.note) : null),
    ),
  );

  const conditions = [...(store.conditions ?? [])].sort((a, b) => conditionRank(a.type) - conditionRank(b.type));
  $('conditions-empty').hidden = conditions.length > 0;
  $('conditions-table').hidden = conditions.length === 0;
  $('conditions-body').replaceChildren(
    ...conditions.map((c) =>
      el('tr', {},
        el('td', { data: { label: 'Type' } }, c.type),
        el('td', { data: { label: 'Status' } }, c.status),
        el('td', { data: { label: 'Reason' } }, c.reason),
        el('td', { data: { label: 'Message' } }, c.message),
        el('td', { data: { label: 'Since' } }, dateTime(c.last_transition_time))),
    ),
  );
  $('delete-store').disabled = store.status === 'Deleting';
  $('failed-delete').disabled = store.status === 'Deleting';
  renderBackups(store);
}

// In the order provisioning goes through them, Ready last; then MailConfigured, which Ready does not wait for.
const CONDITION_ORDER = ['NamespaceReady', 'Released', 'WorkloadsReady', 'SetupComplete', 'Ready', 'MailConfigured'];
const conditionRank = (type) => (CONDITION_ORDER.includes(type) ? CONDITION_ORDER.indexOf(type) : CONDITION_ORDER.length);

function link(id, href) {
  const a = $(id);
  a.href = href;
  a.textContent = href;
}

function hideCredentials() {
  revealedFor = null;
  $('creds').hidden = true;
  for (const id of ['cred-user', 'cred-password', 'cred-email']) setText(id, '');
  $('reveal').setAttribute('aria-expanded', 'false');
  $('reveal').textContent = 'Reveal admin login';
  showError('creds-error', null);
}

async function toggleCredentials(ctx) {
  if (revealedFor === shownId) {
    hideCredentials();
    return;
  }
  const id = shownId;
  const button = $('reveal');
  button.disabled = true;
  showError('creds-error', null);
  try {
    const { body } = await api.credentials(id);
    if (id !== shownId) return;
    revealedFor = id;
    setText('cred-user', body.username);
    setText('cred-password', body.password);
    setText('cred-email', body.email);
    link('cred-admin-url', body.admin_url);
    $('creds').hidden = false;
    button.setAttribute('aria-expanded', 'true');
    button.textContent = 'Hide admin login';
  } catch (error) {
    if (error.status === 401) return;
    const text =
      error.status === 409
        ? `Not available yet: ${error.detail}.`
        : error.status === 404
          ? 'This store no longer exists.'
          : error.offline
            ? error.detail
            : `Could not read the admin login: ${error.detail || error.title}`;
    showError('creds-error', text);
  } finally {
    button.disabled = false;
  }
}

/** A modal confirmation naming the store; Esc or Cancel keeps it. */
function confirmDelete(ctx, store, opener) {
  const dialog = $('delete-dialog');
  setText('delete-dialog-title', `Delete “${store.name}”?`);
  setText('delete-dialog-text',
    `This deletes the store “${store.name}” (${store.store_id}) with its database, files and admin login. It cannot be undone.`);
  setText('delete-confirm', `Delete “${store.name}”`);
  const confirm = $('delete-confirm');
  const onConfirm = async () => {
    confirm.disabled = true;
    try {
      await api.deleteStore(store.store_id);
      dialog.close('deleted');
      ctx.markDeleting(store.store_id);
      announce(`Deleting store “${store.name}”.`);
      ctx.navigate('#/stores');
    } catch (error) {
      dialog.close('failed');
      if (error.status === 401) return;
      showError('delete-error', error.status === 404 ? 'This store no longer exists.' : `Not deleted: ${error.detail || error.title}`);
    } finally {
      confirm.disabled = false;
    }
  };
  confirm.addEventListener('click', onConfirm);
  dialog.addEventListener('close', () => {
    confirm.removeEventListener('click', onConfirm);
    if (dialog.returnValue !== 'deleted' && opener.isConnected) opener.focus();
  }, { once: true });
  dialog.returnValue = '';
  dialog.showModal();
  $('delete-cancel').focus();
}
