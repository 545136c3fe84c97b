// The audit log (GET /audit), optionally for one store. Loaded when the page opens or the filter
// changes; the "Show" button reloads it.
import { api } from './api.js';
import { $, el, showError, setText } from './dom.js';
import { dateTime } from './format.js';

const ACTIONS = {
  create: 'Created',
  update: 'Changed',
  delete: 'Deleted',
  ready: 'Became ready',
  failed: 'Failed',
  denied: 'Refused',
  credentials_revealed: 'Revealed admin login',
};

let loading = 0;

export function initAudit(ctx) {
  const field = $('audit-store');
  $('audit-filter').addEventListener('submit', (event) => {
    event.preventDefault();
    const store = field.value.trim();
    const target = store ? `#/audit?store=${encodeURIComponent(store)}` : '#/audit';
    // Same filter: load again (a manual refresh); otherwise the route change loads it.
    if (location.hash === target) loadAudit(store);
    else ctx.navigate(target);
  });
  $('audit-all').addEventListener('click', () => {
    field.value = '';
    if (location.hash === '#/audit') loadAudit('');
    else ctx.navigate('#/audit');
  });
}

/** Fills the store-id suggestions from the stores we know of. */
export function suggestStores(state) {
  $('audit-store-ids').replaceChildren(...state.sorted().map((s) => el('option', { value: s.store_id }, s.name)));
}

export async function loadAudit(storeId) {
  const field = $('audit-store');
  field.value = storeId;
  showError('audit-error', null, field);
  const ticket = ++loading;
  setText('audit-summary', 'Loading…');
  try {
    const { body: entries } = await api.audit(storeId);
    if (ticket !== loading) return;
    setText('audit-summary', `${entries.length} ${entries.length === 1 ? 'entry' : 'entries'}${storeId ? ` for ${storeId}` : ''}, newest first.`);
    $('audit-empty').hidden = entries.length > 0;
    $('audit-table').hidden = entries.length === 0;
    $('audit-body').replaceChildren(...entries.map(row));
  } catch (error) {
    if (ticket !== loading || error.status === 401) return;
    setText('audit-summary', '');
    $('audit-table').hidden = true;
    $('audit-empty').hidden = true;
    showError('audit-error', error.offline ? error.detail : `Cannot show the audit log: ${error.detail || error.title}`,
      error.status === 400 ? field : null);
  }
}

function row(entry) {
  return el('tr', { data: { action: entry.action } },
    el('td', { data: { label: 'When' } }, el('time', { datetime: entry.at }, dateTime(entry.at))),
    el('td', { data: { label: 'Who' } }, entry.actor),
    el('td', { data: { label: 'Action' } }, ACTIONS[entry.action] ?? entry.action),
    el('td', { class: 'mono', data: { label: 'Store' } },
      entry.store_id ? el('a', { href: `#/audit?store=${encodeURIComponent(entry.store_id)}` }, entry.store_id) : '—'),
    // A refusal one caller repeated within a minute is one entry with a count.
    el('td', { data: { label: 'Outcome' } }, entry.count > 1 ? `${entry.outcome} ×${entry.count}` : entry.outcome),
    el('td', { data: { label: 'Detail' } }, entry.detail || '—'),
  );
}
