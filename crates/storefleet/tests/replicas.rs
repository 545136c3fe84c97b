//! Several replicas of one control plane on one PostgreSQL database (issue #17): two or three real
//! `storefleet serve` processes, the test PostgreSQL server (`scripts/postgres`) and the test cluster.
//! Quotas and idempotency keys hold when concurrent requests are spread over the replicas; a dashboard
//! session opened on one works on the other; a rolling restart under steady load fails no request.
//! The takeover after `kill -9` of the leader is `leadership.rs` (also on PostgreSQL).
//!
//! Before the lock in `storage/lock.rs`, each replica serialised its own creates only: both counted
//! the same stores at once and went over the quota.
mod support;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};
use support::{Db, Options, Server, problem_kind};

/// Two replicas that serve the API only: these tests are about the API's shared state, and no
/// controller means no store is provisioned (they stay Stores, cheap for a busy test machine).
async fn two_api_replicas(test: &str, max_stores: u32) -> (Server, Server) {
    let first = Server::start(
        test,
        Options {
            max_stores,
            database: Db::Postgres,
            // Bursts of creates from one address: quotas are under test here, not rate limits.
            extra_args: [
                "--component",
                "api",
                "--rate-limit-writes",
                "1000",
                "--rate-limit-writes-burst",
                "1000",
            ]
            .map(String::from)
            .to_vec(),
            ..Options::default()
        },
    )
    .await;
    let second = first.start_peer().await;
    assert_eq!(first.database_url(), second.database_url());
    (first, second)
}

/// `count` creates at once, alternating between the replicas, as `token` (the admin's when `None`):
/// the ids made and the number refused with 403 quota-exceeded. Anything else fails the test.
async fn concurrent_creates(
    replicas: [&Server; 2],
    token: Option<&str>,
    count: usize,
    prefix: &str,
) -> (Vec<String>, usize) {
    let requests = (0..count).map(|i| {
        let server = replicas[i % 2];
        let token = token.unwrap_or(&server.token).to_owned();
        async move {
            server
                .as_user(&token, Method::POST, "/stores")
                .json(&json!({"name": format!("{prefix} {i}")}))
                .send()
                .await
                .expect("POST /stores")
        }
    });
    let mut made = Vec::new();
    let mut refused = 0;
    for r in futures::future::join_all(requests).await {
        let status = r.status();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        match status {
            StatusCode::ACCEPTED => made.push(body["store_id"].as_str().unwrap().to_owned()),
            StatusCode::FORBIDDEN if problem_kind(&body) == "quota-exceeded" => refused += 1,
            other => panic!("unexpected {other}: {body}"),
        }
    }
    (made, refused)
}

#[tokio::test]
async fn quotas_and_idempotency_keys_hold_across_two_replicas() {
    // Room for 5 of the admin's after one idempotent store and members' 4 + 5: 15 in all.
    let (mut a, mut b) = two_api_replicas("replicas-quota", 15).await;

    // An Idempotency-Key used on one replica is known on the other.
    let key = format!("key-{}", std::process::id());
    let send = |server: &Server, name: &str| {
        server
            .req(Method::POST, "/stores")
            .header("Idempotency-Key", &key)
            .json(&json!({"name": name}))
            .send()
    };
    let first = send(&a, "Key Shop").await.unwrap();
    assert_eq!(first.status(), StatusCode::ACCEPTED);
    let first: Value = first.json().await.unwrap();
    let again = send(&b, "Key Shop").await.unwrap();
    assert_eq!(
        again.status(),
        StatusCode::ACCEPTED,
        "the retry on the peer"
    );
    assert_eq!(again.json::<Value>().await.unwrap(), first);
    let other = send(&b, "Another Shop").await.unwrap();
    assert_eq!(
        other.status(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "the key reused with another request, on the peer"
    );
    assert_eq!(a.cluster_stores().await.len(), 1);

    // Four members with room for one each, four creates each over both replicas, all at once: both
    // replicas start on each member's first store together, the sharpest race there is.
    let mut members = Vec::new();
    for name in ["dora", "egon", "fay", "gus"] {
        let user = a.create_user(name, "member", 1).await;
        members.push(user["token"].as_str().unwrap().to_owned());
    }
    let races = members
        .iter()
        .map(|token| concurrent_creates([&a, &b], Some(token), 4, "Member Shop"));
    let mut ones = Vec::new();
    for (made, refused) in futures::future::join_all(races).await {
        assert_eq!((made.len(), refused), (1, 3), "a member's quota of one");
        ones.extend(made);
    }

    // A member with room for 5: 20 creates over both replicas make exactly 5.
    let carol = a.create_user("carol", "member", 5).await;
    let carol_token = carol["token"].as_str().unwrap().to_owned();
    let (carols, refused) =
        concurrent_creates([&a, &b], Some(&carol_token), 20, "Carol Shop").await;
    assert_eq!((carols.len(), refused), (5, 15), "the member's quota");

    // The platform's room: 15 - 10 = 5 left; the admin's 20 creates over both make exactly 5.
    let (admins, refused) = concurrent_creates([&a, &b], None, 20, "Admin Shop").await;
    assert_eq!((admins.len(), refused), (5, 15), "the global quota");

    let in_cluster: HashSet<String> = a
        .cluster_stores()
        .await
        .iter()
        .map(|s| s.metadata.name.clone().unwrap())
        .collect();
    let made: HashSet<String> = carols
        .iter()
        .chain(&ones)
        .chain(&admins)
        .cloned()
        .chain([first["store_id"].as_str().unwrap().to_owned()])
        .collect();
    assert_eq!(in_cluster, made, "the stores made are the stores answered");

    // No controller ran: the Stores go without one (the harness's forced cleanup), not through it.
    a.kill9();
    b.kill9();
}

#[tokio::test]
async fn a_session_opened_on_one_replica_works_on_the_other() {
    let (a, b) = two_api_replicas("replicas-session", 1).await;
    let cookie = a.sign_in().await;
    let me = |server: &Server| {
        server
            .http
            .get(server.url("/me"))
            .header(header::COOKIE, &cookie)
            .send()
    };
    let on_b = me(&b).await.unwrap();
    assert_eq!(on_b.status(), StatusCode::OK, "the peer knows the session");
    assert_eq!(on_b.json::<Value>().await.unwrap()["user"], "admin");
    // Signed out on the peer: over on both.
    let r = b
        .http
        .delete(b.url("/session"))
        .header(header::COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(me(&a).await.unwrap().status(), StatusCode::UNAUTHORIZED);
    assert_eq!(me(&b).await.unwrap().status(), StatusCode::UNAUTHORIZED);
}

/// What a Service does for a rolling restart, in small: it sends requests only to replicas whose
/// `/readyz` answered 200 at the last probe, and probes every 200 ms.
struct Endpoints {
    replicas: Mutex<Vec<(String, bool)>>,
    next: AtomicUsize,
}

impl Endpoints {
    fn add(&self, base: &str) {
        self.replicas.lock().unwrap().push((base.to_owned(), false));
    }

    fn pick(&self) -> Option<String> {
        let replicas = self.replicas.lock().unwrap();
        let ready: Vec<&String> = replicas
            .iter()
            .filter(|(_, ready)| *ready)
            .map(|(base, _)| base)
            .collect();
        if ready.is_empty() {
            return None;
        }
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        Some(ready[n % ready.len()].clone())
    }

    async fn probe_forever(self: Arc<Self>, http: reqwest::Client) {
        loop {
            let bases: Vec<String> = self
                .replicas
                .lock()
                .unwrap()
                .iter()
                .map(|(b, _)| b.clone())
                .collect();
            for base in bases {
                let ready = http
                    .get(format!("{base}/readyz"))
                    .timeout(Duration::from_secs(1))
                    .send()
                    .await
                    .is_ok_and(|r| r.status() == StatusCode::OK);
                for entry in self.replicas.lock().unwrap().iter_mut() {
                    if entry.0 == base {
                        entry.1 = ready;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// SIGTERM, then waits (without blocking the runtime) until the process has exited.
async fn stop(server: &mut Server) {
    server.send_sigterm();
    testkit::wait_for("the replica to exit", Duration::from_secs(30), || {
        let exited = server.exited();
        async move { exited.then_some(()) }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rolling_restart_under_load_fails_no_request() {
    let options = || Options {
        database: Db::Postgres,
        // The drain (shutdown.rs): well over the 200 ms in which the probe takes a replica out.
        extra_args: vec![
            "--leader-election".into(),
            "--shutdown-delay".into(),
            "2s".into(),
        ],
        ..Options::default()
    };
    let mut old_a = Server::start("replicas-rolling", options()).await;
    let mut old_b = old_a.start_peer().await;
    // A session opened before the restart is used throughout, on whichever replica answers.
    let cookie = old_a.sign_in().await;

    let endpoints = Arc::new(Endpoints {
        replicas: Mutex::new(Vec::new()),
        next: AtomicUsize::new(0),
    });
    endpoints.add(&old_a.base);
    endpoints.add(&old_b.base);
    let http = old_a.http.clone();
    let prober = tokio::spawn(endpoints.clone().probe_forever(http.clone()));

    // Steady, bounded load: 4 clients, each one request at a time and 100 ms apart, loopback only;
    // about 40 a second, under one user's read limit (50 a second per replica, docs/security.md).
    let stop_load = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let answered = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for client in 0..4 {
        let (endpoints, stop_load, failures, answered) = (
            endpoints.clone(),
            stop_load.clone(),
            failures.clone(),
            answered.clone(),
        );
        let (http, token, cookie) = (http.clone(), old_a.token.clone(), cookie.clone());
        clients.push(tokio::spawn(async move {
            let mut n = 0usize;
            while !stop_load.load(Ordering::Relaxed) {
                let Some(base) = endpoints.pick() else {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                };
                n += 1;
                let request = if (client + n).is_multiple_of(2) {
                    http.get(format!("{base}/stores")).bearer_auth(&token)
                } else {
                    http.get(format!("{base}/me"))
                        .header(header::COOKIE, &cookie)
                };
                match request.send().await {
                    Ok(r) if r.status() == StatusCode::OK => {
                        answered.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(r) => failures
                        .lock()
                        .unwrap()
                        .push(format!("{base}: {}", r.status())),
                    Err(e) => failures.lock().unwrap().push(format!("{base}: {e}")),
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }));
    }
    testkit::wait_for("load on both replicas", Duration::from_secs(10), || {
        let n = answered.load(Ordering::Relaxed);
        async move { (n > 50).then_some(()) }
    })
    .await;

    // The Deployment's rolling update with maxSurge 1, maxUnavailable 0: a new replica, ready, then
    // an old one stopped; twice.
    let new_a = old_a.start_peer().await;
    endpoints.add(&new_a.base);
    stop(&mut old_a).await;
    let new_b = old_b.start_peer().await;
    endpoints.add(&new_b.base);
    stop(&mut old_b).await;
    let after = answered.load(Ordering::Relaxed);
    testkit::wait_for("load on the new replicas", Duration::from_secs(10), || {
        let n = answered.load(Ordering::Relaxed);
        async move { (n > after + 50).then_some(()) }
    })
    .await;

    stop_load.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    prober.abort();
    let failures = failures.lock().unwrap().clone();
    let answered = answered.load(Ordering::Relaxed);
    eprintln!(
        "{answered} requests answered through the restart, {} failed",
        failures.len()
    );
    assert!(failures.is_empty(), "{failures:?}");
    assert!(
        answered > 100,
        "too little load to mean anything: {answered}"
    );
    drop((new_a, new_b));
}
