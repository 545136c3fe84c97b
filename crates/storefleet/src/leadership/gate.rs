//! The gate: a controller loop runs only while this replica leads, and is dropped (stopping it and
//! killing its helm processes) when the term ends, the deadline passes unrenewed, or the process
//! steps down. Any loop can sit behind it: it is started afresh each term, from nothing but its
//! factory, because a loop that kept state from an earlier term could act on what another leader
//! has changed since.
use std::future::Future;

use super::{Leadership, Term};

impl Leadership {
    /// Runs `start()` whenever this replica leads, stopping it when it no longer does; answers only
    /// if a loop ends by itself (a bug, or its stream closed) or the gate is gone.
    pub async fn run_while_leading<F, Fut>(&self, what: &'static str, mut start: F)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = ()>,
    {
        let mut term = self.term.subscribe();
        loop {
            // Wait for a term that is still running.
            let mut until = loop {
                let now = *term.borrow_and_update();
                if now.leading_now() {
                    match now {
                        Term::Leading { until } => break until,
                        Term::Following => unreachable!("leading_now"),
                    }
                }
                if term.changed().await.is_err() {
                    return;
                }
            };
            tracing::info!(what, "leading: starting");
            let _running = Running::new(self);
            let run = start();
            tokio::pin!(run);
            loop {
                let deadline = async move {
                    match until {
                        Some(t) => tokio::time::sleep_until(t).await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    () = &mut run => {
                        tracing::warn!(what, "stopped by itself");
                        return;
                    }
                    () = deadline => {
                        tracing::warn!(what, "the Lease was not renewed in time: stopping");
                        break;
                    }
                    changed = term.changed() => {
                        if changed.is_err() {
                            return;
                        }
                        match *term.borrow_and_update() {
                            Term::Leading { until: renewed } => until = renewed,
                            Term::Following => {
                                tracing::info!(what, "no longer leading: stopping");
                                break;
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Counts a loop as running for as long as it lives ([`Leadership::step_down`] waits for zero).
struct Running<'a>(&'a Leadership);

impl<'a> Running<'a> {
    fn new(leadership: &'a Leadership) -> Self {
        leadership.running.send_modify(|n| *n += 1);
        Self(leadership)
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.running.send_modify(|n| *n -= 1);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use tokio::sync::{Mutex, watch};
    use tokio::time::Instant;

    use super::super::{Leadership, Term};
    use crate::metrics::Metrics;

    fn following() -> Arc<Leadership> {
        Arc::new(Leadership {
            term: watch::Sender::new(Term::Following),
            running: watch::Sender::new(0),
            elector: Mutex::new(None),
            metrics: Arc::new(Metrics::default()),
        })
    }

    /// Starts a gated loop that counts its starts; answers the counter of starts.
    fn gated(leadership: &Arc<Leadership>) -> Arc<AtomicUsize> {
        let starts = Arc::new(AtomicUsize::new(0));
        let (l, s) = (leadership.clone(), starts.clone());
        tokio::spawn(async move {
            l.run_while_leading("test loop", || {
                s.fetch_add(1, Ordering::SeqCst);
                std::future::pending()
            })
            .await;
        });
        starts
    }

    async fn running(leadership: &Leadership) -> usize {
        tokio::time::sleep(Duration::from_millis(50)).await;
        *leadership.running.borrow()
    }

    #[tokio::test]
    async fn a_loop_runs_only_within_a_term_and_stops_at_an_unrenewed_deadline() {
        let leadership = following();
        let starts = gated(&leadership);
        assert_eq!(running(&leadership).await, 0, "started while following");

        let until = Instant::now() + Duration::from_millis(300);
        leadership.set_term(Term::Leading { until: Some(until) });
        assert_eq!(running(&leadership).await, 1);
        // Not renewed: the loop stops by the deadline alone, with no word from the elector.
        tokio::time::sleep_until(until).await;
        assert_eq!(
            running(&leadership).await,
            0,
            "still acting past the deadline"
        );

        // Renewed in time: it runs on, the same loop (not restarted).
        let until = Instant::now() + Duration::from_millis(300);
        leadership.set_term(Term::Leading { until: Some(until) });
        assert_eq!(running(&leadership).await, 1);
        leadership.set_term(Term::Leading {
            until: Some(until + Duration::from_secs(60)),
        });
        tokio::time::sleep_until(until + Duration::from_millis(100)).await;
        assert_eq!(running(&leadership).await, 1, "stopped although renewed");
        assert_eq!(starts.load(Ordering::SeqCst), 2);

        // Lost: stopped at once.
        leadership.set_term(Term::Following);
        assert_eq!(running(&leadership).await, 0);
        assert_eq!(starts.load(Ordering::SeqCst), 2);
    }
}
