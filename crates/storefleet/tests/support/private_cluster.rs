//! A test's own cluster: `scripts/testcluster` in a private state dir, for faults that must not hit
//! the shared cluster other tests run on (stopping the API server). Stopped again when dropped, also
//! when the test fails.
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use kube::Client;
use kube::config::{KubeConfigOptions, Kubeconfig};
use testkit::Cluster;

pub struct PrivateCluster {
    pub cluster: Cluster,
    state: PathBuf,
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/testcluster")
}

/// The cargo target dir (beside `debug/` of this test's `storefleet` binary).
fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_storefleet"))
        .ancestors()
        .nth(2)
        .expect("target/debug/storefleet")
        .to_path_buf()
}

impl PrivateCluster {
    /// `scripts/testcluster up` in `<target>/testcluster-<name>-<random>`: its own ports, certificates,
    /// etcd data and kubelet stand-in.
    pub async fn up(name: &str) -> PrivateCluster {
        let state = target_dir().join(format!("testcluster-{name}-{}", super::random_hex(6)));
        let mut guard = PrivateCluster {
            cluster: placeholder_cluster(),
            state,
        };
        guard.run("up", Duration::from_secs(300)).await;
        let env = std::fs::read_to_string(guard.state.join("env")).expect("the private env file");
        let value = |key: &str| {
            env.lines()
                .find_map(|l| l.trim().trim_start_matches("export ").strip_prefix(key))
                .map(PathBuf::from)
                .unwrap_or_else(|| panic!("no {key} in {}/env", guard.state.display()))
        };
        let (kubeconfig, helm) = (value("KUBECONFIG="), value("STOREFLEET_HELM="));
        let kc = Kubeconfig::read_from(&kubeconfig).expect("private kubeconfig");
        let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
            .await
            .expect("private kubeconfig");
        guard.cluster = Cluster {
            client: Client::try_from(config).expect("kube client"),
            kubeconfig,
            helm,
        };
        guard
    }

    /// Kills etcd and kube-apiserver (data kept); everything else keeps running.
    pub async fn stop_api(&self) {
        self.run("stop-api", Duration::from_secs(60)).await;
    }

    /// Starts etcd and kube-apiserver again, as they were; answers once the API server is ready.
    pub async fn start_api(&self) {
        self.run("start-api", Duration::from_secs(180)).await;
    }

    /// Whether the process `up` started as `name` still runs (kube-controller-manager, ...).
    pub fn alive(&self, name: &str) -> bool {
        std::fs::read_to_string(self.state.join("pids").join(name))
            .ok()
            .and_then(|pid| pid.trim().parse::<i32>().ok())
            // SAFETY: signal 0 only checks that the process exists.
            .is_some_and(|pid| unsafe { libc::kill(pid, 0) } == 0)
    }

    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.state.join("logs").join(format!("{name}.log")))
            .unwrap_or_default()
    }

    async fn run(&self, verb: &str, timeout: Duration) {
        let mut cmd = tokio::process::Command::new(script());
        self.env(cmd.as_std_mut()).arg(verb);
        cmd.kill_on_drop(true);
        let out = tokio::time::timeout(timeout, cmd.output())
            .await
            .unwrap_or_else(|_| panic!("scripts/testcluster {verb} took over {timeout:?}"))
            .expect("running scripts/testcluster");
        assert!(
            out.status.success(),
            "scripts/testcluster {verb} failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn env<'a>(&self, cmd: &'a mut std::process::Command) -> &'a mut std::process::Command {
        cmd.env("STOREFLEET_TESTCLUSTER_DIR", &self.state)
            .env_remove("KUBECONFIG")
            .stdin(Stdio::null());
        // The stand-in the shared cluster runs is already built: no cargo build inside a test.
        let standin = target_dir().join("debug/kubelet-standin");
        if standin.is_file() {
            cmd.env("KUBELET_STANDIN", standin);
        }
        cmd
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for name in [
                "kube-apiserver",
                "kube-controller-manager",
                "kube-scheduler",
                "kubelet-standin",
            ] {
                let log = self.log(name);
                let tail: Vec<&str> = log.lines().rev().take(40).collect();
                eprintln!(
                    "----- private cluster: {name} (last lines) -----\n{}",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
            }
        }
        let mut cmd = std::process::Command::new(script());
        let _ = self
            .env(&mut cmd)
            .arg("down")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.state);
    }
}

/// A client for the guard that exists only while `up` runs (so a failing `up` still runs `down`).
fn placeholder_cluster() -> Cluster {
    let config = kube::Config::new("https://127.0.0.1:1".parse().unwrap());
    Cluster {
        client: Client::try_from(config).expect("kube client"),
        kubeconfig: PathBuf::new(),
        helm: PathBuf::new(),
    }
}
