// The list of stores, one page at a time (`GET /stores?limit=…`, with the search and filters), and
// the create form. "Load more" appends the next page (keyset cursor), so rows already read stay put.
// The live stream keeps shown rows current in place; it asks the server again (the pages loaded so
// far, same filters) only when an event may change which stores the list holds. Nothing polls.
import { api } from './api.js';
import { $, el, externalLink, showError, announce } from './dom.js';
import { age, badgeClass, engineName, plural, quotaText } from './format.js';
import { progress } from './timeline.js';

export const PAGE_SIZE = 50;
const SEARCH_DELAY_MS = 300;
const STATUSES = ['Provisioning', 'Ready', 'Failed', 'Restoring', 'Deleting'];

const rows = new Map();
let quotaErrorShown = false;
let ctxRef;

// What the list shows: the ids of the loaded pages in the server's order (the views themselves live
// in `state.stores`, kept current by the stream, or `items` until the stream has them).
const list = {
  filters: { q: '', status: '', owner: '' },
  pageSize: PAGE_SIZE,
  ids: [],
  items: new Map(),
  next: null,
  pages: 0,
  loaded: false,
  failed: false,
  // Answers to an older request (other filters, an earlier refresh) are dropped.
  ticket: 0,
  refreshTimer: null,
};

export function initStores(ctx) {
  ctxRef = ctx;
  initFilters();
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
        announce(list.items.has(store.store_id)
          ? `Store “${store.name}” is being created. It appears in the list as Provisioning.`
          : `Store “${store.name}” is being created. It is at the end of the list: load more stores or search for it.`);
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
  const loaded = list.loaded;
  $('stores-loading').hidden = loaded || list.failed;
  const stores = shownStores(state);
  const filtered = Boolean(list.filters.q || list.filters.status || list.filters.owner);
  $('stores-empty').hidden = !loaded || stores.length > 0 || filtered;
  $('stores-none').hidden = !loaded || stores.length > 0 || !filtered;
  $('stores-table').hidden = stores.length === 0;
  $('stores-more').hidden = !loaded || !list.next;
  // The search as the user typed it, as text (setText), never as markup.
  $('stores-summary').textContent = !loaded || (stores.length === 0 && !filtered) ? ''
    : `${plural(stores.length, 'store', 'stores')} shown${describe(list.filters)}, oldest first${list.next ? '; more with “Load more stores”' : ''}.`;
  const body = $('stores-body');
  const shown = new Set(stores.map((s) => s.store_id));
  for (const [id, row] of rows) {
    if (!shown.has(id)) {
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

function describe({ q, status, owner }) {
  return [q && ` matching “${q}”`, status && ` with status ${status}`, owner && ` owned by ${owner}`].filter(Boolean).join(',');
}

/** The stores of the loaded pages, as the stream last saw them. */
export function shownStores(state) {
  return list.ids.map((id) => state.stores.get(id) ?? list.items.get(id)).filter(Boolean);
}

/**
 * Seeds the filters from a link (`#/stores?q=…&status=…&owner=…&per_page=…`); a plain `#/stores`
 * keeps what the user chose. Then loads the pages shown so far again (the first, the first time).
 */
export function showStores(query) {
  if (query && [...query.keys()].length > 0) {
    const filters = {
      q: (query.get('q') ?? '').slice(0, 100),
      status: STATUSES.includes(query.get('status')) ? query.get('status') : '',
      owner: ctxRef.state.me?.role === 'admin' ? (query.get('owner') ?? '') : '',
    };
    const size = Number(query.get('per_page'));
    list.pageSize = Number.isInteger(size) && size >= 1 && size <= 500 ? size : PAGE_SIZE;
    setFilters(filters);
    return;
  }
  refresh();
}

/** On sign-out: nothing of one user's list stays for the next. */
export function clearStores() {
  list.ticket++;
  clearTimeout(list.refreshTimer);
  Object.assign(list, { filters: { q: '', status: '', owner: '' }, pageSize: PAGE_SIZE, ids: [], items: new Map(), next: null, pages: 0, loaded: false, failed: false });
  $('stores-q').value = '';
  $('stores-status').value = '';
  $('stores-owner').value = '';
  showError('stores-list-error', null, $('stores-q'));
  $('stores-owner').removeAttribute('aria-invalid');
}

function setFilters(filters) {
  list.filters = filters;
  $('stores-q').value = filters.q;
  $('stores-status').value = filters.status;
  $('stores-owner').value = filters.owner;
  list.pages = 0;
  refresh();
}

function readFilters() {
  return {
    q: $('stores-q').value.trim(),
    status: $('stores-status').value,
    owner: ctxRef.state.me?.role === 'admin' ? $('stores-owner').value.trim() : '',
  };
}

const sameFilters = (a, b) => a.q === b.q && a.status === b.status && a.owner === b.owner;

/** Loads the pages shown so far again (at least the first), with the current filters, replacing them. */
async function refresh() {
  clearTimeout(list.refreshTimer);
  const ticket = ++list.ticket;
  const wanted = Math.max(list.pages, 1);
  const ids = [];
  const items = new Map();
  let cursor = null;
  let pages = 0;
  try {
    do {
      const { body } = await api.stores({ limit: list.pageSize, cursor, ...list.filters });
      if (ticket !== list.ticket) return;
      for (const store of body.items) {
        if (!items.has(store.store_id)) ids.push(store.store_id);
        items.set(store.store_id, store);
      }
      cursor = body.next_cursor;
      pages++;
    } while (cursor && pages < wanted);
    Object.assign(list, { ids, items, next: cursor, pages, loaded: true, failed: false });
    listError(null);
  } catch (error) {
    if (ticket !== list.ticket) return;
    list.failed = true;
    // New filters the server refused: the rows of the old ones would look like an answer.
    if (list.pages === 0) Object.assign(list, { ids: [], items: new Map(), next: null });
    listError(error);
  }
  ctxRef.render();
}

/** The next page, after the last one loaded. */
async function loadMore() {
  if (!list.next) return;
  const ticket = ++list.ticket;
  const button = $('stores-more');
  button.disabled = true;
  try {
    const { body } = await api.stores({ limit: list.pageSize, cursor: list.next, ...list.filters });
    if (ticket !== list.ticket) return;
    const before = list.ids.length;
    for (const store of body.items) {
      if (!list.items.has(store.store_id)) list.ids.push(store.store_id);
      list.items.set(store.store_id, store);
    }
    list.next = body.next_cursor;
    list.pages++;
    listError(null);
    ctxRef.render();
    announce(`${plural(list.ids.length - before, 'more store', 'more stores')} shown.`);
    // Keyboard users continue at the first new row (the button may be gone: the last page).
    const first = rows.get(list.ids[before])?.querySelector('a');
    if (first && (list.next === null || document.activeElement === button)) first.focus();
  } catch (error) {
    if (ticket !== list.ticket) return;
    listError(error);
  } finally {
    button.disabled = false;
  }
}

function listError(error) {
  const q = $('stores-q');
  const owner = $('stores-owner');
  q.removeAttribute('aria-invalid');
  owner.removeAttribute('aria-invalid');
  if (!error || error.status === 401) {
    showError('stores-list-error', null);
    return;
  }
  showError('stores-list-error', error.offline ? error.detail : `Cannot list the stores: ${error.detail || error.title}`);
  // The API says which parameter it refused (400 bad-request, 403 admin-only for `owner`).
  const detail = `${error.detail}`;
  if (/^owner|`owner`/.test(detail) || error.slug === 'admin-only') owner.setAttribute('aria-invalid', 'true');
  else if (/\bq\b/.test(detail)) q.setAttribute('aria-invalid', 'true');
}

function scheduleRefresh(delay = 250) {
  clearTimeout(list.refreshTimer);
  list.refreshTimer = setTimeout(refresh, delay);
}

// The list's order as the server sorts it: creation time, then store id.
const key = (store) => [store.created_at ?? '', store.store_id];
const after = (a, b) => a[0] > b[0] || (a[0] === b[0] && a[1] > b[1]);

/** Whether `store` may belong in the list under its filters; the server has the last word. */
function mightMatch(store) {
  const { q, status, owner } = list.filters;
  const needle = q.toLowerCase();
  return (!status || store.status === status) && (!owner || store.owner === owner) &&
    (!needle || (store.name ?? '').toLowerCase().includes(needle) || store.store_id.toLowerCase().includes(needle));
}

/** Within what the loaded pages cover: everything, or not after their last store. */
function withinLoaded(store, state) {
  if (!list.next) return true;
  const last = state.stores.get(list.ids.at(-1)) ?? list.items.get(list.ids.at(-1));
  return !last || !after(key(store), key(last));
}

/**
 * A store changed (the live stream). A shown row is redrawn from the event; the list is asked for
 * again only when the change may add or drop a row here: a shown store that may no longer match, or
 * one not shown that may now match (a new one, one that changed status) within the loaded pages.
 * A new store sorts last, so it shows at once when the whole list is loaded and "Load more" leads
 * to it otherwise.
 */
export function storeChanged(state, store) {
  if (!list.loaded) return;
  const shown = list.items.has(store.store_id);
  // Off the stores page nothing is asked: showing it loads the list again anyway.
  if (state.route?.view !== 'stores') return;
  if (shown ? !mightMatch(store) : mightMatch(store) && withinLoaded(store, state)) scheduleRefresh();
}

/** A store is gone: its row goes, without a request. */
export function storeDeleted(id) {
  if (!list.items.has(id)) return;
  list.items.delete(id);
  list.ids = list.ids.filter((x) => x !== id);
}

/** After a (re)connect the stream sent a snapshot: events may have been missed; ask again. */
export function storesResynced(state) {
  if (list.loaded && state.route?.view === 'stores') scheduleRefresh(0);
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
    el('td', { class: 'name', data: { label: 'Name' } }, el('a', { href: `#/stores/${encodeURIComponent(store.store_id)}` }, store.name),
      store.pool ? el('span', { class: 'badge badge-pool', title: 'Unclaimed: waiting in the warm pool' }, 'pool') : null, line),
    el('td', { class: 'mono', data: { label: 'Store id' } }, store.store_id),
    el('td', { data: { label: 'Engine' } }, engineName(store.engine)),
    el('td', { data: { label: 'Status' } }, el('span', { class: badgeClass(store.status) }, store.status)),
    el('td', { data: { label: 'URL' } }, externalLink(store.url)),
    el('td', { data: { label: 'Age' } }, el('time', { datetime: store.created_at ?? '', class: 'age', data: { since: store.created_at ?? '' } }, age(store.created_at))),
  );
}

/** A store this page just made (create, clone, recover): it sorts last, so it joins the list at once
 * when the whole list is loaded and it matches the filters; otherwise "Load more" leads to it. */
export function storeCreated(state, store) {
  if (!list.loaded || list.items.has(store.store_id) || list.next || !mightMatch(store)) return;
  list.ids.push(store.store_id);
  list.items.set(store.store_id, store);
}

function initFilters() {
  const form = $('stores-filter');
  const q = $('stores-q');
  let timer = null;
  const submit = () => {
    clearTimeout(timer);
    const filters = readFilters();
    if (!sameFilters(filters, list.filters)) setFilters(filters);
  };
  // Enter (or the button) searches at once; typing searches once the user pauses.
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    submit();
  });
  q.addEventListener('input', () => {
    clearTimeout(timer);
    timer = setTimeout(submit, SEARCH_DELAY_MS);
  });
  $('stores-owner').addEventListener('input', () => {
    clearTimeout(timer);
    timer = setTimeout(submit, SEARCH_DELAY_MS);
  });
  $('stores-status').addEventListener('change', submit);
  $('stores-clear').addEventListener('click', () => {
    clearTimeout(timer);
    setFilters({ q: '', status: '', owner: '' });
    q.focus();
  });
  $('stores-more').addEventListener('click', loadMore);
}

/** Admins may filter by owner; members list only their own stores anyway. */
export function allowOwnerFilter(me) {
  $('stores-owner-field').hidden = me?.role !== 'admin';
}

/**
 * "3 of 5 stores": the user's own stores as `GET /me` counts them (`stores_used`), not a count of the
 * list, which holds only the pages loaded (and an admin's holds others' stores).
 */
export function renderQuota(state) {
  if (!state.me) return;
  const used = state.me.stores_used ?? 0;
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
