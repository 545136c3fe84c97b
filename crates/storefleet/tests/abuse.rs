//! Issue 19's abuse audit, replayed against the real binary on the test cluster: each test is one
//! finding and fails on the code that audit ran against (commit 0fce351). Every load loop is bounded
//! in count and time and stays on loopback.
mod support;

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use futures::StreamExt;
use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};
use support::private_cluster::PrivateCluster;
use support::{EventStream, Options, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn options(args: &[&str]) -> Options {
    Options {
        extra_args: args.iter().map(|a| (*a).to_owned()).collect(),
        ..Options::default()
    }
}

/// Resident memory of a process, in bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kb * 1024
}

/// Sends raw bytes on a new connection; answers the status line's code (0 if none came).
async fn raw_status(addr: &str, request: &[u8]) -> u16 {
    let Ok(mut stream) = TcpStream::connect(addr).await else {
        return 0;
    };
    if stream.write_all(request).await.is_err() {
        return 0;
    }
    let mut head = vec![0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut head))
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or(0);
    String::from_utf8_lossy(&head[..n])
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// The sum of the kube-apiserver's metric `name` over the series whose labels include all of `labels`.
async fn apiserver_metric(server: &Server, name: &str, labels: &[&str]) -> f64 {
    let text = server
        .cluster
        .client
        .request_text(
            axum::http::Request::get("/metrics")
                .body(Vec::new())
                .unwrap(),
        )
        .await
        .expect("the API server's /metrics (admin)");
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .filter(|l| labels.iter().all(|label| l.contains(label)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Finding 1: made-up methods were metric labels (memory and `/metrics` grew without bound), and
/// `/healthz` was exempt from limits whatever the method.
#[tokio::test]
async fn made_up_methods_are_refused_and_leave_nothing_behind() {
    let server = Server::start("odd-methods", Options::default()).await;
    let addr = server.base.trim_start_matches("http://").to_owned();
    let before = rss(server.pid());
    let method = "X".repeat(8000);
    let statuses: Vec<u16> = futures::stream::iter(0..2000)
        .map(|n| {
            let request =
                format!("{method}{n} /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            let addr = addr.clone();
            async move { raw_status(&addr, request.as_bytes()).await }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    assert!(
        statuses.iter().all(|s| *s == 405),
        "every made-up method gets 405: {:?}",
        statuses
            .iter()
            .filter(|s| **s != 405)
            .take(5)
            .collect::<Vec<_>>()
    );
    let metrics = server
        .http
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.len() < 64 * 1024,
        "/metrics is {} bytes after 2,000 odd methods",
        metrics.len()
    );
    assert!(!metrics.contains("XXXXXXXX"), "a made-up method is a label");
    assert!(
        metrics.contains(
            r#"storefleet_http_requests_total{route="unmatched",method="other",status="405"} 2000"#
        ),
        "odd methods are counted as `other`"
    );
    let grown = rss(server.pid()).saturating_sub(before);
    assert!(grown < 16 << 20, "RSS grew by {} MB", grown >> 20);

    // Probes are exempt from the limits only for GET and HEAD: writes to them are limited.
    let posts: Vec<StatusCode> = futures::stream::iter(0..60)
        .map(|_| async {
            server
                .http
                .post(server.url("/healthz"))
                .send()
                .await
                .unwrap()
                .status()
        })
        .buffer_unordered(4)
        .collect()
        .await;
    assert!(
        posts.contains(&StatusCode::TOO_MANY_REQUESTS),
        "POST /healthz is never limited: {posts:?}"
    );
    server.assert_healthy().await;
}

/// Finding 2: a 401 without credentials wrote an audit entry with the raw path (30 KB a segment), and
/// such 401s did not count as refused sign-ins.
#[tokio::test]
async fn a_flood_without_credentials_leaves_a_bounded_audit_log() {
    let server = Server::start("anon-flood", Options::default()).await;
    let long = "a".repeat(30_000);
    let statuses: Vec<StatusCode> = futures::stream::iter(0..300)
        .map(|_| {
            let url = server.url(&format!("/stores/{long}"));
            let http = server.http.clone();
            async move { http.get(url).send().await.unwrap().status() }
        })
        .buffer_unordered(4)
        .collect()
        .await;
    let unauthorized = statuses
        .iter()
        .filter(|s| **s == StatusCode::UNAUTHORIZED)
        .count();
    let limited = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!(unauthorized + limited, 300, "{statuses:?}");
    assert!(
        unauthorized <= 40,
        "{unauthorized} anonymous 401s: they do not count as refused sign-ins"
    );
    // The address is blocked now: wait it out before reading the audit log with the admin token.
    tokio::time::sleep(Duration::from_secs(7)).await;
    let denials: Vec<Value> = server
        .audit("?limit=500")
        .await
        .into_iter()
        .filter(|e| e["actor"] == "anonymous")
        .collect();
    assert!(
        denials.len() <= 2,
        "{} anonymous entries: refusals are not aggregated: {denials:#?}",
        denials.len()
    );
    let counted: i64 = denials.iter().map(|e| e["count"].as_i64().unwrap()).sum();
    assert_eq!(counted as usize, unauthorized, "the count tells how many");
    for entry in &denials {
        let detail = entry["detail"].as_str().unwrap();
        assert!(detail.len() <= 512, "a {} byte detail", detail.len());
        assert!(
            detail.contains("/stores/{store_id}") && !detail.contains("aaaa"),
            "the raw path is in the audit log: {detail:.80}"
        );
    }
    assert!(
        !server.log().contains(&"a".repeat(1000)),
        "the raw path is in the server log"
    );
}

/// Finding 3: members inflated the audit log with large unknown fields and every refusal, and their
/// probes of another member's store ids landed in that member's own view.
#[tokio::test]
async fn member_refusals_are_capped_aggregated_and_kept_out_of_the_victims_view() {
    let server = Server::start("member-flood", Options::default()).await;
    let mallory = server.create_user("mallory", "member", 1).await;
    let victim = server.create_user("victim", "member", 1).await;
    let (mallory_token, victim_token) = (
        mallory["token"].as_str().unwrap().to_owned(),
        victim["token"].as_str().unwrap().to_owned(),
    );
    let created = server
        .as_user(&victim_token, Method::POST, "/stores")
        .json(&json!({"name": "victim shop"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::ACCEPTED);
    let store: Value = created.json().await.unwrap();
    let id = store["store_id"].as_str().unwrap().to_owned();

    for _ in 0..40 {
        let r = server
            .as_user(&mallory_token, Method::GET, &format!("/stores/{id}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
    }
    let big = "f".repeat(60_000);
    for _ in 0..20 {
        let r = server
            .as_user(&mallory_token, Method::POST, "/stores")
            .header(header::CONTENT_TYPE, "application/json")
            .body(format!("{{\"{big}\": 1}}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    }
    // Written in the background: give the last ones a moment.
    tokio::time::sleep(Duration::from_secs(1)).await;

    let everything = server.audit("?limit=500").await;
    let by_mallory: Vec<&Value> = everything
        .iter()
        .filter(|e| e["actor"] == "mallory" && e["action"] == "denied")
        .collect();
    assert_eq!(
        by_mallory.len(),
        2,
        "one entry per kind of refusal: {by_mallory:#?}"
    );
    let count = |outcome: &str| {
        by_mallory
            .iter()
            .find(|e| e["outcome"] == outcome)
            .map(|e| e["count"].as_i64().unwrap())
    };
    assert_eq!(count("not-owner"), Some(40));
    assert_eq!(count("invalid-request"), Some(20));
    assert!(
        by_mallory
            .iter()
            .all(|e| e["detail"].as_str().unwrap().len() <= 512),
        "an unknown field is quoted whole"
    );

    let victims_view: Value = server
        .as_user(&victim_token, Method::GET, "/audit?limit=500")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let foreign: Vec<&Value> = victims_view
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["actor"] != "victim" && e["action"] == "denied")
        .collect();
    assert!(
        foreign.is_empty(),
        "another member's refusals are in the victim's view: {foreign:#?}"
    );
}

/// Finding 5: a stream outlived the revocation of its token, the disabling of its user and the end
/// of its session.
#[tokio::test]
async fn streams_end_when_their_credentials_do() {
    let server = Server::start("stream-ends", Options::default()).await;
    let open = |token: String| open_events(&server, token);
    let jane = server.create_user("jane", "member", 1).await;
    let jane_token = jane["token"].as_str().unwrap().to_owned();
    let mut janes = Vec::new();
    for _ in 0..2 {
        let (status, mut stream) = open(jane_token.clone()).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(stream.next().await.unwrap().0, "snapshot");
        janes.push(stream);
    }

    // Revoking jane's token ends her streams within seconds.
    let jane_id = jane["user_id"].as_str().unwrap();
    let tokens: Value = server
        .req(Method::GET, &format!("/users/{jane_id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token_id = tokens["tokens"][0]["token_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no token id in {tokens}"))
        .to_owned();
    let revoked = server
        .req(
            Method::DELETE,
            &format!("/users/{jane_id}/tokens/{token_id}"),
        )
        .send()
        .await
        .unwrap();
    assert!(revoked.status().is_success(), "{}", revoked.status());
    for stream in &mut janes {
        assert_ends(stream, "after the token was revoked").await;
    }

    // Disabling a user ends theirs.
    let joe = server.create_user("joe", "member", 1).await;
    let (status, mut joes) = open(joe["token"].as_str().unwrap().to_owned()).await;
    assert_eq!(status, StatusCode::OK);
    let disabled = server
        .req(
            Method::PATCH,
            &format!("/users/{}", joe["user_id"].as_str().unwrap()),
        )
        .json(&json!({"disabled": true}))
        .send()
        .await
        .unwrap();
    assert!(disabled.status().is_success());
    assert_ends(&mut joes, "after the user was disabled").await;

    // Signing out ends the session's stream.
    let cookie = server.sign_in().await;
    let r = server
        .http
        .get(server.url("/events"))
        .header(header::COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let mut session_stream = EventStream::new(r);
    assert_eq!(session_stream.next().await.unwrap().0, "snapshot");
    let out = server
        .http
        .delete(server.url("/session"))
        .header(header::COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), StatusCode::NO_CONTENT);
    assert_ends(&mut session_stream, "after sign-out").await;
}

/// Finding 4: streams were unlimited.
#[tokio::test]
async fn streams_are_capped_per_user_and_in_all() {
    let server = Server::start(
        "stream-caps",
        options(&["--max-streams-per-user", "3", "--max-streams", "6"]),
    )
    .await;
    let open = |token: String| open_events(&server, token);
    let mut held = Vec::new();
    for _ in 0..3 {
        let (status, stream) = open(server.token.clone()).await;
        assert_eq!(status, StatusCode::OK);
        held.push(stream);
    }
    let (status, _) = open(server.token.clone()).await;
    assert_eq!(
        status,
        StatusCode::TOO_MANY_REQUESTS,
        "a 4th stream of one user"
    );
    // Closing one frees its place.
    held.pop();
    let reopened = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let (status, stream) = open(server.token.clone()).await;
            if status == StatusCode::OK {
                return stream;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await
    .expect("a closed stream's place is freed");
    held.push(reopened);
    // The global cap: six at once, whoever holds them.
    for n in 0..2 {
        let user = server.create_user(&format!("many{n}"), "member", 1).await;
        let token = user["token"].as_str().unwrap().to_owned();
        for _ in 0..3 {
            let (status, stream) = open(token.clone()).await;
            held.push(stream);
            if held.len() <= 6 {
                assert_eq!(status, StatusCode::OK, "stream {}", held.len());
            } else {
                assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "a 7th stream");
            }
        }
    }
}

/// `GET /events` as the holder of `token`: the status, and the stream to read.
async fn open_events(server: &Server, token: String) -> (StatusCode, EventStream) {
    let r = server
        .as_user(&token, Method::GET, "/events")
        .send()
        .await
        .unwrap();
    (r.status(), EventStream::new(r))
}

/// Sends SIGTERM; the process must be gone within 10 s.
async fn assert_stops_on_sigterm(server: &mut Server, what: &str) {
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &server.pid().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let started = Instant::now();
    while !server.exited() {
        assert!(started.elapsed() < Duration::from_secs(10), "{what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn assert_ends(stream: &mut EventStream, when: &str) {
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        while stream.next().await.is_some() {}
    })
    .await;
    assert!(ended.is_ok(), "the stream still runs 10 s {when}");
}

/// Finding 4: one API-server watch feeds every stream.
#[tokio::test]
async fn many_streams_share_one_api_server_watch() {
    let server = Server::start("one-watch", Options::default()).await;
    let mut tokens = Vec::new();
    for n in 0..4 {
        let user = server
            .create_user(&format!("watcher{n}"), "member", 1)
            .await;
        tokens.push(user["token"].as_str().unwrap().to_owned());
    }
    let watches = || {
        apiserver_metric(
            &server,
            "apiserver_longrunning_gauge",
            &[r#"resource="stores""#, r#"verb="WATCH""#],
        )
    };
    let before = watches().await;
    let mut streams = Vec::new();
    for n in 0..40 {
        let r = server
            .as_user(&tokens[n % 4], Method::GET, "/events")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let mut stream = EventStream::new(r);
        assert_eq!(stream.next().await.unwrap().0, "snapshot");
        streams.push(stream);
    }
    let during = watches().await;
    // Other tests of this binary start servers meanwhile (a few watches each); 40 streams as 40
    // watches would be far more.
    assert!(
        during - before < 20.0,
        "40 streams opened {} watches of Stores on the API server",
        during - before
    );
    drop(streams);
}

/// Finding 8: `/readyz` listed Stores on every call.
#[tokio::test]
async fn readyz_answers_without_calling_the_api_server() {
    let server = Server::start("readyz", Options::default()).await;
    let lists = || {
        apiserver_metric(
            &server,
            "apiserver_request_total",
            &[r#"resource="stores""#, r#"verb="LIST""#],
        )
    };
    let before = lists().await;
    for _ in 0..300 {
        let r = server.http.get(server.url("/readyz")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    }
    let after = lists().await;
    assert!(
        after - before < 60.0,
        "300 probes made {} Store LISTs",
        after - before
    );
}

/// Finding 9: with two session cookies the first won (a sibling host could plant one).
#[tokio::test]
async fn two_session_cookies_are_refused() {
    let server = Server::start("two-cookies", Options::default()).await;
    let cookie = server.sign_in().await;
    let ok = server
        .http
        .get(server.url("/me"))
        .header(header::COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    for cookies in [
        format!("{cookie}; storefleet_session=planted"),
        format!("storefleet_session=planted; {cookie}"),
    ] {
        let r = server
            .http
            .get(server.url("/me"))
            .header(header::COOKIE, &cookies)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{cookies}");
    }
}

/// Finding 10: the rate-limit bucket was keyed by the raw header, so spellings of one token each had
/// a fresh bucket. Each request comes from its own loopback address, so only the token's bucket can
/// refuse.
#[tokio::test]
async fn spellings_of_one_token_share_one_bucket() {
    let server = Server::start(
        "token-bucket",
        options(&["--rate-limit-reads", "1", "--rate-limit-reads-burst", "5"]),
    )
    .await;
    let port = server.base.rsplit(':').next().unwrap().to_owned();
    // Spellings that authenticate on the old code too, so it fails on the buckets alone.
    let variants = [
        "Bearer {}",
        "bearer {}",
        "BEARER {}",
        "Bearer  {}",
        "Bearer {} ",
        "bEaReR   {}",
    ];
    let mut passed = 0;
    for n in 0..40u8 {
        let from = IpAddr::V4(Ipv4Addr::new(127, 0, 1, n + 1));
        let client = reqwest::Client::builder()
            .local_address(from)
            .build()
            .unwrap();
        let value = variants[usize::from(n) % variants.len()].replace("{}", &server.token);
        let r = client
            .get(format!("http://127.0.0.1:{port}/me"))
            .header(header::AUTHORIZATION, value)
            .send()
            .await
            .unwrap();
        match r.status() {
            StatusCode::OK => passed += 1,
            StatusCode::TOO_MANY_REQUESTS => {}
            other => panic!("{other}"),
        }
    }
    assert!(
        passed <= 8,
        "{passed} of 40 passed: spellings of one token have buckets of their own"
    );
}

/// Finding 14: the Origin check ignored the scheme and refused every HTTP/2 write (no `Host`).
#[tokio::test]
async fn origin_check_compares_scheme_host_and_port_also_over_http2() {
    let server = Server::start("origin", Options::default()).await;
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let sign_in = |client: &reqwest::Client, origin: &str| {
        client
            .post(server.url("/session"))
            .header(header::ORIGIN, origin)
            .json(&json!({"token": server.token}))
            .send()
    };
    let own = server.base.clone();
    let r = sign_in(&h2, &own).await.unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "a same-origin sign-in over HTTP/2"
    );
    let https = own.replacen("http://", "https://", 1);
    let r = sign_in(&server.http, &https).await.unwrap();
    assert_eq!(
        r.status(),
        StatusCode::FORBIDDEN,
        "another scheme is another origin"
    );
}

/// Findings 12 and 13: built-in actor names were free to take; idempotency keys never expired.
#[tokio::test]
async fn reserved_names_and_expiring_idempotency_keys() {
    let server = Server::start("reserved", options(&["--idempotency-ttl", "2s"])).await;
    for name in ["anonymous", "Controller", "storefleet"] {
        let r = server
            .req(Method::POST, "/users")
            .json(&json!({"name": name, "role": "member", "max_stores": 1}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{name}");
    }
    let create = |name: &str| {
        server
            .req(Method::POST, "/stores")
            .header("idempotency-key", "abuse-key-1")
            .json(&json!({"name": name}))
            .send()
    };
    assert_eq!(
        create("first").await.unwrap().status(),
        StatusCode::ACCEPTED
    );
    let reused = create("second").await.unwrap();
    assert_eq!(
        reused.status(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "within the TTL"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = create("second").await.unwrap();
    assert_eq!(
        after.status(),
        StatusCode::ACCEPTED,
        "the key expired: it is free again"
    );
}

/// Finding 16: without the Store CRD the server logged a warning every few hundred milliseconds,
/// answered `POST /stores` 500 with "404 page not found", and ignored SIGTERM. A private cluster: the
/// CRD is cluster-wide, and the shared one has it.
#[tokio::test]
async fn without_the_crd_the_server_names_the_fix_and_still_stops() {
    let private = PrivateCluster::up("no-crd").await;
    let mut server = Server::start_on(
        private.cluster.clone(),
        "no-crd",
        Options {
            install_crd: false,
            ..Options::default()
        },
    )
    .await;
    let problem = |r: reqwest::Response| async move {
        let status = r.status();
        (status, r.json::<Value>().await.unwrap_or(Value::Null))
    };
    let says_how = |body: &Value| {
        let detail = body["detail"].as_str().unwrap_or_default();
        detail.contains("CRD")
            && detail.contains("not installed")
            && detail.contains("kubectl apply")
    };
    // The first check runs at start; give it a moment.
    let ready = testkit::wait_for(
        "/readyz to name the missing CRD",
        Duration::from_secs(30),
        || {
            let r = server.http.get(server.url("/readyz")).send();
            async move {
                let (status, body) = problem(r.await.ok()?).await;
                (status == StatusCode::SERVICE_UNAVAILABLE && says_how(&body)).then_some(body)
            }
        },
    )
    .await;
    let (status, body) = problem(server.create(json!({"name": "too early"})).await).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(says_how(&body), "{body}");
    // Quiet while waiting: no line per retry.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let noisy = server
        .log()
        .lines()
        .filter(|l| l.contains("\"WARN\"") || l.contains("\"ERROR\""))
        .count();
    assert!(
        noisy <= 3,
        "{noisy} warnings in 5 s without the CRD: {ready}"
    );
    assert_stops_on_sigterm(
        &mut server,
        "still running 10 s after SIGTERM without the CRD",
    )
    .await;
    drop(server);
    drop(private);
}

/// Finding 16: SIGTERM with streams open did not end the process at once.
#[tokio::test]
async fn sigterm_ends_the_process_within_seconds() {
    let mut server = Server::start("sigterm", Options::default()).await;
    let r = server.req(Method::GET, "/events").send().await.unwrap();
    let mut stream = EventStream::new(r);
    assert_eq!(stream.next().await.unwrap().0, "snapshot");
    assert_stops_on_sigterm(&mut server, "still running 10 s after SIGTERM").await;
}
