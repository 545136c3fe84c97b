//! The backoff of the controller's watches after an error.
//!
//! kube-runtime applies one backoff to the merged stream of all the controller's watches (Stores,
//! namespaces, workloads): any error pauses all of them. When the API server comes back after an
//! outage, each watch resumes with a resource version the new watch cache no longer has, gets a 410
//! (relist), and pauses everything once more, in turn; with kube's default (up to 30 s) the
//! controller was blind for minutes after a 30 s outage. Short and capped low instead: a retry
//! every second costs one request per watch (a handful, however many stores). Capped at 3 s, the six
//! watches' 410s in turn still cost 18 s after an outage (seen in faults_outage's log); at 1 s, 6 s.
use std::time::Duration;

use kube::runtime::utils::Backoff;

const FIRST: Duration = Duration::from_millis(250);
const MAX: Duration = Duration::from_secs(1);

/// 250 ms, doubling to 1 s; back to 250 ms on the next event that is not an error.
pub struct WatchBackoff {
    next: Duration,
}

impl Default for WatchBackoff {
    fn default() -> Self {
        Self { next: FIRST }
    }
}

impl Iterator for WatchBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let now = self.next;
        self.next = (self.next * 2).min(MAX);
        Some(now)
    }
}

impl Backoff for WatchBackoff {
    fn reset(&mut self) {
        self.next = FIRST;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_to_a_low_cap_and_resets() {
        let mut b = WatchBackoff::default();
        let first: Vec<u64> = b.by_ref().take(6).map(|d| d.as_millis() as u64).collect();
        assert_eq!(first, [250, 500, 1000, 1000, 1000, 1000]);
        b.reset();
        assert_eq!(b.next(), Some(FIRST));
    }
}
