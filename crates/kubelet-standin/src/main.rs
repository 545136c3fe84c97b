//! `kubelet-standin`: FOR TESTS ONLY. A stand-in for the kubelet and for a storage provisioner on the
//! test cluster (`scripts/testcluster`), which has a real API server, controller-manager and scheduler
//! but no kubelet and no container runtime. No image is ever pulled and no container ever runs.
//!
//! - `node`: registers a Ready Node and keeps its Lease fresh.
//! - `pods` (+ `pod_status`, `pod_book`, `events`): pods bound to the node become Running and Ready
//!   after `--ready-delay` (Job pods and pods that never restart end Succeeded); images named
//!   `*broken*` stay in ImagePullBackOff, `*crash*` in CrashLoopBackOff; pods being deleted are removed.
//! - `volumes`: claims of a StorageClass with provisioner `storefleet.dev/kubelet-standin` get hostPath
//!   PersistentVolumes under `--volume-dir`; Released ones are deleted.

mod events;
mod node;
mod pod_book;
mod pod_status;
mod pods;
mod volumes;

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use kube::Client;
use kube::config::{KubeConfigOptions, Kubeconfig};
use tracing::info;

/// The address the node and its pods report as hostIP: the test cluster lives on loopback.
pub const HOST_IP: &str = "127.0.0.1";

/// FOR TESTS ONLY: a stand-in for the kubelet and a storage provisioner on the test cluster.
///
/// Registers a Ready node; pods bound to it are reported Running and Ready (Job pods Succeeded)
/// without running anything. Images whose name contains `broken` stay in ImagePullBackOff, `crash`
/// in CrashLoopBackOff. Claims of StorageClasses with provisioner `storefleet.dev/kubelet-standin`
/// get hostPath volumes under --volume-dir. Never use it where real workloads should run.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Kubeconfig to reach the API server with.
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: PathBuf,
    /// Name of the Node to register and serve.
    #[arg(long, default_value = "standin-node")]
    node_name: String,
    /// Seconds between seeing a pod and reporting it Running/Ready (fractions allowed, 0 for at once).
    #[arg(long, default_value = "1", value_parser = parse_delay)]
    ready_delay: Duration,
    /// Folder that holds the provisioned hostPath volumes, one sub-folder per volume.
    #[arg(long)]
    volume_dir: PathBuf,
}

fn parse_delay(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    Duration::try_from_secs_f64(secs)
        .map_err(|_| format!("{s:?} is not a non-negative number of seconds"))
}

/// Errors of one reconcile or heartbeat; all are retried.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("API request failed: {0}")]
    Kube(#[from] kube::Error),
    #[error("building an object: {0}")]
    Json(#[from] serde_json::Error),
    #[error("volume folder {0}: {1}")]
    Volume(PathBuf, std::io::Error),
    #[error("no free pod IP left in 10.244.0.0/16")]
    NoPodIp,
}

/// Not found (already gone) and conflict (a uid precondition: replaced by a namesake) mean there is
/// nothing left to do: `Ok(None)`.
pub fn ignore_gone(res: kube::Result<()>) -> Result<Option<()>, Error> {
    match res {
        Ok(()) => Ok(Some(())),
        Err(kube::Error::Api(s)) if s.is_not_found() || s.is_conflict() => Ok(None),
        Err(e) => Err(e.into()),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // An empty RUST_LOG (as some shells export) means "unset", not "errors only".
    let filter = std::env::var("RUST_LOG")
        .ok()
        .filter(|f| !f.trim().is_empty());
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            filter
                .as_deref()
                .unwrap_or("info,kube_client=warn,kube_runtime=warn"),
        ))
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .init();
    let args = Args::parse();

    let kubeconfig = Kubeconfig::read_from(&args.kubeconfig)?;
    let config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
    let client = Client::try_from(config)?;
    std::fs::create_dir_all(&args.volume_dir)?;
    info!(
        node = %args.node_name,
        ready_delay_ms = args.ready_delay.as_millis() as u64,
        volume_dir = %args.volume_dir.display(),
        "kubelet stand-in starting: FOR TESTS ONLY, plays kubelet and storage provisioner; no container ever runs"
    );

    tokio::select! {
        () = node::run(client.clone(), args.node_name.clone()) => {}
        () = pods::run(client.clone(), args.node_name, args.ready_delay) => {}
        () = volumes::run(client, args.volume_dir) => {}
        () = shutdown() => info!("kubelet stand-in: stopping on signal"),
    }
    Ok(())
}

async fn shutdown() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
