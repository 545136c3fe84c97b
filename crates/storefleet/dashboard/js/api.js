// The public REST API, as any script would call it. Same origin only; the session cookie authenticates
// (the browser sends it; scripts cannot read it). Errors are application/problem+json.

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.title = problem.title ?? '';
    this.detail = problem.detail ?? '';
    // Last segment of the problem type URI, e.g. "quota-exceeded".
    this.slug = (problem.type ?? '').split('/').pop();
  }

  get offline() {
    return this.status === 0;
  }
}

let onUnauthorized = () => {};
/** Called whenever the server says the session is not (or no longer) valid. */
export function setUnauthorizedHandler(handler) {
  onUnauthorized = handler;
}

async function request(method, path, { body, headers = {}, quiet401 = false } = {}) {
  const init = { method, headers: { Accept: 'application/json', ...headers }, credentials: 'same-origin', cache: 'no-store' };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch {
    throw new ApiError(0, { title: 'Network error', detail: 'Storefleet cannot be reached. Check your network connection and try again.' });
  }
  const text = await response.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = null;
  }
  if (!response.ok) {
    const problem = json && typeof json === 'object' ? json : { title: response.statusText, detail: text.slice(0, 200) };
    const error = new ApiError(response.status, problem);
    if (response.status === 401 && !quiet401) onUnauthorized(error);
    throw error;
  }
  return { status: response.status, body: json };
}

function randomKey() {
  // crypto.randomUUID needs a secure context; getRandomValues works everywhere.
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

export const api = {
  me: () => request('GET', '/me', { quiet401: true }),
  signIn: (token) => request('POST', '/session', { body: { token }, quiet401: true }),
  signOut: () => request('DELETE', '/session'),
  // The idempotency key makes a retried click (or a lost answer) create one store, not two.
  createStore: (name, engine) =>
    request('POST', '/stores', { body: { name: name || null, engine }, headers: { 'Idempotency-Key': randomKey() } }),
  // A new store made from a backup (a clone, or a deleted store brought back); the backup is part
  // of the idempotency key's request.
  cloneStore: (name, backupId) =>
    request('POST', '/stores', { body: { name: name || null, from_backup: backupId }, headers: { 'Idempotency-Key': randomKey() } }),
  deleteStore: (id) => request('DELETE', `/stores/${encodeURIComponent(id)}`),
  credentials: (id) => request('GET', `/stores/${encodeURIComponent(id)}/credentials`),
  backups: (id) => request('GET', `/stores/${encodeURIComponent(id)}/backups`),
  createBackup: (id) => request('POST', `/stores/${encodeURIComponent(id)}/backups`),
  deleteBackup: (id, backupId) =>
    request('DELETE', `/stores/${encodeURIComponent(id)}/backups/${encodeURIComponent(backupId)}`),
  restores: (id) => request('GET', `/stores/${encodeURIComponent(id)}/restores`),
  restore: (id, backupId) => request('POST', `/stores/${encodeURIComponent(id)}/restore`, { body: { backupId } }),
  backupSchedule: (id) => request('GET', `/stores/${encodeURIComponent(id)}/backup-schedule`),
  // schedule: off, hourly, daily, weekly, or null for the platform's default
  setBackupSchedule: (id, schedule) =>
    request('PUT', `/stores/${encodeURIComponent(id)}/backup-schedule`, { body: { schedule } }),
  deletedStores: () => request('GET', '/deleted-stores'),
  rollouts: () => request('GET', '/rollouts'),
  // The warm pool's kinds (admins only).
  pool: () => request('GET', '/pool'),
  // verb: pause, resume or abort
  rolloutAction: (id, verb) => request('POST', `/rollouts/${encodeURIComponent(id)}/${verb}`),
  // One page of the stores list. Filters (typed by the user) only ever travel as URLSearchParams;
  // empty ones are left out, as an empty `q` would filter nothing anyway.
  stores: ({ limit, cursor, status, owner, q }) => request('GET', `/stores?${listQuery({ limit, cursor, status, owner, q })}`),
  // One page of the audit log, newest first; `cursor` continues with older entries.
  audit: ({ storeId, limit, cursor }) =>
    request('GET', `/audit?${listQuery({ page: 'true', limit, store_id: storeId, cursor })}`),
};

function listQuery(params) {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== '') query.set(key, String(value));
  }
  return query;
}
