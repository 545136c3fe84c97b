//! `GET /stores` under a fixed concurrency: each worker sends its requests one after the other on a
//! kept-alive connection; every answer is read to the end and must be 200 with the expected count.
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::bail;
use reqwest::Method;

use crate::control_plane::ControlPlane;
use crate::stats::percentile;

pub struct Latencies {
    /// Sorted.
    pub samples: Vec<Duration>,
    pub wall: Duration,
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

pub async fn list_stores(
    cp: &ControlPlane,
    requests: usize,
    concurrency: usize,
    expect: usize,
) -> anyhow::Result<Latencies> {
    // Warm-up: open the connections, fill caches.
    for _ in 0..concurrency {
        check(&get(cp).await?, expect)?;
    }
    let next = Arc::new(AtomicUsize::new(0));
    let t0 = Instant::now();
    let workers = (0..concurrency).map(|_| {
        let next = next.clone();
        async move {
            let mut samples = Vec::new();
            while next.fetch_add(1, Ordering::Relaxed) < requests {
                let start = Instant::now();
                let body = get(cp).await?;
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
    Ok(Latencies { samples, wall })
}

async fn get(cp: &ControlPlane) -> anyhow::Result<impl std::ops::Deref<Target = [u8]>> {
    let resp = cp.request(Method::GET, "/stores").send().await?;
    let status = resp.status();
    let body = resp.bytes().await?;
    if !status.is_success() {
        bail!("GET /stores answered {status}");
    }
    Ok(body)
}

fn check(body: &[u8], expect: usize) -> anyhow::Result<()> {
    // Cheap check that the answer really holds every store: count the ids.
    let count = body
        .windows(br#""store_id""#.len())
        .filter(|w| w == br#""store_id""#)
        .count();
    if count != expect {
        bail!("GET /stores listed {count} stores, expected {expect}");
    }
    Ok(())
}
