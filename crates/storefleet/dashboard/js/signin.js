// The sign-in form: trades an API token for a session cookie (POST /session).
import { api } from './api.js';
import { $, showError, setText } from './dom.js';

export function initSignIn({ onSignedIn }) {
  const form = $('signin-form');
  const field = $('token');
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const token = field.value.trim();
    if (!token) {
      showError('signin-error', 'Enter your API token.', field);
      field.focus();
      return;
    }
    const button = form.querySelector('button[type="submit"]');
    button.disabled = true;
    showError('signin-error', null, field);
    try {
      const { body: me } = await api.signIn(token);
      field.value = '';
      onSignedIn(me);
    } catch (error) {
      const text =
        error.status === 401
          ? 'This token was not accepted. Check that you copied all of it, or ask your platform team for a new one.'
          : error.offline
            ? error.detail
            : `Sign-in failed: ${error.detail || error.title}`;
      showError('signin-error', text, field);
      field.focus();
      field.select();
    } finally {
      button.disabled = false;
    }
  });
}

/** Shows the form, with an optional note (why we are here: signed out, session ended). */
export function showSignIn(note) {
  setText('signin-note', note ?? '');
  showError('signin-error', null, $('token'));
}
