//! The failed sign-in limit: refused credentials (every 401, with or without credentials, and
//! cross-origin session attempts) are counted per client address (GCRA: a
//! burst, then so many per minute). Once an address is over, every request of it that carries
//! credentials gets 429 until the limiter would take one more failure; a success does not reset
//! the count, failures only age out. Guessing tokens stays slow, and a flood of bad tokens cannot
//! flood the audit log.
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::rate_limit::{self, Keyed, Rate};

/// Put in a response's extensions by whoever refused the request's credentials (a 401, a session
/// cookie from another origin, two session cookies): the guard counts it against the client's address.
#[derive(Clone, Copy, Debug)]
pub struct RefusedCredentials;

pub struct AuthFailures {
    failures: Option<Keyed<IpAddr>>,
    /// Addresses over the limit, until when.
    blocked: Mutex<HashMap<IpAddr, Instant>>,
}

impl AuthFailures {
    pub fn new(rate: Option<Rate>) -> Self {
        Self {
            failures: rate.map(rate_limit::keyed),
            blocked: Mutex::new(HashMap::new()),
        }
    }

    /// How long `address` must still wait, if it is blocked.
    pub fn blocked_for(&self, address: IpAddr) -> Option<Duration> {
        let blocked = self.blocked.lock().expect("auth failures lock");
        let until = *blocked.get(&address)?;
        until.checked_duration_since(Instant::now())
    }

    /// A request from `address` was refused for its credentials.
    pub fn record(&self, address: IpAddr) {
        let Some(failures) = &self.failures else {
            return;
        };
        if let Err(wait) = rate_limit::wait_time(failures, &address) {
            let now = Instant::now();
            let mut blocked = self.blocked.lock().expect("auth failures lock");
            // Blocks that ended go whenever a new one starts: no timer task needed.
            blocked.retain(|_, until| *until > now);
            if blocked.insert(address, now + wait).is_none() {
                tracing::warn!(%address, retry_after_ms = wait.as_millis() as u64, "too many refused sign-ins; blocking the address for a while");
            }
            drop(blocked);
            failures.retain_recent();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_after_the_burst_and_only_that_address() {
        let failures = AuthFailures::new(Some(Rate {
            per: Duration::from_secs(60),
            count: 1,
            burst: 3,
        }));
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        for _ in 0..3 {
            assert_eq!(failures.blocked_for(a), None);
            failures.record(a);
        }
        assert_eq!(failures.blocked_for(a), None, "the burst itself is allowed");
        failures.record(a);
        let wait = failures.blocked_for(a).expect("blocked after the burst");
        assert!(wait > Duration::from_secs(50), "{wait:?}");
        assert_eq!(failures.blocked_for(b), None);
    }

    #[test]
    fn off_never_blocks() {
        let failures = AuthFailures::new(None);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..100 {
            failures.record(a);
        }
        assert_eq!(failures.blocked_for(a), None);
    }
}
