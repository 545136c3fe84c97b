// The provisioning timeline, from the Store's conditions as the controller writes them
// (crates/storefleet/src/controller/status.rs): NamespaceReady, Released, WorkloadsReady,
// SetupComplete and Ready. WorkloadsReady covers both the database (the MariaDB StatefulSet) and
// WordPress (the Deployment); while it is False its message names the workloads still waiting.

export const STEPS = [
  { key: 'namespace', label: 'Namespace' },
  { key: 'release', label: 'Helm release' },
  { key: 'database', label: 'Database' },
  { key: 'wordpress', label: 'WordPress' },
  { key: 'setup', label: 'WooCommerce setup' },
];

const STATE_TEXT = { done: 'done', current: 'in progress', pending: 'waiting', failed: 'failed' };

export function steps(store) {
  const byType = Object.fromEntries((store.conditions ?? []).map((c) => [c.type, c]));
  const isTrue = (type) => byType[type]?.status === 'True';
  const ready = store.status === 'Ready';
  const workloads = byType.WorkloadsReady;
  // A workload kind is still waiting if WorkloadsReady is not True and either nothing exists yet or
  // its message names that kind.
  const waitingFor = (kind) =>
    !workloads || (workloads.status !== 'True' && (workloads.reason === 'NoWorkloads' || workloads.message.includes(kind)));
  const done = {
    namespace: ready || isTrue('NamespaceReady') || isTrue('Released'),
    release: ready || isTrue('Released'),
    database: ready || isTrue('WorkloadsReady') || !waitingFor('StatefulSet'),
    wordpress: ready || isTrue('WorkloadsReady') || !waitingFor('Deployment'),
    setup: ready || isTrue('SetupComplete'),
  };
  const detail = {
    namespace: byType.NamespaceReady,
    release: byType.Released,
    database: workloads,
    wordpress: workloads,
    setup: byType.SetupComplete,
  };
  // A step can start once the ones it needs are done: the release needs the namespace, the rest the release.
  const canStart = { namespace: true, release: done.namespace, database: done.release, wordpress: done.release, setup: done.release };
  let failedMarked = false;
  return STEPS.map(({ key, label }) => {
    let state;
    if (done[key]) state = 'done';
    else if (store.status === 'Failed' && !failedMarked) { state = 'failed'; failedMarked = true; }
    else if (store.status === 'Provisioning' && canStart[key]) state = 'current';
    else state = 'pending';
    const condition = detail[key];
    const note = state === 'done' || !condition || condition.status === 'True' ? '' : condition.message;
    return { key, label, state, stateText: STATE_TEXT[state], note };
  });
}

/** "2 of 5 steps" for the list; the first unfinished step's label. */
export function progress(store) {
  const all = steps(store);
  const doneCount = all.filter((s) => s.state === 'done').length;
  const next = all.find((s) => s.state !== 'done');
  return { doneCount, total: all.length, next: next?.label };
}
