//! The Lease record itself (`coordination.k8s.io/v1`): one attempt to acquire or renew it, and its
//! release. Every write is a `replace` carrying the `resourceVersion` that was read, so the API
//! server refuses (409) a write based on a record someone else changed meanwhile: two candidates
//! racing for an expired Lease cannot both win, and a deposed leader cannot renew over its successor.
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::PostParams;
use kube::{Api, Client};
use tokio::time::Instant;

/// What one attempt found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// This process holds the Lease (it just acquired or renewed it).
    Leading,
    /// Another holder's Lease is still running; `holder` for the log.
    Following { holder: String },
}

/// The Lease of one control plane instance, as a candidate sees it.
pub struct LeaseLock {
    api: Api<Lease>,
    name: String,
    identity: String,
    duration: Duration,
    /// The last record seen of another holder, and when (by this process's clock) it last changed.
    /// Expiry is judged by how long the record has stood still here, never by the holder's
    /// `renewTime`: that is the holder's clock, and clocks of two nodes differ (client-go does this).
    observed: Option<(String, Instant)>,
}

impl LeaseLock {
    pub fn new(
        client: Client,
        namespace: &str,
        name: &str,
        identity: &str,
        duration: Duration,
    ) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            name: name.to_owned(),
            identity: identity.to_owned(),
            duration,
            observed: None,
        }
    }

    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// One round: create the Lease, renew it if ours, take it over if free or expired; else follow.
    /// An error (the API server unreachable, a 409 from a lost race) leaves the caller's deadline
    /// running: a leader that cannot renew stops acting before anyone may take over.
    pub async fn try_acquire_or_renew(&mut self) -> Result<Attempt, kube::Error> {
        let Some(current) = self.api.get_opt(&self.name).await? else {
            self.api
                .create(&PostParams::default(), &self.record(0))
                .await?;
            return Ok(Attempt::Leading);
        };
        let spec = current.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().unwrap_or_default();
        if holder == self.identity {
            let renewed = Lease {
                metadata: current.metadata.clone(),
                spec: Some(LeaseSpec {
                    renew_time: Some(MicroTime(Timestamp::now())),
                    lease_duration_seconds: Some(seconds(self.duration)),
                    ..spec
                }),
            };
            self.api
                .replace(&self.name, &PostParams::default(), &renewed)
                .await?;
            return Ok(Attempt::Leading);
        }
        if !holder.is_empty() && !self.expired(&current) {
            return Ok(Attempt::Following { holder });
        }
        // Free (released) or expired: take it over. The resourceVersion of what was read makes
        // this a compare-and-swap.
        let transitions = spec.lease_transitions.unwrap_or(0).saturating_add(1);
        let taken = Lease {
            metadata: current.metadata.clone(),
            ..self.record(transitions)
        };
        self.api
            .replace(&self.name, &PostParams::default(), &taken)
            .await?;
        Ok(Attempt::Leading)
    }

    /// Hands the Lease back (only if still ours): no holder and a 1 s duration, so the next
    /// candidate takes over at its next try instead of waiting out the whole duration.
    pub async fn release(&self) -> Result<bool, kube::Error> {
        let Some(current) = self.api.get_opt(&self.name).await? else {
            return Ok(false);
        };
        let spec = current.spec.clone().unwrap_or_default();
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return Ok(false);
        }
        let released = Lease {
            metadata: current.metadata.clone(),
            spec: Some(LeaseSpec {
                holder_identity: None,
                acquire_time: None,
                renew_time: Some(MicroTime(Timestamp::now())),
                lease_duration_seconds: Some(1),
                ..spec
            }),
        };
        self.api
            .replace(&self.name, &PostParams::default(), &released)
            .await?;
        Ok(true)
    }

    /// Whether another holder's record has stood still here for a whole lease duration (its own
    /// `leaseDurationSeconds`, as that holder announced it).
    fn expired(&mut self, lease: &Lease) -> bool {
        let spec = lease.spec.as_ref();
        let fingerprint = format!(
            "{}/{:?}/{}",
            spec.and_then(|s| s.holder_identity.as_deref())
                .unwrap_or_default(),
            spec.and_then(|s| s.renew_time.as_ref()).map(|t| t.0),
            lease
                .metadata
                .resource_version
                .as_deref()
                .unwrap_or_default()
        );
        let now = Instant::now();
        let since = match &self.observed {
            Some((seen, at)) if *seen == fingerprint => *at,
            _ => {
                self.observed = Some((fingerprint, now));
                now
            }
        };
        let duration = spec
            .and_then(|s| s.lease_duration_seconds)
            .and_then(|s| u64::try_from(s).ok())
            .map_or(self.duration, Duration::from_secs);
        now.duration_since(since) >= duration
    }

    /// A record naming this process the holder from now on.
    fn record(&self, transitions: i32) -> Lease {
        let now = MicroTime(Timestamp::now());
        Lease {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                labels: Some(
                    [(
                        "app.kubernetes.io/managed-by".to_owned(),
                        "storefleet".to_owned(),
                    )]
                    .into(),
                ),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(self.identity.clone()),
                acquire_time: Some(now.clone()),
                renew_time: Some(now),
                lease_duration_seconds: Some(seconds(self.duration)),
                lease_transitions: Some(transitions),
                ..LeaseSpec::default()
            }),
        }
    }
}

fn seconds(d: Duration) -> i32 {
    i32::try_from(d.as_secs().max(1)).unwrap_or(i32::MAX)
}
