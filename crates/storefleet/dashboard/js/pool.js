// The warm pool, for admins (docs/pool.md): one line above the stores list, per kind "2 of 3 ready",
// from `GET /pool`. Members never see it (the API refuses them, and the line stays hidden). It is
// asked for again when a pool store changes (the live stream), at most once a second.
import { api } from './api.js';
import { $, el } from './dom.js';

let allowed = false;
let timer = null;

export function allowPool(me) {
  allowed = me?.role === 'admin';
  if (!allowed) $('pool-summary').hidden = true;
}

export async function loadPool() {
  if (!allowed) return;
  const box = $('pool-summary');
  try {
    const { body } = await api.pool();
    box.hidden = body.length === 0;
    $('pool-kinds').replaceChildren(
      ...body.map((k) =>
        el('li', { data: { kind: `${k.engine}/${k.plan}` } },
          `${k.engine} ${k.plan}: ${k.ready} of ${k.target} ready`,
          k.stores > k.ready ? ` (${k.stores - k.ready} being provisioned)` : '')),
    );
  } catch {
    // The summary is a convenience: the stores list (which shows pool stores too) is the truth.
    box.hidden = true;
  }
}

/** A store changed: a pool store (or one just claimed from it) changes the summary. */
export function poolStoreChanged(store, before) {
  if (!allowed || !(store.pool || before?.pool)) return;
  clearTimeout(timer);
  timer = setTimeout(loadPool, 1000);
}
