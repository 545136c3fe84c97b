//! Bench 6 (issue 14): backup and restore of a store with a generated database, on the real-pod
//! cluster (real MariaDB, the agent in real Jobs; `scripts/bench backups`). The baseline, measured
//! in the same run on the same pod: MariaDB's own `mariadb-dump --single-transaction` into a file
//! and `mariadb` reading it back, with no compression, encryption or copy to the target. Storefleet's
//! figure is the agent Job's own time (its start to its completion, from the Job's status), so that
//! scheduling, the safety backup and WordPress's stop and start are not counted against the agent;
//! the whole API round trip is printed beside it. Memory: the agent's and its child program's peak
//! (it prints them from getrusage(2) into its log), MariaDB's (VmHWM of the server, PID 1 of its
//! container) and the control plane's.
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

use crate::control_plane::{ControlPlane, mb};
use crate::stats::{Row, secs};

pub struct Options {
    pub database_mb: u64,
    /// The backup target folder (a host folder, given to the store as its backups claim).
    pub target: PathBuf,
}

fn kubectl(args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("kubectl")
        .args(args)
        .output()
        .context("running kubectl (KUBECONFIG from the real-pod cluster's env)")?;
    if !out.status.success() {
        bail!(
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8(out.stdout)?)
}

async fn get(cp: &ControlPlane, path: &str) -> anyhow::Result<Value> {
    let r = cp.request(reqwest::Method::GET, path).send().await?;
    let status = r.status();
    let body: Value = r.json().await?;
    if !status.is_success() {
        bail!("GET {path}: {status} {body}");
    }
    Ok(body)
}

async fn post(cp: &ControlPlane, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
    let mut r = cp.request(reqwest::Method::POST, path);
    if let Some(b) = body {
        r = r.json(&b);
    }
    let r = r.send().await?;
    let status = r.status();
    let body: Value = r.json().await?;
    if !status.is_success() {
        bail!("POST {path}: {status} {body}");
    }
    Ok(body)
}

/// Polls until `done` says yes (or fails), at most 30 minutes.
async fn until<T>(
    what: &str,
    mut done: impl AsyncFnMut() -> anyhow::Result<Option<T>>,
) -> anyhow::Result<T> {
    let deadline = Instant::now() + Duration::from_secs(1800);
    loop {
        if let Some(v) = done().await? {
            return Ok(v);
        }
        if Instant::now() > deadline {
            bail!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The filesystem target's claim in the store's namespace: a hostPath volume of `target`.
fn claim(ns: &str, target: &Path) -> anyhow::Result<()> {
    let objects = json!({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "PersistentVolume",
         "metadata": {"name": format!("{ns}-backups"), "labels": {"storefleet.dev/test": "bench-backups"}},
         "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteMany"],
                  "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "",
                  "hostPath": {"path": target.to_str().context("target path")?, "type": "Directory"},
                  "claimRef": {"namespace": ns, "name": "storefleet-backups"}}},
        {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
         "metadata": {"name": "storefleet-backups", "namespace": ns},
         "spec": {"accessModes": ["ReadWriteMany"], "storageClassName": "",
                  "volumeName": format!("{ns}-backups"), "resources": {"requests": {"storage": "1Gi"}}}}
    ]});
    let file = tempfile::NamedTempFile::new()?;
    std::fs::write(file.path(), objects.to_string())?;
    kubectl(&["apply", "-f", file.path().to_str().context("temp path")?])?;
    Ok(())
}

/// The store's MariaDB pod and its root password.
fn mariadb(ns: &str) -> anyhow::Result<(String, String)> {
    let pod = kubectl(&[
        "-n",
        ns,
        "get",
        "pods",
        "-l",
        "app.kubernetes.io/component=database",
        "-o",
        "jsonpath={.items[0].metadata.name}",
    ])?;
    // kubectl's go-template decodes the Secret's base64 itself.
    let password = kubectl(&[
        "-n",
        ns,
        "get",
        "secret",
        &format!("{ns}-credentials"),
        "-o",
        r#"go-template={{index .data "mariadb-root-password" | base64decode}}"#,
    ])?;
    Ok((pod, password))
}

/// A program in the MariaDB container (argv, no shell), timed.
fn in_mariadb(ns: &str, pod: &str, argv: &[&str]) -> anyhow::Result<(String, Duration)> {
    let mut args = vec!["-n", ns, "exec", pod, "-c", "mariadb", "--"];
    args.extend_from_slice(argv);
    let t = Instant::now();
    let out = kubectl(&args)?;
    Ok((out, t.elapsed()))
}

/// A Job's own run time, from its status.
fn job_seconds(ns: &str, job: &str) -> anyhow::Result<Duration> {
    let j: Value = serde_json::from_str(&kubectl(&["-n", ns, "get", "job", job, "-o", "json"])?)?;
    let at = |field: &str| -> anyhow::Result<i64> {
        let raw = j["status"][field]
            .as_str()
            .with_context(|| format!("job {job} has no status.{field}"))?;
        Ok(raw.parse::<k8s_openapi::jiff::Timestamp>()?.as_second())
    };
    Ok(Duration::from_secs(
        (at("completionTime")? - at("startTime")?).max(0) as u64,
    ))
}

/// The agent's own report of its peak memory in a Job's log, as (agent, child) bytes.
fn agent_memory(ns: &str, job: &str) -> anyhow::Result<(u64, u64)> {
    let log = kubectl(&["-n", ns, "logs", &format!("job/{job}")])?;
    let line = log
        .lines()
        .find(|l| l.starts_with("storefleet-agent peak memory:"))
        .with_context(|| format!("no peak memory line in the log of job {job}"))?;
    let numbers: Vec<u64> = line
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    match numbers[..] {
        [agent, child] => Ok((agent * 1024, child * 1024)),
        _ => bail!("malformed peak memory line: {line}"),
    }
}

fn server_hwm(ns: &str, pod: &str) -> anyhow::Result<u64> {
    let (status, _) = in_mariadb(ns, pod, &["cat", "/proc/1/status"])?;
    let kib: u64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .context("no VmHWM of the MariaDB server")?
        .parse()?;
    Ok(kib * 1024)
}

pub async fn run(cp: &ControlPlane, o: &Options) -> anyhow::Result<Vec<Row>> {
    let store = post(cp, "/stores", Some(json!({"name": "Backup bench"}))).await?;
    let id = store["store_id"].as_str().context("store_id")?.to_owned();
    let t = Instant::now();
    until("the store Ready", async || {
        let s = get(cp, &format!("/stores/{id}")).await?;
        if s["status"] == "Failed" {
            bail!("store failed: {s}");
        }
        Ok((s["status"] == "Ready").then_some(()))
    })
    .await?;
    eprintln!("[bench] 6: store {id} Ready in {}", secs(t.elapsed()));
    claim(&id, &o.target)?;
    let (pod, password) = mariadb(&id)?;
    let root = format!("--password={password}");
    let db = "--database=wordpress";
    // Rows of 1 KiB of random hex: `o.database_mb` MB of table data that compresses as text does
    // (about 2:1), not to nothing.
    let rows = o.database_mb * 1000;
    let t = Instant::now();
    in_mariadb(
        &id,
        &pod,
        &[
            "mariadb",
            "-uroot",
            &root,
            db,
            "-e",
            &format!(
                "CREATE TABLE wp_bench (id INT PRIMARY KEY, payload TEXT) ENGINE=InnoDB; \
                 INSERT INTO wp_bench SELECT seq, CONCAT(SHA2(RAND(),512), SHA2(RAND(),512), \
                 SHA2(RAND(),512), SHA2(RAND(),512), SHA2(RAND(),512), SHA2(RAND(),512), \
                 SHA2(RAND(),512), SHA2(RAND(),512)) FROM seq_1_to_{rows};"
            ),
        ],
    )?;
    eprintln!("[bench] 6: {rows} rows generated in {}", secs(t.elapsed()));

    // Baseline: MariaDB's own dump into a file in the pod, and reading it back.
    let (_, dump) = in_mariadb(
        &id,
        &pod,
        &[
            "mariadb-dump",
            "-uroot",
            &root,
            "--single-transaction",
            "--routines",
            "--triggers",
            "--result-file=/tmp/bench.sql",
            "wordpress",
        ],
    )?;
    let (size, _) = in_mariadb(&id, &pod, &["stat", "-c", "%s", "/tmp/bench.sql"])?;
    let dump_bytes: u64 = size.trim().parse()?;
    let (_, import) = in_mariadb(
        &id,
        &pod,
        &[
            "mariadb",
            "-uroot",
            &root,
            db,
            "-e",
            "source /tmp/bench.sql",
        ],
    )?;
    in_mariadb(&id, &pod, &["rm", "-f", "/tmp/bench.sql"])?;
    eprintln!(
        "[bench] 6: baseline dump {} ({}), import {}",
        secs(dump),
        mb(dump_bytes),
        secs(import)
    );

    // Storefleet's backup.
    let t = Instant::now();
    let asked = post(cp, &format!("/stores/{id}/backups"), None).await?;
    let backup = asked["backup_id"].as_str().context("backup_id")?.to_owned();
    let done = until("the backup", async || {
        let b = get(cp, &format!("/stores/{id}/backups/{backup}")).await?;
        if b["state"] == "Failed" {
            bail!("backup failed: {b}");
        }
        Ok((b["state"] == "Succeeded").then_some(b))
    })
    .await?;
    let backup_api = t.elapsed();
    let backup_job = job_seconds(&id, &backup)?;
    let (agent_b, child_b) = agent_memory(&id, &backup)?;
    let database_bytes = done["database_bytes"].as_u64().unwrap_or(0);
    let stored = done["stored_bytes"].as_u64().unwrap_or(0);
    eprintln!(
        "[bench] 6: backup {backup}: Job {} (API round trip {}), database {}, stored {}",
        secs(backup_job),
        secs(backup_api),
        mb(database_bytes),
        mb(stored)
    );

    // Storefleet's restore in place (a safety backup of the same size first).
    let t = Instant::now();
    let asked = post(
        cp,
        &format!("/stores/{id}/restore"),
        Some(json!({"backupId": backup})),
    )
    .await?;
    let restore = asked["restore_id"]
        .as_str()
        .context("restore_id")?
        .to_owned();
    until("the restore", async || {
        let list = get(cp, &format!("/stores/{id}/restores")).await?;
        let r = list
            .as_array()
            .and_then(|l| l.iter().find(|r| r["restore_id"] == restore.as_str()))
            .cloned();
        match r {
            Some(r) if r["state"] == "Failed" => bail!("restore failed: {r}"),
            Some(r) => Ok((r["state"] == "Succeeded").then_some(())),
            None => Ok(None),
        }
    })
    .await?;
    let restore_api = t.elapsed();
    let restore_job = job_seconds(&id, &restore)?;
    let (agent_r, child_r) = agent_memory(&id, &restore)?;
    let server = server_hwm(&id, &mariadb(&id)?.0)?;
    let control_plane = cp.memory()?.hwm;
    eprintln!(
        "[bench] 6: restore {restore}: Job {} (API round trip with safety backup, stop, start {})",
        secs(restore_job),
        secs(restore_api)
    );

    // Clean up: the store without a final backup, its backups (data first), the volume.
    let _ = cp
        .request(
            reqwest::Method::DELETE,
            &format!("/stores/{id}?skip_final_backup=true"),
        )
        .send()
        .await;
    let _ = kubectl(&[
        "delete",
        "storebackups",
        "-l",
        &format!("storefleet.dev/store-id={id}"),
        "--wait=true",
        "--timeout=300s",
    ]);
    let _ = kubectl(&["delete", "pv", &format!("{id}-backups"), "--wait=false"]);

    let rate = |bytes: u64, d: Duration| bytes as f64 / 1e6 / d.as_secs_f64().max(1.0);
    let ratio = |ours: Duration, base: Duration| ours.as_secs_f64() / base.as_secs_f64().max(0.001);
    let (backup_ratio, restore_ratio) = (ratio(backup_job, dump), ratio(restore_job, import));
    Ok(vec![
        Row {
            bench: format!(
                "6 backup, {} database ({} dump): agent Job; API round trip {}",
                mb(database_bytes),
                mb(dump_bytes),
                secs(backup_api)
            ),
            storefleet: format!(
                "{} ({:.1} MB/s, {} stored)",
                secs(backup_job),
                rate(database_bytes, backup_job),
                mb(stored)
            ),
            baseline: format!(
                "{} (mariadb-dump to a file, {:.1} MB/s)",
                secs(dump),
                rate(dump_bytes, dump)
            ),
            ratio: format!("{backup_ratio:.2}"),
            target: "<= 3".into(),
            met: Some(backup_ratio <= 3.0),
        },
        Row {
            bench: format!(
                "6 restore of that backup: agent Job; API round trip {} (safety backup, stop, start)",
                secs(restore_api)
            ),
            storefleet: format!(
                "{} ({:.1} MB/s)",
                secs(restore_job),
                rate(database_bytes, restore_job)
            ),
            baseline: format!("{} (mariadb reading the dump file)", secs(import)),
            ratio: format!("{restore_ratio:.2}"),
            target: "<= 3".into(),
            met: Some(restore_ratio <= 3.0),
        },
        Row {
            bench: "6 peak memory: agent (backup / restore)".into(),
            storefleet: format!("{} / {}", mb(agent_b), mb(agent_r)),
            baseline: format!("database {}", mb(database_bytes)),
            ratio: format!(
                "{:.3}",
                agent_b.max(agent_r) as f64 / database_bytes.max(1) as f64
            ),
            target: "bounded: <= 128 MB".into(),
            met: Some(agent_b.max(agent_r) <= 128_000_000),
        },
        Row {
            bench: "6 peak memory: mariadb-dump / mariadb client (the agent's child)".into(),
            storefleet: format!("{} / {}", mb(child_b), mb(child_r)),
            baseline: "–".into(),
            ratio: "–".into(),
            target: "–".into(),
            met: None,
        },
        Row {
            bench: "6 peak memory: MariaDB server (VmHWM since start) / control plane (VmHWM)"
                .into(),
            storefleet: format!("{} / {}", mb(server), mb(control_plane)),
            baseline: "–".into(),
            ratio: "–".into(),
            target: "–".into(),
            met: None,
        },
    ])
}
