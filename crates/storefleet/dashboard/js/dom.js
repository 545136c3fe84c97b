// Small DOM helpers. Text always goes in through textContent: store names are any Unicode a user
// typed, and nothing a user typed is ever parsed as HTML.

export const $ = (id) => document.getElementById(id);

/** el('td', {class: 'x', data: {label: 'Name'}}, 'text', childNode) */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') node.className = value;
    else if (key === 'data') Object.assign(node.dataset, value);
    else if (key === 'text') node.textContent = value;
    else node.setAttribute(key, value === true ? '' : String(value));
  }
  node.append(...children.filter((c) => c !== null && c !== undefined && c !== false));
  return node;
}

export function setText(id, text) {
  $(id).textContent = text ?? '';
}

/** Shows an error message in place (a role="alert" element), or hides it with `null`. */
export function showError(id, text, field) {
  const node = $(id);
  node.textContent = text ?? '';
  node.hidden = !text;
  if (field) {
    if (text) field.setAttribute('aria-invalid', 'true');
    else field.removeAttribute('aria-invalid');
  }
}

let announceTimer;
/** Tells screen reader users about a change that happened elsewhere on the page. */
export function announce(text) {
  const node = $('announcer');
  node.textContent = '';
  clearTimeout(announceTimer);
  // A fresh text node after a tick makes the live region speak even when the text repeats.
  announceTimer = setTimeout(() => { node.textContent = text; }, 50);
}

/** A link to another host; opens a new tab and sends no referrer. */
export function externalLink(href, text) {
  return el('a', { href, target: '_blank', rel: 'noopener noreferrer' }, text ?? href);
}

/** A dashboard address with a query, e.g. routeHash('/audit', {store: id}) -> "#/audit?store=…";
 * empty values are left out. What a user typed only ever travels through URLSearchParams. */
export function routeHash(path, params = {}) {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== '') query.set(key, String(value));
  }
  const text = query.toString();
  return `#${path}${text ? `?${text}` : ''}`;
}
