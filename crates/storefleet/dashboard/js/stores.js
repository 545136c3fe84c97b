// The list of stores (kept current by the live stream) and the create form.
import { api } from './api.js';
import { $, el, externalLink, showError, announce } from './dom.js';
import { age, badgeClass, engineName, quotaText } from './format.js';
import { progress } from './timeline.js';

const rows = new Map();
let quotaErrorShown = false;

export function initStores(ctx) {
  const form = $('create-form');
  const nameField = $('store-name');
  // An error is about the attempt just made; typing starts a new one.
  nameField.addEventListener('input', () => showError('create-error', null, nameField));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const button = $('create-button');
    const name = nameField.value.trim();
    button.disabled = true;
    button.textContent = 'Creating…';
    showError('create-error', null, nameField);
    quotaErrorShown = false;
    try {
      const { status, body: store } = await api.createStore(name, $('store-engine').value);
      ctx.upsert(store, { fromCreate: true });
      nameField.value = '';
      if (status === 200) {
        announce(`You already have a store named “${store.name}”: ${store.store_id}.`);
        showError('create-error', `You already have a store named “${store.name}” (${store.store_id}).`);
      } else {
        announce(`Store “${store.name}” is being created. It appears in the list as Provisioning.`);
      }
    } catch (error) {
      let text;
      if (error.slug === 'quota-exceeded') {
        text = `Quota reached: ${error.detail}.`;
        quotaErrorShown = true;
      } else if (error.offline) {
        text = error.detail;
      } else if (error.status === 401) {
        return; // the sign-in form takes over
      } else {
        text = `The store was not created: ${error.detail || error.title}`;
      }
      showError('create-error', text, error.status === 422 ? nameField : null);
    } finally {
      button.disabled = false;
      button.textContent = 'Create store';
    }
  });
}

export function renderStores(state) {
  renderQuota(state);
  $('stores-loading').hidden = state.loaded;
  const stores = state.sorted();
  $('stores-empty').hidden = !state.loaded || stores.length > 0;
  $('stores-table').hidden = stores.length === 0;
  const body = $('stores-body');
  for (const [id, row] of rows) {
    if (!state.stores.has(id)) {
      row.remove();
      rows.delete(id);
    }
  }
  const ordered = stores.map((store) => {
    let row = rows.get(store.store_id);
    if (!row) {
      row = el('tr', { data: { storeId: store.store_id } });
      rows.set(store.store_id, row);
    }
    fillRow(row, store);
    return row;
  });
  // Re-append only when the order changed: moving a row would drop keyboard focus inside it.
  const current = Array.from(body.children);
  if (current.length !== ordered.length || ordered.some((row, i) => current[i] !== row)) {
    body.replaceChildren(...ordered);
  }
}

function fillRow(row, store) {
  const key = JSON.stringify(store);
  if (row.dataset.key === key) return;
  row.dataset.key = key;
  row.dataset.status = store.status;
  row.className = store.status === 'Deleting' ? 'leaving' : '';
  let line = null;
  if (store.status === 'Provisioning') {
    const p = progress(store);
    line = el('span', { class: 'step-line' }, `Step ${Math.min(p.doneCount + 1, p.total)} of ${p.total}: ${p.next ?? 'finishing'}`);
  } else if (store.status === 'Failed' && store.message) {
    line = el('span', { class: 'step-line' }, store.message);
  }
  row.replaceChildren(
    el('td', { class: 'name', data: { label: 'Name' } }, el('a', { href: `#/stores/${store.store_id}` }, store.name), line),
    el('td', { class: 'mono', data: { label: 'Store id' } }, store.store_id),
    el('td', { data: { label: 'Engine' } }, engineName(store.engine)),
    el('td', { data: { label: 'Status' } }, el('span', { class: badgeClass(store.status) }, store.status)),
    el('td', { data: { label: 'URL' } }, externalLink(store.url)),
    el('td', { data: { label: 'Age' } }, el('time', { datetime: store.created_at ?? '', class: 'age', data: { since: store.created_at ?? '' } }, age(store.created_at))),
  );
}

export function renderQuota(state) {
  if (!state.me) return;
  const used = state.quotaUsed();
  const max = state.me.max_stores;
  const meter = $('quota-meter');
  meter.max = Math.max(max, 1);
  meter.value = Math.min(used, max);
  meter.high = Math.max(max - 0.5, 0);
  meter.optimum = 0;
  $('quota-text').textContent = quotaText(used, max);
  // A quota error no longer holds once a store is gone.
  if (quotaErrorShown && used < max) {
    quotaErrorShown = false;
    showError('create-error', null);
  }
}

/** Ages are relative: refresh their text now and then (local only, no request). */
export function refreshAges() {
  for (const node of document.querySelectorAll('time.age')) {
    node.textContent = age(node.dataset.since || null);
  }
}
