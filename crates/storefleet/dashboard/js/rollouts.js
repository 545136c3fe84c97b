// Fleet rollouts (admins only): each rollout's phase, progress and message, every store's step, and
// Pause / Resume / Abort, all through the public API (GET /rollouts, POST /rollouts/{id}/{verb}).
// Rollouts have no event stream (the live stream is of Stores), so while this view is open and a
// rollout is unfinished it reloads the list every few seconds; nowhere else does the page poll.
import { api } from './api.js';
import { $, el, showError, setText, announce } from './dom.js';
import { sentence } from './format.js';

const REFRESH_MS = 3_000;
const PHASE_CLASS = {
  Progressing: 'badge badge-provisioning',
  Paused: 'badge badge-failed',
  Completed: 'badge badge-ready',
  Aborted: 'badge badge-deleting',
};
const STEP_TEXT = {
  Pending: 'Pending',
  BackingUp: 'Backing up',
  Upgrading: 'Upgrading (gate)',
  Upgraded: 'Upgraded',
  RollingBack: 'Rolling back',
  RolledBack: 'Rolled back',
};

let ctxRef;
let loading = 0;
let shown = [];
// The rollout the abort dialog asks about, and the button that opened it (focus goes back there).
let aborting = null;

const finished = (r) => r.phase === 'Completed' || r.phase === 'Aborted';
const visible = () => ctxRef?.state.route?.view === 'rollouts';

export function initRollouts(ctx) {
  ctxRef = ctx;
  $('rollouts-refresh').addEventListener('click', () => loadRollouts());
  const dialog = $('abort-dialog');
  $('abort-cancel').addEventListener('click', () => dialog.close('cancel'));
  $('abort-confirm').addEventListener('click', async () => {
    if (!aborting) return;
    const { id } = aborting;
    dialog.close('confirmed');
    await act(id, 'abort');
  });
  dialog.addEventListener('close', () => {
    const opener = aborting?.opener;
    aborting = null;
    if (dialog.returnValue !== 'confirmed' && opener?.isConnected) opener.focus();
    dialog.returnValue = '';
  });
  setInterval(() => {
    if (visible() && shown.some((r) => !finished(r))) loadRollouts({ quiet: true });
  }, REFRESH_MS);
}

/** Shows whether this user may see rollouts at all (the API answers 403 to members anyway). */
export function allowRollouts(me) {
  $('nav-rollouts').hidden = me?.role !== 'admin';
}

export async function loadRollouts({ quiet = false } = {}) {
  const ticket = ++loading;
  if (!quiet) setText('rollouts-summary', 'Loading…');
  showError('rollouts-error', null);
  try {
    const { body } = await api.rollouts();
    if (ticket !== loading) return;
    render(body);
  } catch (error) {
    if (ticket !== loading || error.status === 401) return;
    setText('rollouts-summary', '');
    shown = [];
    $('rollouts-list').replaceChildren();
    $('rollouts-empty').hidden = true;
    const why = error.status === 403 ? 'Only admins see fleet rollouts.' : error.offline ? error.detail
      : `Cannot show the rollouts: ${error.detail || error.title}`;
    showError('rollouts-error', why);
  }
}

function render(list) {
  // Newest first: the one an operator just started, or is acting on, is on top.
  shown = [...list].reverse();
  const open = shown.filter((r) => !finished(r)).length;
  setText('rollouts-summary', `${shown.length} ${shown.length === 1 ? 'rollout' : 'rollouts'}, ${open} unfinished; newest first.`);
  $('rollouts-empty').hidden = shown.length > 0;
  // Keep focus on the button it was on across a re-render (the list is rebuilt every few seconds).
  const focused = document.activeElement?.dataset?.rolloutAction;
  $('rollouts-list').replaceChildren(...shown.map(card));
  if (focused) document.querySelector(`[data-rollout-action="${CSS.escape(focused)}"]`)?.focus();
}

function card(r) {
  const id = r.rollout_id;
  const phase = r.phase ?? 'Waiting';
  const head = `rollout-${id}-title`;
  const button = (verb, label, cls, enabled) => {
    const b = el('button', { type: 'button', class: `button small ${cls}`, data: { rolloutAction: `${id}:${verb}` } }, label);
    b.disabled = !enabled;
    b.addEventListener('click', (event) => {
      if (verb === 'abort') confirmAbort(r, event.currentTarget);
      else act(id, verb);
    });
    return b;
  };
  const done = finished(r);
  return el('article', { class: 'panel rollout', 'aria-labelledby': head, data: { rollout: id, phase } },
    el('div', { class: 'heading-row' },
      el('h2', { id: head }, el('span', { class: 'mono' }, id), ' → ', el('span', { class: 'mono' }, r.target)),
      el('span', { class: PHASE_CLASS[phase] ?? 'badge badge-provisioning', data: { role: 'phase' } }, phase)),
    el('p', { class: 'message', data: { role: 'message' } },
      r.phase ? sentence(r.message) : 'Not started yet: the controller moves one rollout at a time, oldest first.'),
    el('dl', { class: 'facts' },
      el('dt', {}, 'Progress'), el('dd', { data: { role: 'progress' } }, r.progress ?? '—'),
      el('dt', {}, 'Values'), el('dd', { class: 'mono' }, JSON.stringify(r.values)),
      el('dt', {}, 'Waves'), el('dd', {}, `canary, then ${r.batch_size} at a time, at most ${r.max_unavailable} unavailable`)),
    el('div', { class: 'actions' },
      button('pause', 'Pause', 'secondary', !done && !r.paused),
      button('resume', 'Resume', 'secondary', !done && r.paused && !r.aborted),
      button('abort', 'Abort…', 'danger', !done && !r.aborted)),
    // The pre-upgrade backup's column only on a platform that makes them (a backup target).
    r.stores.length === 0 ? null : ((backups) => el('table', { class: 'table rollout-stores' },
      el('caption', { class: 'visually-hidden' }, `Stores of rollout ${id}, in the order it moves them`),
      el('thead', {}, el('tr', {},
        el('th', { scope: 'col' }, 'Store'), el('th', { scope: 'col' }, 'Step'),
        el('th', { scope: 'col' }, 'Previous revision'),
        backups ? el('th', { scope: 'col' }, 'Backup') : null,
        el('th', { scope: 'col' }, 'Message'))),
      el('tbody', {}, ...r.stores.map((s) => el('tr', { data: { store: s.store_id, step: s.step } },
        el('td', { class: 'mono', data: { label: 'Store' } }, el('a', { href: `#/stores/${encodeURIComponent(s.store_id)}` }, s.store_id)),
        el('td', { data: { label: 'Step' } }, STEP_TEXT[s.step] ?? s.step),
        el('td', { data: { label: 'Previous revision' } }, s.previous_revision == null ? '—' : String(s.previous_revision)),
        backups ? el('td', { class: 'mono', data: { label: 'Backup' } }, s.backup || '—') : null,
        el('td', { data: { label: 'Message' } }, s.message || '—'))))))(r.stores.some((s) => s.backup)),
  );
}

function confirmAbort(r, opener) {
  aborting = { id: r.rollout_id, opener };
  setText('abort-dialog-title', `Abort rollout ${r.rollout_id}?`);
  setText('abort-dialog-text',
    `No further store moves to ${r.target}. Stores already upgraded keep it; a store moving now finishes its gate. This cannot be undone.`);
  setText('abort-confirm', `Abort ${r.rollout_id}`);
  $('abort-dialog').showModal();
}

async function act(id, verb) {
  showError('rollouts-error', null);
  try {
    await api.rolloutAction(id, verb);
    announce(`Rollout ${id}: ${verb} requested.`);
  } catch (error) {
    if (error.status === 401) return;
    showError('rollouts-error', error.offline ? error.detail : `Cannot ${verb} ${id}: ${error.detail || error.title}`);
  }
  await loadRollouts({ quiet: true });
}
