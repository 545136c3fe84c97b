//! A replica told to stop (SIGTERM, as Kubernetes stops a pod) drains: `/readyz` answers 503 at once,
//! so the pod leaves the Service's endpoints, while the API keeps answering for `--shutdown-delay`;
//! then the listener closes and the process exits. Against the real `storefleet serve` and the test
//! cluster. Before the drain existed, the process closed its listener at the signal: requests that
//! kube-proxy still sent it in the next seconds were refused.
mod support;

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::Value;
use support::{Options, Server};

const DELAY: Duration = Duration::from_secs(4);
/// The delay, the 5 s the server gives requests under way, and slack for a loaded machine.
const EXIT_WITHIN: Duration = Duration::from_secs(4 + 5 + 5);

#[tokio::test]
async fn sigterm_turns_readiness_off_and_keeps_serving_for_the_delay() {
    let mut server = Server::start(
        "drain",
        Options {
            extra_args: vec!["--shutdown-delay".into(), "4s".into()],
            ..Options::default()
        },
    )
    .await;
    let (status, _) = server.get_json("/readyz").await;
    assert_eq!(status, StatusCode::OK, "ready before the signal");

    server.send_sigterm();
    let signalled = Instant::now();

    // Readiness turns off first, with a reason a `kubectl describe pod` reader understands.
    let not_ready = testkit::wait_for("/readyz to answer 503", Duration::from_secs(2), || {
        let r = server.req(Method::GET, "/readyz").send();
        async move {
            let r = r.await.ok()?;
            (r.status() == StatusCode::SERVICE_UNAVAILABLE).then_some(r)
        }
    })
    .await;
    let body: Value = not_ready.json().await.unwrap();
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("shutting down")),
        "{body}"
    );

    // The API still serves, on new connections too, until most of the delay has passed.
    let mut answered = 0;
    while signalled.elapsed() < DELAY - Duration::from_secs(1) {
        let fresh = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .unwrap();
        let r = fresh
            .get(server.url("/stores"))
            .bearer_auth(&server.token)
            .send()
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "GET /stores {:?} after SIGTERM, inside the drain: {e}",
                    signalled.elapsed()
                )
            });
        assert_eq!(r.status(), StatusCode::OK, "GET /stores while draining");
        answered += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!server.exited(), "the process left before its delay");
    eprintln!("{answered} requests answered while draining");

    // Then it stops by itself.
    let exited = loop {
        if server.exited() {
            break signalled.elapsed();
        }
        assert!(
            signalled.elapsed() < EXIT_WITHIN,
            "still running {EXIT_WITHIN:?} after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    eprintln!("exited {exited:?} after SIGTERM (delay {DELAY:?})");
    assert!(exited >= DELAY, "exited after {exited:?}, before the delay");
    assert!(
        server.log().contains("draining: /readyz answers 503"),
        "the log says it drained"
    );
}
