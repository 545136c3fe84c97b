//! Bench 7, the warm pool (issue 16, docs/pool.md): `POST /stores?wait=true` to its answer Ready,
//! claimed from the pool against made cold, and where a claim's time goes.
//!
//! Cold: a control plane without a pool; each store is created, answered Ready, deleted (and gone)
//! before the next. Pool: a control plane with `--pool woocommerce/small=<size>` and
//! `--max-stores <size + 1>` (size: `--pool-size`, default all the claims); the bench waits until
//! every pool store is Ready, then claims them one after another. At that limit the pool does not
//! refill (it never takes the last slot), so no refill's provisioning runs beside a claim being
//! measured: the figure is the claim alone, on a cluster that also holds the other (idle) stores.
//! With more claims than the pool holds, the claims run in rounds: after a round its claimed
//! stores are deleted (and gone), the pool refills, and the next round starts once every pool store
//! is Ready again. Real pods need rounds: the node's 2 CPUs do not fit 10 idle stores' requests.
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ListParams, LogParams};
use kube::{Api, Client, ResourceExt};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::control_plane::{ControlPlane, Settings};
use crate::stats::{Row, median, secs};
use crate::{provision, seed};

pub struct Options {
    pub claims: usize,
    /// The pool's size (at most `claims`); claims run in rounds of this many.
    pub pool_size: usize,
    /// The real-pod cluster (targets differ: real MariaDB, Apache and the setup Job's container).
    pub real_pods: bool,
}

/// One `POST /stores?wait=true`, timed to the store Ready as asked for.
struct Answer {
    id: String,
    took: Duration,
    posted_at: Timestamp,
    /// The wait answered Ready with a view that was not the store asked for (another name: the
    /// pool's identity, from before the claim), so the time is from polling `GET /stores/{id}`.
    stale: bool,
}

/// Creates a store named `name` and waits for it to be Ready as that store: the answer of
/// `?wait=true` when it is (201, Ready, the name asked for). An answer that says Ready with another
/// name is not the store asked for: then `GET /stores/{id}` is polled (every 50 ms) until it is, so a
/// claim is never timed by a view with the pool's identity.
async fn create_and_wait(cp: &ControlPlane, name: &str) -> anyhow::Result<Answer> {
    let posted_at = Timestamp::now();
    let t0 = Instant::now();
    let resp = cp
        .request(Method::POST, "/stores?wait=true")
        .json(&json!({ "name": name }))
        .send()
        .await?;
    let status = resp.status();
    let body: Value = resp.json().await?;
    let id = body["store_id"]
        .as_str()
        .with_context(|| format!("POST /stores?wait=true answered {status}: {body}"))?
        .to_owned();
    if status == StatusCode::CREATED && body["status"] == "Ready" && body["name"] == name {
        return Ok(Answer {
            id,
            took: t0.elapsed(),
            posted_at,
            stale: false,
        });
    }
    ensure!(
        status.is_success() && body["status"] != "Failed",
        "POST /stores?wait=true answered {status}: {body}"
    );
    eprintln!(
        "[bench] {id}: ?wait=true answered {status} {} {:?}, not the store asked for ({name:?}); polling",
        body["status"], body["name"]
    );
    let deadline = Duration::from_secs(900);
    loop {
        let view: Value = cp
            .request(Method::GET, &format!("/stores/{id}"))
            .send()
            .await?
            .json()
            .await?;
        if view["status"] == "Ready" && view["name"] == name {
            return Ok(Answer {
                id,
                took: t0.elapsed(),
                posted_at,
                stale: true,
            });
        }
        ensure!(view["status"] != "Failed", "{id} failed: {view}");
        ensure!(
            t0.elapsed() < deadline,
            "{id} not Ready as {name:?}: {view}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn run(
    settings: &Settings,
    token: &str,
    client: &Client,
    options: &Options,
) -> anyhow::Result<Vec<Row>> {
    let n = options.claims;
    // Cold: no pool.
    let cp = ControlPlane::start(settings, token).await?;
    let mut cold = Vec::new();
    for i in 0..n {
        let a = create_and_wait(&cp, &format!("Cold {i}")).await?;
        eprintln!("[bench] cold {i}: {} POST to Ready {}", a.id, secs(a.took));
        cold.push(a.took);
        provision::delete_via_storefleet(&cp, client, &settings.instance, &[a.id]).await?;
    }
    cp.stop().await?;

    // The pool, filled and Ready before each round of claims.
    let size = options.pool_size.clamp(1, n.max(1));
    let mut pooled = Settings {
        max_stores: size as u32 + 1,
        ..settings.clone()
    };
    pooled
        .extra
        .extend(["--pool".to_owned(), format!("woocommerce/small={size}")]);
    let cp = ControlPlane::start(&pooled, token).await?;
    let deadline = Duration::from_secs(if options.real_pods { 1200 } else { 300 });
    let mut claims = Vec::new();
    let mut stale = 0;
    let mut parts: Vec<Parts> = Vec::new();
    let mut round = Vec::new();
    for i in 0..n {
        if i % size == 0 {
            if !round.is_empty() {
                // The last round's claimed stores go, so the pool may refill their slots.
                provision::delete_via_api(&cp, client, &std::mem::take(&mut round)).await?;
            }
            let t0 = Instant::now();
            loop {
                let ready = pool_ready(&cp).await?;
                if ready >= size {
                    break;
                }
                ensure!(
                    t0.elapsed() < deadline,
                    "{ready} of {size} pool stores Ready after {}",
                    secs(deadline)
                );
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            eprintln!("[bench] pool of {size} Ready in {}", secs(t0.elapsed()));
        }
        let a = create_and_wait(&cp, &format!("Claimed {i}")).await?;
        eprintln!("[bench] claim {i}: {} POST to Ready {}", a.id, secs(a.took));
        let b = breakdown(client, &cp, &a, options.real_pods).await?;
        for line in &b.lines {
            eprintln!("[bench]   {line}");
        }
        claims.push(a.took);
        stale += usize::from(a.stale);
        parts.push(b.parts);
        round.push(a.id);
    }
    cp.stop().await?;
    // The claimed stores, with the control plane stopped (a running pool would refill the slots
    // they free): finalizers cleared, the Stores deleted, their namespaces collected.
    seed::remove(client, &settings.instance).await?;
    seed::wait_namespaces_gone(client, &settings.instance, Duration::from_secs(600)).await?;

    eprintln!(
        "[bench] 7: claims [{}]; cold [{}]",
        crate::stats::list(&claims, secs),
        crate::stats::list(&cold, secs)
    );
    Ok(rows(options, &claims, &cold, &parts, stale))
}

/// Unclaimed pool stores Ready, as an admin sees them (`pool: true`).
async fn pool_ready(cp: &ControlPlane) -> anyhow::Result<usize> {
    let list: Value = cp
        .request(Method::GET, "/stores")
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok(list
        .as_array()
        .context("GET /stores: not a list")?
        .iter()
        .filter(|s| s["pool"] == true && s["status"] == "Ready")
        .count())
}

/// Where one claim's time went, in seconds from the POST (absent: not seen). Kubernetes stamps Jobs
/// and pods to the second; the container's log lines (real pods) and the control plane's log to the
/// microsecond.
#[derive(Default)]
struct Parts {
    helm_started: Option<f64>,
    job_created: Option<f64>,
    container_started: Option<f64>,
    first_log: Option<f64>,
    last_log: Option<f64>,
    job_completed: Option<f64>,
    controller_ready: Option<f64>,
    answered: f64,
}

struct Breakdown {
    parts: Parts,
    lines: Vec<String>,
}

async fn breakdown(
    client: &Client,
    cp: &ControlPlane,
    a: &Answer,
    real_pods: bool,
) -> anyhow::Result<Breakdown> {
    let since = |t: Timestamp| -> f64 { t.duration_since(a.posted_at).as_secs_f64() };
    let mut events: Vec<(f64, String)> = Vec::new();
    let mut parts = Parts {
        answered: a.took.as_secs_f64(),
        ..Parts::default()
    };
    // The control plane's own steps for this store since the POST.
    let log = std::fs::read_to_string(&cp.log).unwrap_or_default();
    for line in log.lines() {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let Some(at) = v["timestamp"].as_str().and_then(|t| t.parse().ok()) else {
            continue;
        };
        if v["store_id"] != a.id.as_str() || at < a.posted_at {
            continue;
        }
        let message = v["message"].as_str().unwrap_or_default().to_owned();
        let t = since(at);
        match message.as_str() {
            "helm upgrade --install" => {
                parts.helm_started.get_or_insert(t);
            }
            "store is ready" => {
                parts.controller_ready.get_or_insert(t);
            }
            _ => {}
        }
        events.push((t, format!("control plane: {message}")));
    }
    // The setup Job the claim's upgrade rendered (a new name: its pod template changed), its pod.
    let jobs = Api::<Job>::namespaced(client.clone(), &a.id)
        .list(&ListParams::default().labels("app.kubernetes.io/component=setup"))
        .await?;
    let job = jobs
        .items
        .into_iter()
        .filter(|j| {
            j.metadata
                .creation_timestamp
                .as_ref()
                .is_some_and(|c| c.0.as_second() >= a.posted_at.as_second())
        })
        .max_by_key(|j| j.metadata.creation_timestamp.as_ref().map(|c| c.0));
    if let Some(job) = job {
        let name = job.name_any();
        if let Some(c) = &job.metadata.creation_timestamp {
            parts.job_created = Some(since(c.0));
            events.push((since(c.0), format!("Job {name} created")));
        }
        if let Some(done) = job.status.as_ref().and_then(|s| s.completion_time.as_ref()) {
            parts.job_completed = Some(since(done.0));
            events.push((since(done.0), "Job complete".into()));
        }
        let pods = Api::<Pod>::namespaced(client.clone(), &a.id);
        let list = pods
            .list(&ListParams::default().labels(&format!("job-name={name}")))
            .await?;
        for pod in list.items {
            let pod_name = pod.name_any();
            if let Some(c) = &pod.metadata.creation_timestamp {
                events.push((since(c.0), format!("pod {pod_name} created")));
            }
            let status = pod.status.clone().unwrap_or_default();
            for c in status.conditions.unwrap_or_default() {
                if let (Some(t), "True") = (c.last_transition_time, c.status.as_str()) {
                    events.push((since(t.0), format!("pod condition {}", c.type_)));
                }
            }
            for cs in status.container_statuses.unwrap_or_default() {
                let Some(done) = cs.state.and_then(|s| s.terminated) else {
                    continue;
                };
                if let Some(t) = done.started_at {
                    parts.container_started.get_or_insert(since(t.0));
                    events.push((since(t.0), format!("container {} started", cs.name)));
                }
                if let Some(t) = done.finished_at {
                    events.push((since(t.0), format!("container {} finished", cs.name)));
                }
            }
            // The stand-in node runs no container, so has no log to ask for.
            if !real_pods {
                continue;
            }
            let params = LogParams {
                timestamps: true,
                ..LogParams::default()
            };
            let text = tokio::time::timeout(Duration::from_secs(10), pods.logs(&pod_name, &params))
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or_default();
            for line in text.lines() {
                let Some((at, rest)) = line.split_once(' ') else {
                    continue;
                };
                let Ok(at) = at.parse::<Timestamp>() else {
                    continue;
                };
                let t = since(at);
                parts.first_log.get_or_insert(t);
                parts.last_log = Some(t);
                events.push((t, format!("log: {rest}")));
            }
        }
    }
    events.push((parts.answered, "answered 201 Ready".into()));
    events.sort_by(|x, y| x.0.total_cmp(&y.0));
    let lines = events
        .into_iter()
        .map(|(t, what)| format!("{t:+7.3} s  {what}"))
        .collect();
    Ok(Breakdown { parts, lines })
}

fn rows(
    options: &Options,
    claims: &[Duration],
    cold: &[Duration],
    parts: &[Parts],
    stale: usize,
) -> Vec<Row> {
    let (p50, max) = (
        median(claims),
        claims.iter().max().copied().unwrap_or_default(),
    );
    let (cold_p50, cold_max) = (median(cold), cold.iter().max().copied().unwrap_or_default());
    let (target, limit) = if options.real_pods {
        ("p50 <= 5 s (real pods)", Duration::from_secs(5))
    } else {
        ("p50 <= 1 s (stand-in)", Duration::from_secs(1))
    };
    let cluster = if options.real_pods {
        "real pods"
    } else {
        "stand-in"
    };
    let mut rows = vec![Row {
        bench: format!(
            "7 POST /stores?wait=true to Ready, {cluster}: from the pool (p50 / max of {}) vs cold (of {})",
            claims.len(),
            cold.len()
        ),
        storefleet: format!("{} / {}", secs(p50), secs(max)),
        baseline: format!("cold {} / {}", secs(cold_p50), secs(cold_max)),
        ratio: format!("{:.2}", p50.as_secs_f64() / cold_p50.as_secs_f64()),
        target: target.into(),
        met: Some(p50 <= limit),
    }];
    rows.push(Row {
        bench: format!(
            "7 claims whose ?wait=true answered Ready with the pool's view (timed by polling instead), {cluster}"
        ),
        storefleet: format!("{stale} of {}", claims.len()),
        baseline: "–".into(),
        ratio: "–".into(),
        target: "0".into(),
        met: Some(stale == 0),
    });
    // Medians of each step of a claim, over the claims where both ends were seen.
    let step = |what: &str, from: fn(&Parts) -> Option<f64>, to: fn(&Parts) -> Option<f64>| {
        let spans: Vec<Duration> = parts
            .iter()
            .filter_map(|p| Some(to(p)? - from(p)?))
            .map(|s| Duration::from_secs_f64(s.max(0.0)))
            .collect();
        (!spans.is_empty()).then(|| Row {
            bench: format!("7 claim, {cluster}: {what}, median of {}", spans.len()),
            storefleet: secs(median(&spans)),
            baseline: format!(
                "max {}",
                secs(spans.iter().max().copied().unwrap_or_default())
            ),
            ratio: "–".into(),
            target: "–".into(),
            met: None,
        })
    };
    rows.extend(
        [
            step(
                "POST -> controller runs helm upgrade",
                |_| Some(0.0),
                |p| p.helm_started,
            ),
            step(
                "helm upgrade -> new setup Job created (1 s stamps)",
                |p| p.helm_started,
                |p| p.job_created,
            ),
            step(
                "setup Job created -> its container started (1 s stamps)",
                |p| p.job_created,
                |p| p.container_started,
            ),
            step(
                "setup.sh first log line -> last log line",
                |p| p.first_log,
                |p| p.last_log,
            ),
            step(
                "setup Job created -> Job complete (1 s stamps)",
                |p| p.job_created,
                |p| p.job_completed,
            ),
            step(
                "controller says Ready -> answer 201",
                |p| p.controller_ready,
                |p| Some(p.answered),
            ),
        ]
        .into_iter()
        .flatten(),
    );
    rows
}
