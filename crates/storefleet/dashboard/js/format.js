// Formatting of times, counts and statuses.

const STATUS_CLASS = {
  Ready: 'badge-ready',
  Provisioning: 'badge-provisioning',
  Failed: 'badge-failed',
  Deleting: 'badge-deleting',
  // A restore from a backup runs: in progress, as provisioning is.
  Restoring: 'badge-provisioning',
};

export function badgeClass(status) {
  return `badge ${STATUS_CLASS[status] ?? 'badge-deleting'}`;
}

/** A backup's or a restore's state: Succeeded, Failed, or a step in between (Pending, Running, BackingUp…). */
export function jobBadgeClass(state) {
  const kind = state === 'Succeeded' ? 'ready' : state === 'Failed' ? 'failed' : 'provisioning';
  return `badge badge-${kind}`;
}

/** "just now", "5 min", "3 h", "2 d" since an ISO time. */
export function age(iso, now = Date.now()) {
  if (!iso) return '—';
  const seconds = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (seconds < 45) return 'just now';
  const minutes = Math.round(seconds / 60);
  if (minutes < 60) return `${minutes} min`;
  const hours = Math.round(minutes / 60);
  if (hours < 48) return `${hours} h`;
  return `${Math.round(hours / 24)} d`;
}

export function dateTime(iso) {
  if (!iso) return '—';
  return new Date(iso).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'medium' });
}

export function plural(n, one, many) {
  return `${n} ${n === 1 ? one : many}`;
}

/** "3 of 5 stores" */
export function quotaText(used, max) {
  return `${used} of ${plural(max, 'store', 'stores')}`;
}

/** The server's lower-case messages as sentences: "the store is ready" -> "The store is ready." */
export function sentence(text) {
  if (!text) return '';
  const capital = text.charAt(0).toUpperCase() + text.slice(1);
  return /[.!?]$/.test(capital) ? capital : `${capital}.`;
}

export const ENGINE_NAMES = { woocommerce: 'WooCommerce' };
export const engineName = (engine) => ENGINE_NAMES[engine] ?? engine;
