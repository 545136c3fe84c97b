// The dashboard's entry point: state, routing (#/stores[?q=…&status=…&owner=…&per_page=…], #/stores/<id>,
// #/audit?store=<id>, #/rollouts), sign-in and the live stream. Every change of a store arrives as an
// event; nothing polls. The store list is paged (stores.js); the quota line is GET /me's count.
import { api, setUnauthorizedHandler } from './api.js';
import { $, announce, setText } from './dom.js';
import { connect } from './live.js';
import { initSignIn, showSignIn } from './signin.js';
import {
  initStores, renderStores, renderQuota, refreshAges, showStores, clearStores, shownStores, storeChanged, storeCreated,
  storeDeleted, storesResynced, allowOwnerFilter,
} from './stores.js';
import { initStore, renderStore } from './store.js';
import { initAudit, loadAudit, suggestStores, AUDIT_PAGE_SIZE } from './audit.js';
import { initRollouts, loadRollouts, allowRollouts } from './rollouts.js';
import { allowPool, loadPool, poolStoreChanged } from './pool.js';
import { initClone } from './clone.js';
import { clearDeleted, loadDeleted } from './deleted.js';

const VIEWS = ['signin', 'stores', 'store', 'audit', 'rollouts'];

const state = {
  me: null,
  stores: new Map(),
  // True once the first snapshot arrived: before that "no stores" would be a lie.
  loaded: false,
  live: null,
  route: null,
};

const ctx = {
  state,
  navigate(hash) {
    if (location.hash === hash) route();
    else location.hash = hash;
  },
  upsert(store, { fromCreate = false } = {}) {
    // The live stream may already have a newer state of a store we just created.
    if (fromCreate && state.stores.has(store.store_id)) return;
    state.stores.set(store.store_id, store);
    if (fromCreate) {
      storeCreated(state, store);
      refreshMe();
    }
    render();
  },
  render: () => render(),
  markDeleting(id) {
    const store = state.stores.get(id);
    if (store && store.status !== 'Deleting') {
      state.stores.set(id, { ...store, status: 'Deleting', message: 'deletion requested' });
      render();
    }
  },
};

function parseRoute() {
  const hash = location.hash || '#/stores';
  const [path, query = ''] = hash.slice(1).split('?');
  const params = new URLSearchParams(query);
  const store = path.match(/^\/stores\/([^/]+)$/);
  if (store) return { view: 'store', id: decodeURIComponent(store[1]) };
  if (path === '/audit') return { view: 'audit', store: params.get('store') ?? '', perPage: perPage(params, AUDIT_PAGE_SIZE) };
  if (path === '/rollouts') return { view: 'rollouts' };
  return { view: 'stores', query };
}

/** `per_page` of a link (1 to 500), for a smaller or larger page than the default. */
function perPage(params, fallback) {
  const n = Number(params.get('per_page'));
  return Number.isInteger(n) && n >= 1 && n <= 500 ? n : fallback;
}

function show(view) {
  $('booting').hidden = true;
  for (const name of VIEWS) $(`view-${name}`).hidden = name !== view;
  for (const link of document.querySelectorAll('[data-nav]')) {
    const current = link.dataset.nav === view || (view === 'store' && link.dataset.nav === 'stores');
    if (current) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
}

function route() {
  if (!state.me) return;
  const next = parseRoute();
  const changed = JSON.stringify(next) !== JSON.stringify(state.route);
  state.route = next;
  show(next.view);
  const titles = { stores: 'Stores', store: 'Store', audit: 'Audit log', rollouts: 'Fleet rollouts' };
  document.title = `${titles[next.view]} · Storefleet`;
  if (next.view === 'audit') loadAudit(next.store, next.perPage);
  if (next.view === 'rollouts' && changed) loadRollouts();
  if (next.view === 'stores' && changed) {
    showStores(new URLSearchParams(next.query));
    loadDeleted();
  }
  render();
  // After a navigation, start keyboard and screen reader users at the new page's heading.
  if (changed) {
    const heading = document.querySelector(`#view-${next.view} h1:not([hidden])`);
    if (heading) {
      heading.tabIndex = -1;
      heading.focus({ preventScroll: true });
    }
  }
}

function render() {
  if (!state.me || !state.route) return;
  renderQuota(state);
  suggestStores(shownStores(state));
  if (state.route.view === 'stores') renderStores(state);
  else if (state.route.view === 'store') renderStore(state, state.route.id);
}

let meTimer = null;
/**
 * The quota line counts as `GET /me` does (`stores_used`): asked again when a store of the user's
 * came or went, a burst of events making one request.
 */
function refreshMe() {
  clearTimeout(meTimer);
  meTimer = setTimeout(async () => {
    if (!state.me) return;
    try {
      const { body } = await api.me();
      if (!state.me || body.user !== state.me.user) return;
      state.me = body;
      render();
    } catch (error) {
      // Otherwise (offline, a server error) the line keeps its last count until the next change.
      if (error.status === 401 && state.me) signedOut('Your session has ended. Sign in again.');
    }
  }, 200);
}

function startLive() {
  state.live?.stop();
  state.live = connect({
    onSnapshot(list) {
      state.stores = new Map(list.map((s) => [s.store_id, s]));
      state.loaded = true;
      // Events may have been missed while disconnected: the list and the quota are asked for again.
      storesResynced(state);
      refreshMe();
      render();
    },
    onStore(store) {
      const before = state.stores.get(store.store_id);
      state.stores.set(store.store_id, store);
      if (!before || before.status !== store.status) announce(`Store “${store.name}” is ${store.status}.`);
      storeChanged(state, store);
      poolStoreChanged(store, before);
      // A new store of the user's (made elsewhere) counts against their quota.
      if (!before && store.owner === state.me?.user) refreshMe();
      render();
    },
    onDeleted(id) {
      const before = state.stores.get(id);
      state.stores.delete(id);
      if (before) announce(`Store “${before.name}” was deleted.`);
      storeDeleted(id);
      if (!before || before.owner === state.me?.user) refreshMe();
      render();
      // Gone with a final backup, it is one of the deleted stores now.
      if (state.route?.view === 'stores') loadDeleted();
    },
    onState(status) {
      const banner = $('connection');
      if (status === 'open') {
        if (!banner.hidden) announce('Connection restored.');
        banner.hidden = true;
      } else {
        banner.textContent = 'Connection lost. Reconnecting… The list shows the last known state until the connection is back.';
        banner.hidden = false;
      }
    },
    async checkSession() {
      try {
        await api.me();
        return true;
      } catch (error) {
        if (error.status === 401) {
          signedOut('Your session has ended. Sign in again.');
          return false;
        }
        return true; // offline or a server error: keep trying
      }
    },
  });
}

function signedIn(me) {
  state.me = me;
  state.route = null;
  $('nav').hidden = false;
  $('account').hidden = false;
  setText('who', `${me.user} (${me.role})`);
  allowRollouts(me);
  allowOwnerFilter(me);
  allowPool(me);
  loadPool();
  startLive();
  route();
}

function signedOut(note) {
  state.live?.stop();
  state.live = null;
  state.me = null;
  clearTimeout(meTimer);
  state.stores = new Map();
  state.loaded = false;
  state.route = null;
  clearDeleted();
  clearStores();
  $('nav').hidden = true;
  $('account').hidden = true;
  $('connection').hidden = true;
  document.title = 'Sign in · Storefleet';
  showSignIn(note);
  show('signin');
  $('token').focus();
}

async function boot() {
  setUnauthorizedHandler(() => {
    if (state.me) signedOut('Your session has ended. Sign in again.');
  });
  initSignIn({ onSignedIn: signedIn });
  initStores(ctx);
  initStore(ctx);
  initAudit(ctx);
  initRollouts(ctx);
  initClone(ctx);
  window.addEventListener('hashchange', route);
  $('sign-out').addEventListener('click', async () => {
    try {
      await api.signOut();
      signedOut('You are signed out.');
    } catch (error) {
      announce(`Sign-out failed: ${error.detail || error.title}`);
    }
  });
  document.querySelector('.skip-link').addEventListener('click', (event) => {
    event.preventDefault();
    const main = $('main');
    main.focus();
  });
  setInterval(refreshAges, 30_000);
  try {
    const { body: me } = await api.me();
    signedIn(me);
  } catch (error) {
    signedOut(error.status === 401 ? '' : error.offline ? error.detail : `Storefleet answered: ${error.detail || error.title}`);
  }
}

boot();
