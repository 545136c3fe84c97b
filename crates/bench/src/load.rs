//! `GET /stores` (the whole list, or one page of it) under a fixed concurrency: each worker sends
//! its requests one after the other on a kept-alive connection; every answer is read to the end and
//! must be 200 with the expected count of stores.
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use reqwest::Method;

use crate::control_plane::ControlPlane;
use crate::stats::percentile;

pub struct Latencies {
    /// Sorted.
    pub samples: Vec<Duration>,
    pub wall: Duration,
    /// Bytes of one answer (the last one read).
    pub bytes: usize,
}

impl Latencies {
    pub fn p(&self, p: f64) -> Duration {
        percentile(&self.samples, p)
    }
    pub fn max(&self) -> Duration {
        self.samples.last().copied().unwrap_or_default()
    }
    pub fn per_second(&self) -> f64 {
        self.samples.len() as f64 / self.wall.as_secs_f64()
    }
}

/// `requests` GETs of `path` (`/stores`, `/stores?limit=50&cursor=...`), each answer listing
/// `expect` stores.
pub async fn list_stores(
    cp: &ControlPlane,
    path: &str,
    requests: usize,
    concurrency: usize,
    expect: usize,
) -> anyhow::Result<Latencies> {
    // Warm-up: open the connections, fill caches.
    let mut bytes = 0;
    for _ in 0..concurrency {
        let body = get(cp, path).await?;
        check(&body, expect)?;
        bytes = body.len();
    }
    let next = Arc::new(AtomicUsize::new(0));
    let t0 = Instant::now();
    let workers = (0..concurrency).map(|_| {
        let next = next.clone();
        async move {
            let mut samples = Vec::new();
            while next.fetch_add(1, Ordering::Relaxed) < requests {
                let start = Instant::now();
                let body = get(cp, path).await?;
                // Latency = until the whole answer arrived; checking it is the client's own work.
                samples.push(start.elapsed());
                check(&body, expect)?;
            }
            anyhow::Ok(samples)
        }
    });
    let mut samples: Vec<Duration> = futures::future::try_join_all(workers)
        .await?
        .into_iter()
        .flatten()
        .collect();
    let wall = t0.elapsed();
    samples.sort();
    Ok(Latencies {
        samples,
        wall,
        bytes,
    })
}

/// The `cursor` of a page in the middle of the list: pages of `limit` followed from the first,
/// `pages` of them. Not timed.
pub async fn cursor_after(cp: &ControlPlane, limit: usize, pages: usize) -> anyhow::Result<String> {
    let mut path = format!("/stores?limit={limit}");
    let mut cursor = String::new();
    for _ in 0..pages {
        let page: serde_json::Value = serde_json::from_slice(&get(cp, &path).await?)?;
        cursor = page["next_cursor"]
            .as_str()
            .with_context(|| format!("GET {path}: no next_cursor"))?
            .to_owned();
        // Cursors are URL-safe base64 (docs/api.md).
        path = format!("/stores?limit={limit}&cursor={cursor}");
    }
    Ok(cursor)
}

async fn get(cp: &ControlPlane, path: &str) -> anyhow::Result<impl std::ops::Deref<Target = [u8]>> {
    let resp = cp.request(Method::GET, path).send().await?;
    let status = resp.status();
    let body = resp.bytes().await?;
    if !status.is_success() {
        bail!("GET {path} answered {status}");
    }
    Ok(body)
}

fn check(body: &[u8], expect: usize) -> anyhow::Result<()> {
    // Cheap check that the answer really holds the stores: count the ids.
    let count = body
        .windows(br#""store_id""#.len())
        .filter(|w| w == br#""store_id""#)
        .count();
    if count != expect {
        bail!("GET /stores listed {count} stores, expected {expect}");
    }
    Ok(())
}
