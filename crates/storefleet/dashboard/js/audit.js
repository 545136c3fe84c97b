// The audit log (GET /audit?page=true), optionally for one store, one page at a time, newest first:
// "Load older entries" appends the next page (the cursor continues after the last entry shown).
// Loaded when the page opens or the filter changes; the "Show" button loads it again.
import { api } from './api.js';
import { $, el, routeHash, showError, setText, announce } from './dom.js';
import { dateTime, plural } from './format.js';

export const AUDIT_PAGE_SIZE = 100;

const ACTIONS = {
  create: 'Created',
  update: 'Changed',
  delete: 'Deleted',
  ready: 'Became ready',
  failed: 'Failed',
  denied: 'Refused',
  credentials_revealed: 'Revealed admin login',
};

// The view's one list: its filter, the cursor of its last page, how many entries it shows.
const shown = { storeId: '', pageSize: AUDIT_PAGE_SIZE, next: null, count: 0, ticket: 0 };

export function initAudit(ctx) {
  const field = $('audit-store');
  $('audit-filter').addEventListener('submit', (event) => {
    event.preventDefault();
    const target = routeHash('/audit', { store: field.value.trim(), per_page: perPageParam() });
    // Same filter: load again (a manual refresh); otherwise the route change loads it.
    if (location.hash === target) loadAudit(field.value.trim(), shown.pageSize);
    else ctx.navigate(target);
  });
  $('audit-all').addEventListener('click', () => {
    field.value = '';
    const target = routeHash('/audit', { per_page: perPageParam() });
    if (location.hash === target) loadAudit('', shown.pageSize);
    else ctx.navigate(target);
  });
  $('audit-more').addEventListener('click', loadMore);
}

// A page size other than the default (from a link) stays in the address while filtering.
const perPageParam = () => (shown.pageSize === AUDIT_PAGE_SIZE ? '' : shown.pageSize);

/** Fills the store-id suggestions from the stores the list shows (never the whole fleet). */
export function suggestStores(stores) {
  const ids = stores.map((s) => s.store_id).join(' ');
  const box = $('audit-store-ids');
  if (box.dataset.ids === ids) return;
  box.dataset.ids = ids;
  box.replaceChildren(...stores.map((s) => el('option', { value: s.store_id }, s.name)));
}

/** The newest page for `storeId` (empty: every entry the user may read). */
export async function loadAudit(storeId, pageSize = AUDIT_PAGE_SIZE) {
  const field = $('audit-store');
  field.value = storeId;
  showError('audit-error', null, field);
  const ticket = ++shown.ticket;
  Object.assign(shown, { storeId, pageSize, next: null, count: 0 });
  $('audit-more').hidden = true;
  setText('audit-summary', 'Loading…');
  try {
    const { body } = await api.audit({ storeId, limit: pageSize });
    if (ticket !== shown.ticket) return;
    $('audit-body').replaceChildren(...body.items.map(row));
    showPage(body);
  } catch (error) {
    if (ticket !== shown.ticket) return;
    failed(error, field);
  }
}

/** The next, older page, after the last entry shown. */
async function loadMore() {
  if (!shown.next) return;
  const ticket = ++shown.ticket;
  const button = $('audit-more');
  button.disabled = true;
  try {
    const { body } = await api.audit({ storeId: shown.storeId, limit: shown.pageSize, cursor: shown.next });
    if (ticket !== shown.ticket) return;
    $('audit-body').append(...body.items.map(row));
    showPage(body);
    announce(`${plural(body.items.length, 'older entry', 'older entries')} shown.`);
  } catch (error) {
    if (ticket !== shown.ticket) return;
    failed(error, null);
  } finally {
    button.disabled = false;
  }
}

function showPage(body) {
  shown.count += body.items.length;
  shown.next = body.next_cursor;
  const of = shown.storeId ? ` for ${shown.storeId}` : '';
  setText('audit-summary', `${plural(shown.count, 'entry', 'entries')}${of}, newest first${shown.next ? '; older ones with “Load older entries”' : ''}.`);
  $('audit-empty').hidden = shown.count > 0;
  $('audit-table').hidden = shown.count === 0;
  $('audit-more').hidden = !shown.next;
}

function failed(error, field) {
  if (error.status === 401) return;
  if (field) {
    setText('audit-summary', '');
    $('audit-table').hidden = true;
    $('audit-empty').hidden = true;
  }
  showError('audit-error', error.offline ? error.detail : `Cannot show the audit log: ${error.detail || error.title}`,
    error.status === 400 ? field : null);
}

function row(entry) {
  return el('tr', { data: { action: entry.action, id: entry.id } },
    el('td', { data: { label: 'When' } }, el('time', { datetime: entry.at }, dateTime(entry.at))),
    el('td', { data: { label: 'Who' } }, entry.actor),
    el('td', { data: { label: 'Action' } }, ACTIONS[entry.action] ?? entry.action),
    el('td', { class: 'mono', data: { label: 'Store' } },
      entry.store_id ? el('a', { href: routeHash('/audit', { store: entry.store_id }) }, entry.store_id) : '—'),
    // A refusal one caller repeated within a minute is one entry with a count.
    el('td', { data: { label: 'Outcome' } }, entry.count > 1 ? `${entry.outcome} ×${entry.count}` : entry.outcome),
    el('td', { data: { label: 'Detail' } }, entry.detail || '—'),
  );
}
