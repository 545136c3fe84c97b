//! Leader election: several replicas serve the API, exactly one runs the controllers (the store
//! controller, fleet rollouts, and any other loop behind [`Leadership::run_while_leading`]). The
//! replicas compete for one `coordination.k8s.io/v1` Lease in the platform's namespace
//! ([`lease`]); the winner renews it every [`RENEW_EVERY`], the others retry every [`RETRY_EVERY`]
//! and take it over once it has stood still for its whole duration ([`DURATION`]).
//!
//! Never two leaders acting: a leader acts only until [`RENEW_DEADLINE`] after the start of its last
//! successful renewal, which is shorter than [`DURATION`]; a candidate counts the duration from when
//! it saw that renewal, which is later. So a leader that cannot renew (the API server unreachable, a
//! stalled process) has stopped its loops, and with them its helm processes (`kill_on_drop`), before
//! anyone may take over. A `kill -9`ed leader's helm processes die with it (`PR_SET_PDEATHSIG`).
//! A graceful stop hands the Lease back at once ([`Leadership::step_down`]).
mod gate;
pub mod lease;

use std::sync::Arc;
use std::time::Duration;

use kube::Client;
use tokio::sync::{Mutex, watch};
use tokio::time::Instant;

use crate::metrics::Metrics;
use lease::{Attempt, LeaseLock};

/// How long a Lease holds without renewal: after a `kill -9`, another replica takes over
/// within this plus one [`RETRY_EVERY`] (and up to one more for seeing the last renewal late).
pub const DURATION: Duration = Duration::from_secs(10);
/// How often the leader renews.
pub const RENEW_EVERY: Duration = Duration::from_secs(2);
/// How often a candidate looks at the Lease: also how soon it notices a released one.
pub const RETRY_EVERY: Duration = Duration::from_secs(1);
/// A leader stops acting this long after the start of its last successful renewal, if no other
/// renewal succeeded since: 3 s before the earliest moment another may take over, for its loops to
/// stop.
pub const RENEW_DEADLINE: Duration = Duration::from_secs(7);
/// One Lease request may take this long; then it counts as failed (the deadline keeps running).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// Where the Lease is and who this process is (`--leader-election-*`).
#[derive(Clone, Debug)]
pub struct Settings {
    /// `None`: the client's default namespace (in a pod: its own; else the kubeconfig's context).
    pub namespace: Option<String>,
    pub lease: String,
    pub identity: String,
}

/// This process's part, as the loops behind the gate see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Term {
    Following,
    /// Acting is allowed until `until` (`None`: forever, leader election off).
    Leading {
        until: Option<Instant>,
    },
}

impl Term {
    fn leading_now(self) -> bool {
        match self {
            Term::Following => false,
            Term::Leading { until } => until.is_none_or(|t| Instant::now() < t),
        }
    }
}

/// The elector task and the Lease it holds (for the hand-back).
type Elector = (tokio::task::JoinHandle<()>, Arc<Mutex<LeaseLock>>);

/// The gate of every controller loop in this process.
pub struct Leadership {
    term: watch::Sender<Term>,
    /// Loops running behind the gate now: a step-down waits until they have stopped.
    running: watch::Sender<usize>,
    /// The elector task and its Lease, while electing.
    elector: Mutex<Option<Elector>>,
    metrics: Arc<Metrics>,
}

impl Leadership {
    /// Leader election off (`--leader-election=false`, one replica): always leading.
    pub fn always(metrics: Arc<Metrics>) -> Arc<Self> {
        metrics.leader(true);
        Arc::new(Self {
            term: watch::Sender::new(Term::Leading { until: None }),
            running: watch::Sender::new(0),
            elector: Mutex::new(None),
            metrics,
        })
    }

    /// Competes for the Lease from now on, in a task of its own.
    pub fn elect(client: Client, settings: &Settings, metrics: Arc<Metrics>) -> Arc<Self> {
        let namespace = settings
            .namespace
            .clone()
            .unwrap_or_else(|| client.default_namespace().to_owned());
        tracing::info!(
            lease = %settings.lease,
            namespace = %namespace,
            identity = %settings.identity,
            "leader election: competing for the Lease"
        );
        let lock = Arc::new(Mutex::new(LeaseLock::new(
            client,
            &namespace,
            &settings.lease,
            &settings.identity,
            DURATION,
        )));
        metrics.leader(false);
        let this = Arc::new(Self {
            term: watch::Sender::new(Term::Following),
            running: watch::Sender::new(0),
            elector: Mutex::new(None),
            metrics,
        });
        let task = tokio::spawn(elect(this.clone(), lock.clone(), settings.lease.clone()));
        *this.elector.try_lock().expect("not shared yet") = Some((task, lock));
        this
    }

    pub fn is_leading(&self) -> bool {
        self.term.borrow().leading_now()
    }

    /// Graceful stop: no more loops start, the running ones are waited for (they stop at once:
    /// the term ends), then the Lease is handed back so the next replica takes over at its next try.
    pub async fn step_down(&self) {
        let Some((task, lock)) = self.elector.lock().await.take() else {
            return;
        };
        task.abort();
        let _ = task.await;
        self.set_term(Term::Following);
        let mut running = self.running.subscribe();
        if tokio::time::timeout(RETRY_EVERY, running.wait_for(|n| *n == 0))
            .await
            .is_err()
        {
            // Loops that do not stop within this cannot be waited for: keep the Lease (it runs out).
            tracing::warn!("leader election: loops still running; not handing the Lease back");
            return;
        }
        let lock = lock.lock().await;
        match tokio::time::timeout(REQUEST_TIMEOUT, lock.release()).await {
            Ok(Ok(true)) => tracing::info!(
                identity = lock.identity(),
                "leader election: Lease handed back"
            ),
            Ok(Ok(false)) => {}
            Ok(Err(e)) => tracing::warn!("leader election: handing the Lease back failed: {e}"),
            Err(_) => tracing::warn!("leader election: handing the Lease back timed out"),
        }
    }

    fn set_term(&self, term: Term) {
        let was = self.term.send_replace(term);
        let (before, now) = (was != Term::Following, term != Term::Following);
        if before != now {
            self.metrics.leader(now);
        }
    }
}

/// The elector: one attempt per round, the term set from what it found.
async fn elect(leadership: Arc<Leadership>, lock: Arc<Mutex<LeaseLock>>, lease: String) {
    let mut holder_seen = String::new();
    loop {
        let started = Instant::now();
        let attempt = {
            let mut lock = lock.lock().await;
            tokio::time::timeout(REQUEST_TIMEOUT, lock.try_acquire_or_renew()).await
        };
        let was_leading = *leadership.term.borrow() != Term::Following;
        match attempt {
            Ok(Ok(Attempt::Leading)) => {
                if !was_leading {
                    tracing::info!(lease = %lease, "leader election: leading; starting the controllers");
                }
                leadership.set_term(Term::Leading {
                    until: Some(started + RENEW_DEADLINE),
                });
            }
            Ok(Ok(Attempt::Following { holder })) => {
                if was_leading {
                    tracing::warn!(lease = %lease, %holder, "leader election: leadership lost; stopping the controllers");
                } else if holder != holder_seen {
                    tracing::info!(lease = %lease, %holder, "leader election: following");
                }
                holder_seen = holder;
                leadership.set_term(Term::Following);
            }
            Ok(Err(kube::Error::Api(e))) if e.code == 409 => {
                // Someone else wrote the Lease between our read and our write: they won.
                if was_leading {
                    tracing::warn!(lease = %lease, "leader election: the Lease changed under us; stopping the controllers");
                }
                leadership.set_term(Term::Following);
            }
            failed => {
                let why = match failed {
                    Ok(Err(e)) => e.to_string(),
                    _ => "timed out".to_owned(),
                };
                tracing::warn!(lease = %lease, "leader election: Lease request failed: {why}");
                // The deadline keeps running; past it, this replica is no leader any more.
                if was_leading && !leadership.is_leading() {
                    tracing::warn!(lease = %lease, "leader election: not renewed in time; stopping the controllers");
                    leadership.set_term(Term::Following);
                }
            }
        }
        let leading = *leadership.term.borrow() != Term::Following;
        let wait = if leading { RENEW_EVERY } else { RETRY_EVERY };
        tokio::time::sleep_until(started + wait).await;
    }
}
