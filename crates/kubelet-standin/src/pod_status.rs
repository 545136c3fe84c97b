//! What the stand-in reports for a pod: a pure function of the pod's spec, the status it has now and
//! the clock, so a restarted stand-in reports the same thing and a no-op reconcile writes nothing.
//!
//! No container ever runs. The image name decides a container's fate, for failure-injection tests:
//! `broken` never pulls (ImagePullBackOff), `crash` exits 1 each time it starts (CrashLoopBackOff, or
//! Error when the pod never restarts); anything else runs (and is Ready) or, in a pod that runs to
//! completion, exits 0. Phases follow the kubelet's own `getPhase`.

use std::net::Ipv4Addr;
use std::time::Duration;

use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, Pod, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

/// First wait before a crashed container restarts; doubles per restart up to [`MAX_BACKOFF`] (kubelet's).
const BASE_BACKOFF: Duration = Duration::from_secs(10);
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// A failure the kubelet would report as an Event on the pod.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub container: String,
    /// `Failed` or `BackOff`, the kubelet's reasons.
    pub reason: &'static str,
    pub message: String,
}

/// The status to report, the failures that are new since the current status, and when to look again.
#[derive(Debug)]
pub struct Report {
    pub status: PodStatus,
    pub failures: Vec<Failure>,
    pub recheck: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Fate {
    Healthy,
    PullFails,
    Crashes,
}

fn fate(image: &str) -> Fate {
    if image.contains("broken") {
        Fate::PullFails
    } else if image.contains("crash") {
        Fate::Crashes
    } else {
        Fate::Healthy
    }
}

/// Job pods and pods that never restart run to completion instead of running forever.
pub fn runs_to_completion(pod: &Pod) -> bool {
    let owned_by_job = pod
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.kind == "Job" && o.controller == Some(true));
    owned_by_job || restart_policy(pod) != "Always"
}

fn restart_policy(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
        .unwrap_or("Always")
}

/// The container's state in kubelet terms, for the phase computation.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Running,
    /// Waiting and never ran (image pull, or blocked behind init containers).
    Waiting,
    /// Terminated, or waiting to restart after a termination.
    Stopped {
        succeeded: bool,
    },
}

struct Built {
    status: ContainerStatus,
    kind: Kind,
    failure: Vec<Failure>,
    recheck: Option<Duration>,
}

struct Env<'a> {
    pod: &'a Pod,
    now: Timestamp,
}

impl Env<'_> {
    fn pod_ref(&self) -> String {
        // the kubelet's format: name_namespace(uid)
        format!(
            "{}_{}({})",
            self.pod.metadata.name.as_deref().unwrap_or_default(),
            self.pod.metadata.namespace.as_deref().unwrap_or_default(),
            self.pod.metadata.uid.as_deref().unwrap_or_default()
        )
    }

    fn now(&self) -> Time {
        Time(self.now)
    }
}

/// `blocked`: an earlier init container has not completed; `finishes`: the container exits when done.
fn container(
    env: &Env,
    c: &Container,
    prev: Option<&ContainerStatus>,
    blocked: bool,
    finishes: bool,
) -> Built {
    let image = c.image.clone().unwrap_or_default();
    // Whatever we reported before for another image is void (a pod's images may be updated).
    let prev = prev.filter(|p| p.image == image);
    let prev_state = prev.and_then(|p| p.state.as_ref());
    let mut status = ContainerStatus {
        name: c.name.clone(),
        image: image.clone(),
        image_id: String::new(),
        ready: false,
        restart_count: 0,
        started: Some(false),
        // the API server answers `{}` for an empty state; send the same so reports compare equal
        last_state: Some(ContainerState::default()),
        ..Default::default()
    };
    let waiting = |reason: &str, message: Option<String>| {
        Some(ContainerState {
            waiting: Some(ContainerStateWaiting {
                reason: Some(reason.into()),
                message,
            }),
            ..Default::default()
        })
    };
    let mut failure = Vec::new();
    let mut recheck = None;
    let kind = if blocked {
        status.state = waiting("PodInitializing", None);
        Kind::Waiting
    } else {
        match fate(&image) {
            Fate::PullFails => {
                let message = format!("Back-off pulling image \"{image}\"");
                let was_failing = prev_state
                    .and_then(|s| s.waiting.as_ref())
                    .is_some_and(|w| w.reason.as_deref() == Some("ImagePullBackOff"));
                if !was_failing {
                    failure.push(Failure {
                        container: c.name.clone(),
                        reason: "Failed",
                        message: format!(
                            "Failed to pull image \"{image}\": rpc error: code = NotFound desc = \
                             kubelet stand-in (tests only): images named *broken* never pull"
                        ),
                    });
                    failure.push(Failure {
                        container: c.name.clone(),
                        reason: "BackOff",
                        message: message.clone(),
                    });
                }
                status.state = waiting("ImagePullBackOff", Some(message));
                Kind::Waiting
            }
            Fate::Crashes if restart_policy(env.pod) == "Never" => {
                status.image_id = image_id(&image);
                status.container_id = prev
                    .and_then(|p| p.container_id.clone())
                    .or_else(|| Some(container_id(env, c)));
                let terminated = prev_state
                    .and_then(|s| s.terminated.clone())
                    .unwrap_or_else(|| ContainerStateTerminated {
                        exit_code: 1,
                        reason: Some("Error".into()),
                        started_at: Some(env.now()),
                        finished_at: Some(env.now()),
                        container_id: status.container_id.clone(),
                        ..Default::default()
                    });
                status.state = Some(ContainerState {
                    terminated: Some(terminated),
                    ..Default::default()
                });
                Kind::Stopped { succeeded: false }
            }
            Fate::Crashes => {
                let (restarts, crashed_at) = crash_loop(env, prev);
                status.image_id = image_id(&image);
                let backoff = backoff(restarts);
                status.restart_count = restarts;
                status.state = waiting(
                    "CrashLoopBackOff",
                    Some(format!(
                        "back-off {} restarting failed container={} pod={}",
                        go_duration(backoff),
                        c.name,
                        env.pod_ref()
                    )),
                );
                status.last_state = Some(ContainerState {
                    terminated: Some(ContainerStateTerminated {
                        exit_code: 1,
                        reason: Some("Error".into()),
                        started_at: Some(Time(crashed_at)),
                        finished_at: Some(Time(crashed_at)),
                        container_id: Some(container_id(env, c)),
                        ..Default::default()
                    }),
                    ..Default::default()
                });
                if prev.map(|p| p.restart_count) != Some(restarts) {
                    failure.push(Failure {
                        container: c.name.clone(),
                        reason: "BackOff",
                        message: "Back-off restarting failed container".into(),
                    });
                }
                let next = crashed_at + backoff;
                recheck = Some(
                    next.duration_since(env.now)
                        .unsigned_abs()
                        .max(Duration::from_secs(1)),
                );
                Kind::Stopped { succeeded: false }
            }
            Fate::Healthy => {
                status.image_id = image_id(&image);
                status.container_id = prev
                    .and_then(|p| p.container_id.clone())
                    .or_else(|| Some(container_id(env, c)));
                let started_at = prev_state
                    .and_then(|s| s.running.as_ref().and_then(|r| r.started_at.clone()))
                    .or_else(|| {
                        prev_state
                            .and_then(|s| s.terminated.as_ref().and_then(|t| t.started_at.clone()))
                    })
                    .unwrap_or_else(|| env.now());
                if finishes {
                    let finished_at = prev_state
                        .and_then(|s| s.terminated.as_ref().and_then(|t| t.finished_at.clone()))
                        .unwrap_or_else(|| env.now());
                    status.state = Some(ContainerState {
                        terminated: Some(ContainerStateTerminated {
                            exit_code: 0,
                            reason: Some("Completed".into()),
                            started_at: Some(started_at),
                            finished_at: Some(finished_at),
                            container_id: status.container_id.clone(),
                            ..Default::default()
                        }),
                        ..Default::default()
                    });
                    Kind::Stopped { succeeded: true }
                } else {
                    status.state = Some(ContainerState {
                        running: Some(ContainerStateRunning {
                            started_at: Some(started_at),
                        }),
                        ..Default::default()
                    });
                    // Probes are taken to pass at once: nothing runs that could answer them.
                    status.ready = true;
                    status.started = Some(true);
                    Kind::Running
                }
            }
        }
    };
    Built {
        status,
        kind,
        failure,
        recheck,
    }
}

/// Restart count and time of the latest crash: one more crash once the back-off has passed.
fn crash_loop(env: &Env, prev: Option<&ContainerStatus>) -> (i32, Timestamp) {
    let last = prev.and_then(|p| {
        let t = p
            .last_state
            .as_ref()?
            .terminated
            .as_ref()?
            .finished_at
            .as_ref()?
            .0;
        Some((p.restart_count.max(1), t))
    });
    match last {
        Some((n, at)) if env.now < at + backoff(n) => (n, at),
        Some((n, _)) => (n + 1, env.now),
        None => (1, env.now),
    }
}

fn backoff(restarts: i32) -> Duration {
    let doublings = u32::try_from(restarts.saturating_sub(1))
        .unwrap_or(0)
        .min(10);
    (BASE_BACKOFF * 2u32.pow(doublings)).min(MAX_BACKOFF)
}

/// Go's `time.Duration` formatting for whole seconds, as in the kubelet's messages: 10s, 1m20s, 5m0s.
fn go_duration(d: Duration) -> String {
    let s = d.as_secs();
    if s < 60 {
        format!("{s}s")
    } else {
        format!("{}m{}s", s / 60, s % 60)
    }
}

fn image_id(image: &str) -> String {
    format!("standin://{image}")
}

fn container_id(env: &Env, c: &Container) -> String {
    format!(
        "standin://{}-{}",
        env.pod.metadata.uid.as_deref().unwrap_or_default(),
        c.name
    )
}

/// What to report for `pod`, given the IP it was assigned and the current time.
pub fn report(pod: &Pod, pod_ip: Ipv4Addr, host_ip: &str, now: Timestamp) -> Report {
    // Timestamps travel with second precision; keep ours equal to what the API server will echo.
    let env = Env {
        pod,
        now: Timestamp::from_second(now.as_second()).unwrap_or(now),
    };
    let spec = pod.spec.clone().unwrap_or_default();
    let current = pod.status.clone().unwrap_or_default();
    let prev = |list: &Option<Vec<ContainerStatus>>, name: &str| {
        list.iter().flatten().find(|s| s.name == name).cloned()
    };

    let mut failures = Vec::new();
    let mut recheck: Option<Duration> = None;
    let mut take = |b: &mut Built| {
        failures.append(&mut b.failure);
        recheck = match (recheck, b.recheck) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    };

    // Init containers run one after the other, each to completion.
    let mut blocked = false;
    let mut init = Vec::new();
    let mut init_failed_for_good = false;
    for c in spec.init_containers.iter().flatten() {
        let mut b = container(
            &env,
            c,
            prev(&current.init_container_statuses, &c.name).as_ref(),
            blocked,
            true,
        );
        take(&mut b);
        if b.kind != (Kind::Stopped { succeeded: true }) {
            blocked = true;
            init_failed_for_good |=
                matches!(b.kind, Kind::Stopped { .. }) && restart_policy(pod) == "Never";
        }
        init.push(b);
    }
    let initialized = !blocked;

    let finishes = runs_to_completion(pod);
    let mut main = Vec::new();
    for c in &spec.containers {
        let mut b = container(
            &env,
            c,
            prev(&current.container_statuses, &c.name).as_ref(),
            !initialized,
            finishes,
        );
        take(&mut b);
        main.push(b);
    }

    let phase = phase(pod, initialized, init_failed_for_good, &main);
    let completed = phase == "Succeeded" || phase == "Failed";
    let unready: Vec<&str> = main
        .iter()
        .filter(|b| !b.status.ready)
        .map(|b| b.status.name.as_str())
        .collect();
    let incomplete: Vec<&str> = init
        .iter()
        .filter(|b| b.kind != (Kind::Stopped { succeeded: true }))
        .map(|b| b.status.name.as_str())
        .collect();
    let gates_open = spec.readiness_gates.iter().flatten().all(|g| {
        current
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == g.condition_type && c.status == "True")
    });

    let list = |names: &[&str]| format!("[{}]", names.join(" "));
    let mut conditions = Vec::new();
    let mut condition = |type_: &str, ok: bool, reason: Option<&str>, message: Option<String>| {
        let status = if ok { "True" } else { "False" };
        // Keep the transition time while the condition holds, as the kubelet does.
        let since = current
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == type_ && c.status == status)
            .and_then(|c| c.last_transition_time.clone())
            .unwrap_or_else(|| env.now());
        conditions.push(PodCondition {
            type_: type_.into(),
            status: status.into(),
            reason: reason.map(Into::into),
            message,
            last_transition_time: Some(since),
            ..Default::default()
        });
    };
    if completed {
        condition("Initialized", true, Some("PodCompleted"), None);
        condition("ContainersReady", false, Some("PodCompleted"), None);
        condition("Ready", false, Some("PodCompleted"), None);
    } else {
        match incomplete.is_empty() {
            true => condition("Initialized", true, None, None),
            false => condition(
                "Initialized",
                false,
                Some("ContainersNotInitialized"),
                Some(format!(
                    "containers with incomplete status: {}",
                    list(&incomplete)
                )),
            ),
        }
        let msg = format!("containers with unready status: {}", list(&unready));
        match unready.is_empty() {
            true => condition("ContainersReady", true, None, None),
            false => condition(
                "ContainersReady",
                false,
                Some("ContainersNotReady"),
                Some(msg.clone()),
            ),
        }
        match (unready.is_empty(), gates_open) {
            (true, true) => condition("Ready", true, None, None),
            (false, _) => condition("Ready", false, Some("ContainersNotReady"), Some(msg)),
            (true, false) => condition(
                "Ready",
                false,
                Some("ReadinessGatesNotReady"),
                Some("the status of pod readiness gates is not \"True\"".into()),
            ),
        }
    }

    let ip = pod_ip.to_string();
    let status = PodStatus {
        phase: Some(phase.into()),
        conditions: Some(conditions),
        host_ip: Some(host_ip.into()),
        pod_ip: Some(ip.clone()),
        pod_ips: Some(vec![PodIP { ip }]),
        start_time: Some(current.start_time.clone().unwrap_or_else(|| env.now())),
        init_container_statuses: (!init.is_empty())
            .then(|| init.into_iter().map(|b| b.status).collect()),
        container_statuses: Some(main.into_iter().map(|b| b.status).collect()),
        ..Default::default()
    };
    Report {
        status,
        failures,
        recheck: if completed { None } else { recheck },
    }
}

/// The kubelet's `getPhase`, for the states the stand-in produces.
fn phase(pod: &Pod, initialized: bool, init_failed_for_good: bool, main: &[Built]) -> &'static str {
    if init_failed_for_good {
        return "Failed";
    }
    if !initialized {
        return "Pending";
    }
    let count = |f: fn(&Kind) -> bool| main.iter().filter(|b| f(&b.kind)).count();
    let waiting = count(|k| *k == Kind::Waiting);
    let running = count(|k| *k == Kind::Running);
    let stopped = count(|k| matches!(k, Kind::Stopped { .. }));
    let succeeded = count(|k| *k == Kind::Stopped { succeeded: true });
    // A crash-looping container is "stopped" but comes back, unless the pod never restarts.
    let restarting = main.iter().any(|b| {
        b.status
            .state
            .as_ref()
            .and_then(|s| s.waiting.as_ref())
            .is_some()
            && matches!(b.kind, Kind::Stopped { .. })
    });
    if waiting > 0 {
        "Pending"
    } else if running > 0 {
        "Running"
    } else if stopped > 0 {
        match restart_policy(pod) {
            "Always" => "Running",
            _ if stopped == succeeded => "Succeeded",
            "Never" => "Failed",
            _ if restarting => "Running",
            _ => "Failed",
        }
    } else {
        "Pending"
    }
}

/// What matters when comparing a report with the current status: everything but timestamps.
pub fn summary(status: &PodStatus) -> String {
    let state = |s: &Option<ContainerState>| match s {
        Some(ContainerState {
            running: Some(_), ..
        }) => "running".to_string(),
        Some(ContainerState {
            terminated: Some(t),
            ..
        }) => format!("terminated:{}", t.exit_code),
        Some(ContainerState {
            waiting: Some(w), ..
        }) => {
            format!(
                "waiting:{}:{}",
                w.reason.as_deref().unwrap_or(""),
                w.message.as_deref().unwrap_or("")
            )
        }
        _ => "none".to_string(),
    };
    let containers = |list: &Option<Vec<ContainerStatus>>| {
        list.iter()
            .flatten()
            .map(|c| {
                format!(
                    "{}={} {} {} r{} {}",
                    c.name,
                    c.image,
                    state(&c.state),
                    c.ready,
                    c.restart_count,
                    state(&c.last_state)
                )
            })
            .collect::<Vec<_>>()
            .join(",")
    };
    let mut conditions: Vec<String> = status
        .conditions
        .iter()
        .flatten()
        .filter(|c| {
            matches!(
                c.type_.as_str(),
                "Initialized" | "ContainersReady" | "Ready"
            )
        })
        .map(|c| {
            format!(
                "{}={}:{}",
                c.type_,
                c.status,
                c.reason.as_deref().unwrap_or("")
            )
        })
        .collect();
    conditions.sort();
    format!(
        "{:?} ip={:?} host={:?} init[{}] main[{}] {}",
        status.phase,
        status.pod_ip,
        status.host_ip,
        containers(&status.init_container_statuses),
        containers(&status.container_statuses),
        conditions.join(",")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u1"},
            "spec": spec,
        }))
        .unwrap()
    }

    fn ip() -> Ipv4Addr {
        Ipv4Addr::new(10, 244, 0, 7)
    }

    fn again(mut p: Pod, r: &Report) -> Pod {
        p.status = Some(r.status.clone());
        p
    }

    fn ready(r: &Report) -> &str {
        let c = r
            .status
            .conditions
            .as_ref()
            .unwrap()
            .iter()
            .find(|c| c.type_ == "Ready")
            .unwrap();
        &c.status
    }

    #[test]
    fn a_plain_pod_runs_and_is_ready_and_a_second_report_changes_nothing() {
        let p = pod(json!({"containers": [{"name": "web", "image": "nginx"}]}));
        let now = Timestamp::now();
        let r = report(&p, ip(), "127.0.0.1", now);
        assert_eq!(r.status.phase.as_deref(), Some("Running"));
        assert_eq!(ready(&r), "True");
        assert!(r.failures.is_empty() && r.recheck.is_none());
        let r2 = report(
            &again(p, &r),
            ip(),
            "127.0.0.1",
            now + Duration::from_secs(30),
        );
        assert_eq!(summary(&r.status), summary(&r2.status));
        assert_eq!(r.status.start_time, r2.status.start_time);
    }

    #[test]
    fn init_containers_complete_before_the_main_ones_run() {
        let p = pod(
            json!({"initContainers": [{"name": "i", "image": "busybox"}],
                           "containers": [{"name": "web", "image": "nginx"}]}),
        );
        let r = report(&p, ip(), "127.0.0.1", Timestamp::now());
        let init = &r.status.init_container_statuses.as_ref().unwrap()[0];
        assert_eq!(
            init.state
                .as_ref()
                .unwrap()
                .terminated
                .as_ref()
                .unwrap()
                .reason
                .as_deref(),
            Some("Completed")
        );
        assert_eq!(ready(&r), "True");
    }

    #[test]
    fn job_pods_succeed() {
        let p = pod(
            json!({"restartPolicy": "Never", "containers": [{"name": "job", "image": "busybox"}]}),
        );
        let r = report(&p, ip(), "127.0.0.1", Timestamp::now());
        assert_eq!(r.status.phase.as_deref(), Some("Succeeded"));
        assert_eq!(ready(&r), "False");
    }

    #[test]
    fn a_broken_image_backs_off_once_with_events() {
        let p = pod(
            json!({"containers": [{"name": "web", "image": "example.invalid/broken-wordpress"}]}),
        );
        let r = report(&p, ip(), "127.0.0.1", Timestamp::now());
        assert_eq!(r.status.phase.as_deref(), Some("Pending"));
        let w = r.status.container_statuses.as_ref().unwrap()[0]
            .state
            .clone()
            .unwrap()
            .waiting
            .unwrap();
        assert_eq!(w.reason.as_deref(), Some("ImagePullBackOff"));
        assert!(
            w.message
                .unwrap()
                .contains("example.invalid/broken-wordpress")
        );
        assert_eq!(
            r.failures.iter().map(|f| f.reason).collect::<Vec<_>>(),
            ["Failed", "BackOff"]
        );
        let r2 = report(&again(p, &r), ip(), "127.0.0.1", Timestamp::now());
        assert!(
            r2.failures.is_empty(),
            "events only when the failure is new"
        );
    }

    #[test]
    fn a_crashing_container_restarts_with_growing_backoff() {
        let p = pod(json!({"containers": [{"name": "db", "image": "crash-mariadb"}]}));
        let t0 = Timestamp::now();
        let r = report(&p, ip(), "127.0.0.1", t0);
        let c = &r.status.container_statuses.as_ref().unwrap()[0];
        assert_eq!(c.restart_count, 1);
        assert_eq!(
            c.state
                .as_ref()
                .unwrap()
                .waiting
                .as_ref()
                .unwrap()
                .reason
                .as_deref(),
            Some("CrashLoopBackOff")
        );
        assert_eq!(
            c.last_state
                .as_ref()
                .unwrap()
                .terminated
                .as_ref()
                .unwrap()
                .exit_code,
            1
        );
        assert_eq!(r.status.phase.as_deref(), Some("Running"));
        assert_eq!(ready(&r), "False");
        assert_eq!(r.recheck, Some(Duration::from_secs(10)));
        let p = again(p, &r);
        let early = report(&p, ip(), "127.0.0.1", t0 + Duration::from_secs(5));
        assert_eq!(
            early.status.container_statuses.as_ref().unwrap()[0].restart_count,
            1
        );
        assert!(early.failures.is_empty());
        let later = report(&p, ip(), "127.0.0.1", t0 + Duration::from_secs(11));
        let c = &later.status.container_statuses.as_ref().unwrap()[0];
        assert_eq!(c.restart_count, 2);
        assert!(
            c.state
                .as_ref()
                .unwrap()
                .waiting
                .as_ref()
                .unwrap()
                .message
                .as_ref()
                .unwrap()
                .contains("back-off 20s")
        );
        assert_eq!(later.failures.len(), 1);
    }

    #[test]
    fn a_crash_in_a_pod_that_never_restarts_fails_it() {
        let p = pod(
            json!({"restartPolicy": "Never", "containers": [{"name": "job", "image": "crash"}]}),
        );
        let r = report(&p, ip(), "127.0.0.1", Timestamp::now());
        assert_eq!(r.status.phase.as_deref(), Some("Failed"));
    }

    #[test]
    fn go_durations() {
        assert_eq!(go_duration(backoff(1)), "10s");
        assert_eq!(go_duration(backoff(4)), "1m20s");
        assert_eq!(go_duration(backoff(30)), "5m0s");
    }
}
