// The live list: one EventSource on GET /events (same origin, session cookie). The server sends a
// `snapshot` first and after every re-list, then `store` and `deleted` events. No polling: when the
// stream breaks, the browser reconnects by itself; when it gives up (an HTTP error), we reopen it with
// a growing delay, after checking that the session still holds.

export function connect({ onSnapshot, onStore, onDeleted, onState, checkSession }) {
  let source = null;
  let timer = null;
  let delay = 1000;
  let stopped = false;

  const open = () => {
    if (stopped) return;
    source = new EventSource('/events');
    source.addEventListener('open', () => {
      delay = 1000;
      onState('open');
    });
    source.addEventListener('snapshot', (e) => onSnapshot(JSON.parse(e.data)));
    source.addEventListener('store', (e) => onStore(JSON.parse(e.data)));
    source.addEventListener('deleted', (e) => onDeleted(JSON.parse(e.data).store_id));
    source.addEventListener('error', () => {
      if (stopped) return;
      onState('lost');
      if (source.readyState === EventSource.CLOSED) {
        source.close();
        timer = setTimeout(retry, delay);
        delay = Math.min(delay * 2, 30000);
      }
    });
  };

  const retry = async () => {
    if (stopped) return;
    // A 401 ends everything (the handler shows the sign-in form); anything else: try again.
    if (await checkSession()) open();
  };

  open();
  return {
    stop() {
      stopped = true;
      clearTimeout(timer);
      source?.close();
    },
  };
}
