//! The control plane under test: the release `storefleet serve` binary, started the way the test
//! harness starts it (own instance, temp SQLite, admin token, --install-crd), and its memory.
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::Value;

#[derive(Clone)]
pub struct Settings {
    pub binary: PathBuf,
    pub chart: PathBuf,
    pub helm: PathBuf,
    pub instance: String,
    pub max_stores: u32,
    pub max_parallel: u16,
    /// SQLite database and log live here (kept across restarts).
    pub dir: PathBuf,
    /// More `storefleet serve` flags (the backup bench's target, key, agent image and values).
    pub extra: Vec<String>,
}

pub struct ControlPlane {
    child: Child,
    pub base: String,
    pub token: String,
    pub http: reqwest::Client,
    pub log: PathBuf,
    /// When the process was spawned.
    pub spawned: Instant,
    /// From spawning to the first `/readyz` 200 (polled every 20 ms).
    pub ready_after: Duration,
}

impl ControlPlane {
    pub async fn start(s: &Settings, token: &str) -> anyhow::Result<Self> {
        let log = s.dir.join("storefleet.log");
        let offset = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
        let out = File::options().create(true).append(true).open(&log)?;
        let spawned = Instant::now();
        let child = Command::new(&s.binary)
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--install-crd",
                "--log-format",
                "json",
            ])
            .arg("--instance")
            .arg(&s.instance)
            .arg("--database-url")
            .arg(format!(
                "sqlite://{}",
                s.dir.join("storefleet.db").display()
            ))
            .arg("--chart")
            .arg(&s.chart)
            .arg("--helm")
            .arg(&s.helm)
            .args(["--admin-token", token])
            .args(["--max-stores", &s.max_stores.to_string()])
            .args(["--max-parallel", &s.max_parallel.to_string()])
            .args(["--provision-timeout", "10m"])
            .args(&s.extra)
            .env("RUST_LOG", "info")
            // The per-token rate limits would answer 429 to the load of bench 3 and the batch of
            // bench 2: measured is the work behind the API, not the limiter (0: no limit).
            .env("STOREFLEET_RATE_LIMIT_READS", "0")
            .env("STOREFLEET_RATE_LIMIT_WRITES", "0")
            .env_remove("STOREFLEET_ADMIN_TOKEN")
            .env_remove("STOREFLEET_VALUES")
            .env_remove("STOREFLEET_INSTANCE")
            .current_dir(&s.dir)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("starting {}", s.binary.display()))?;
        let mut cp = ControlPlane {
            child,
            base: String::new(),
            token: token.to_owned(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(300))
                .build()?,
            log,
            spawned,
            ready_after: Duration::ZERO,
        };
        let deadline = Instant::now() + Duration::from_secs(120);
        let addr = loop {
            if let Some(addr) = listening_addr(&cp.log, offset) {
                break addr;
            }
            if let Some(status) = cp.child.try_wait()? {
                bail!(
                    "storefleet serve exited ({status}); see {}",
                    cp.log.display()
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "storefleet serve did not listen within 120 s; see {}",
                    cp.log.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        cp.base = format!("http://{addr}");
        loop {
            let ok = cp.http.get(cp.url("/readyz")).send().await;
            if ok.is_ok_and(|r| r.status().is_success()) {
                cp.ready_after = spawned.elapsed();
                break;
            }
            if Instant::now() > deadline {
                bail!("/readyz not 200 within 120 s; see {}", cp.log.display());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(cp)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, self.url(path))
            .bearer_auth(&self.token)
    }

    /// Resident set now (VmRSS) and its peak so far (VmHWM), in bytes.
    pub fn memory(&self) -> anyhow::Result<Memory> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        let field = |name: &str| -> anyhow::Result<u64> {
            let line = status
                .lines()
                .find(|l| l.starts_with(name))
                .with_context(|| format!("no {name} in /proc/<pid>/status"))?;
            let kib: u64 = line
                .split_whitespace()
                .nth(1)
                .context("malformed line")?
                .parse()?;
            Ok(kib * 1024)
        };
        Ok(Memory {
            rss: field("VmRSS:")?,
            hwm: field("VmHWM:")?,
        })
    }

    /// The `storefleet_stores` gauge summed over phases: Stores in the controller's cache.
    pub async fn cached_stores(&self) -> anyhow::Result<u64> {
        self.metric("storefleet_stores{").await
    }

    /// `storefleet_stores_reconciled`: Stores whose reconcile succeeded since the process started.
    pub async fn reconciled_stores(&self) -> anyhow::Result<u64> {
        self.metric("storefleet_stores_reconciled ").await
    }

    /// The sum of the `/metrics` samples whose line starts with `prefix`.
    async fn metric(&self, prefix: &str) -> anyhow::Result<u64> {
        let text = self
            .http
            .get(self.url("/metrics"))
            .send()
            .await?
            .text()
            .await?;
        Ok(text
            .lines()
            .filter(|l| l.starts_with(prefix))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64)
    }

    /// SIGTERM, then SIGKILL after 30 s.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.child.try_wait()?.is_none() {
            if Instant::now() > deadline {
                self.child.kill()?;
                self.child.wait()?;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(())
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub struct Memory {
    pub rss: u64,
    pub hwm: u64,
}

/// Megabytes (10^6 bytes), the unit of the memory target.
pub fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

fn listening_addr(path: &Path, offset: u64) -> Option<String> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = File::open(path).ok()?;
    f.seek(SeekFrom::Start(offset)).ok()?;
    let mut s = String::new();
    f.read_to_string(&mut s).ok()?;
    s.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["message"] == "listening")
        .and_then(|v| v["addr"].as_str().map(str::to_owned))
}
