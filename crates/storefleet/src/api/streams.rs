//! Open event streams (`GET /events`, `GET /stores/{id}/events`): capped per user and in all, ended
//! after a maximum lifetime, and ended within seconds when the token they were opened with is revoked
//! or expires, its user is disabled, or their dashboard session is signed out. Every request checks
//! its credentials again; a stream is one long request, so a sweeper checks them for it.
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{Stream, StreamExt};
use tokio::sync::watch;
use tokio::time::Instant;

use super::auth::Credential;
use super::session::Sessions;
use crate::domain::{TokenId, UserId};
use crate::storage::Users;
use crate::stores::Caller;

/// How often open streams' credentials are checked again.
pub const SWEEP_EVERY: Duration = Duration::from_secs(2);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub total: u32,
    pub per_user: u32,
    pub lifetime: Duration,
}

struct Open {
    user_id: UserId,
    credential: Option<Credential>,
    /// Dropping it ends the stream.
    _end: watch::Sender<()>,
}

pub struct Streams {
    limits: Limits,
    open: Mutex<HashMap<u64, Open>>,
    next_id: AtomicU64,
}

/// Why a stream could not be opened.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    PerUser(u32),
    Total(u32),
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::PerUser(n) => write!(
                f,
                "you have {n} event stream(s) open, the most allowed; close one first"
            ),
            Refused::Total(n) => write!(
                f,
                "the server has {n} event stream(s) open, the most it allows; try again later"
            ),
        }
    }
}

/// An open stream's place; dropping it frees the place.
pub struct Ticket {
    id: u64,
    streams: Arc<Streams>,
    ended: watch::Receiver<()>,
    until: Instant,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.streams
            .open
            .lock()
            .expect("streams lock")
            .remove(&self.id);
    }
}

impl Streams {
    pub fn new(limits: Limits) -> Arc<Self> {
        Arc::new(Self {
            limits,
            open: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
        })
    }

    pub fn open_count(&self) -> usize {
        self.open.lock().expect("streams lock").len()
    }

    pub fn open(self: &Arc<Self>, caller: &Caller) -> Result<Ticket, Refused> {
        let mut open = self.open.lock().expect("streams lock");
        if open.len() >= self.limits.total as usize {
            return Err(Refused::Total(self.limits.total));
        }
        let mine = open
            .values()
            .filter(|o| o.user_id == caller.user_id)
            .count();
        if mine >= self.limits.per_user as usize {
            return Err(Refused::PerUser(self.limits.per_user));
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (end, ended) = watch::channel(());
        open.insert(
            id,
            Open {
                user_id: caller.user_id.clone(),
                credential: caller.credential.clone(),
                _end: end,
            },
        );
        Ok(Ticket {
            id,
            streams: self.clone(),
            ended,
            until: Instant::now() + self.limits.lifetime,
        })
    }

    /// Ends the streams whose credentials no longer hold. A database that cannot be read ends
    /// nothing (the next sweep looks again).
    pub async fn sweep(&self, users: &Users, sessions: &Sessions) {
        let checks: Vec<(u64, UserId, Option<Credential>)> = {
            let open = self.open.lock().expect("streams lock");
            open.iter()
                .map(|(id, o)| (*id, o.user_id.clone(), o.credential.clone()))
                .collect()
        };
        let mut tokens: HashMap<TokenId, Option<UserId>> = HashMap::new();
        let mut ended = Vec::new();
        for (id, user_id, credential) in checks {
            let (token, session) = match &credential {
                Some(Credential::Token(token)) => (token, None),
                Some(Credential::Session(token, session)) => (token, Some(session)),
                None => continue,
            };
            if let Some(session) = session {
                match sessions.is_open(session).await {
                    Ok(true) => {}
                    Ok(false) => {
                        ended.push(id);
                        continue;
                    }
                    Err(e) => {
                        tracing::warn!("checking the sessions of open event streams: {e}");
                        return;
                    }
                }
            }
            if !tokens.contains_key(token) {
                let holder = match users.authenticate_token_id(token).await {
                    Ok(Ok(found)) => Some(found.user.user_id),
                    Ok(Err(_)) => None,
                    Err(e) => {
                        tracing::warn!("checking the tokens of open event streams: {e}");
                        return;
                    }
                };
                tokens.insert(token.clone(), holder);
            }
            if tokens[token].as_ref() != Some(&user_id) {
                ended.push(id);
            }
        }
        if !ended.is_empty() {
            tracing::info!(
                streams = ended.len(),
                "ending event streams whose token, user or session is no longer valid"
            );
            let mut open = self.open.lock().expect("streams lock");
            for id in ended {
                open.remove(&id);
            }
        }
    }

    /// Runs [`Streams::sweep`] every [`SWEEP_EVERY`], forever.
    pub async fn keep_sweeping(self: Arc<Self>, users: Users, sessions: Arc<Sessions>) {
        let mut every = tokio::time::interval(SWEEP_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            if self.open_count() > 0 {
                self.sweep(&users, &sessions).await;
            }
        }
    }
}

/// `inner`, until it ends, its ticket is withdrawn (credentials no longer valid) or its lifetime is up.
pub fn bounded<T, S>(ticket: Ticket, inner: S) -> impl Stream<Item = T> + Send + 'static
where
    S: Stream<Item = T> + Send + 'static,
    T: Send + 'static,
{
    async_stream::stream! {
        let mut inner = std::pin::pin!(inner);
        let mut ended = ticket.ended.clone();
        let lifetime = tokio::time::sleep_until(ticket.until);
        let mut lifetime = std::pin::pin!(lifetime);
        loop {
            tokio::select! {
                item = inner.next() => match item {
                    Some(item) => yield item,
                    None => break,
                },
                // The sender is dropped when the sweeper withdraws the ticket.
                _ = ended.changed() => break,
                () = &mut lifetime => break,
            }
        }
        drop(ticket);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Owner, Role};

    fn caller(user: &UserId) -> Caller {
        Caller {
            user_id: user.clone(),
            owner: Owner::parse("jane").unwrap(),
            role: Role::Member,
            max_stores: 1,
            remote_addr: None,
            credential: None,
        }
    }

    #[test]
    fn caps_per_user_and_in_all_and_frees_on_drop() {
        let streams = Streams::new(Limits {
            total: 3,
            per_user: 2,
            lifetime: Duration::from_secs(60),
        });
        let (a, b) = (UserId::random(), UserId::random());
        let a1 = streams.open(&caller(&a)).unwrap();
        let _a2 = streams.open(&caller(&a)).unwrap();
        assert_eq!(streams.open(&caller(&a)).err(), Some(Refused::PerUser(2)));
        let _b1 = streams.open(&caller(&b)).unwrap();
        assert_eq!(streams.open(&caller(&b)).err(), Some(Refused::Total(3)));
        drop(a1);
        assert_eq!(streams.open_count(), 2);
        assert!(streams.open(&caller(&a)).is_ok());
    }

    #[tokio::test]
    async fn a_bounded_stream_ends_at_its_lifetime() {
        let streams = Streams::new(Limits {
            total: 3,
            per_user: 2,
            lifetime: Duration::from_millis(100),
        });
        let ticket = streams.open(&caller(&UserId::random())).unwrap();
        let forever = futures::stream::pending::<()>();
        let ended =
            tokio::time::timeout(Duration::from_secs(5), bounded(ticket, forever).count()).await;
        assert_eq!(ended, Ok(0));
        assert_eq!(streams.open_count(), 0, "the place is freed");
    }

    #[tokio::test]
    async fn a_withdrawn_ticket_ends_its_stream() {
        let streams = Streams::new(Limits {
            total: 3,
            per_user: 2,
            lifetime: Duration::from_secs(600),
        });
        let ticket = streams.open(&caller(&UserId::random())).unwrap();
        let stream = bounded(ticket, futures::stream::pending::<()>());
        streams.open.lock().unwrap().clear();
        let ended = tokio::time::timeout(Duration::from_secs(5), stream.count()).await;
        assert_eq!(ended, Ok(0));
    }
}
