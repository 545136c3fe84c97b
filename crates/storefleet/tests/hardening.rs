//! The guard in front of the API against the real server: rate limits (429 + Retry-After, per token
//! and per address, recovery), the failed sign-in limit, CORS, security headers, request limits
//! (body, header, timeouts), and that no token ever shows up in logs, metrics or the audit log.
//! None of these needs a store.
mod support;

use std::time::Duration;

use reqwest::{Method, RequestBuilder, Response, StatusCode, header};
use serde_json::{Value, json};
use support::{Options, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn options(args: &[&str]) -> Options {
    Options {
        extra_args: args.iter().map(|a| (*a).to_owned()).collect(),
        ..Options::default()
    }
}

/// A 429 problem; answers its `Retry-After`.
async fn assert_too_many(r: Response, what: &str) -> Duration {
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS, "{what}");
    let retry_after: u64 = r
        .headers()
        .get(header::RETRY_AFTER)
        .unwrap_or_else(|| panic!("{what}: no Retry-After"))
        .to_str()
        .unwrap()
        .parse()
        .unwrap_or_else(|e| panic!("{what}: Retry-After is not whole seconds: {e}"));
    assert!(retry_after >= 1, "{what}: Retry-After {retry_after}");
    assert_eq!(
        r.headers()[header::CONTENT_TYPE],
        "application/problem+json",
        "{what}"
    );
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body["type"], "https://storefleet.dev/problems/too-many-requests",
        "{what}: {body}"
    );
    assert_eq!(body["status"], 429, "{what}");
    assert!(
        body["request_id"].as_str().is_some_and(|id| !id.is_empty()),
        "{what}: no request id: {body}"
    );
    Duration::from_secs(retry_after)
}

async fn send(request: RequestBuilder) -> Response {
    request.send().await.expect("request")
}

#[tokio::test]
async fn writes_are_limited_per_token_and_per_address_and_recover() {
    // One write a second, three at once; the client address comes from X-Forwarded-For so one test
    // can play several clients.
    let server = Server::start(
        "ratelimit",
        options(&[
            "--rate-limit-writes",
            "1",
            "--rate-limit-writes-burst",
            "3",
            "--trust-forwarded-for",
        ]),
    )
    .await;
    let write = |token: Option<&str>, from: &str| {
        let mut r = server
            .http
            .delete(server.url("/stores/store-000000"))
            .header("x-forwarded-for", format!("192.0.2.99, {from}"));
        if let Some(token) = token {
            r = r.bearer_auth(token);
        }
        r
    };
    let admin = Some(server.token.as_str());
    for i in 0..3 {
        let r = send(write(admin, "10.0.0.1")).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "write {i} of the burst");
    }
    let retry_after = assert_too_many(send(write(admin, "10.0.0.1")).await, "4th write").await;

    // Reads have their own, larger budget.
    let r = send(
        server
            .req(Method::GET, "/stores")
            .header("x-forwarded-for", "10.0.0.1"),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK, "a read under the write limit");
    // The token's bucket is empty wherever it is used from...
    assert_too_many(
        send(write(admin, "10.0.0.2")).await,
        "same token, other address",
    )
    .await;
    // ...and the address's bucket, whatever the token (here none: refused before any token check).
    assert_too_many(
        send(write(None, "10.0.0.1")).await,
        "same address, no token",
    )
    .await;
    // Another client is not affected.
    let r = send(write(None, "10.0.0.3")).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "another client");
    // Probes are never limited.
    let r = send(server.http.get(server.url("/healthz"))).await;
    assert_eq!(r.status(), StatusCode::OK);

    // After Retry-After the token can write again (from an address that has budget).
    tokio::time::sleep(retry_after).await;
    testkit::wait_for(
        "the write limit to let the token through again",
        Duration::from_secs(30),
        || async {
            let r = send(write(admin, "10.0.0.4")).await;
            (r.status() == StatusCode::NOT_FOUND).then_some(())
        },
    )
    .await;

    // 429s are counted like every other answer.
    let metrics = send(server.http.get(server.url("/metrics")))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.contains("status=\"429\"") && !l.starts_with('#')),
        "no 429 in /metrics"
    );
}

#[tokio::test]
async fn refused_sign_ins_are_limited_and_no_secret_leaks() {
    // Three refused credentials at once, then one a second.
    let server = Server::start(
        "signins",
        options(&[
            "--auth-failures-per-minute",
            "60",
            "--auth-failures-burst",
            "3",
        ]),
    )
    .await;
    let wrong: String = server.token.chars().rev().collect();
    let sign_in = |token: &str| {
        server
            .http
            .post(server.url("/session"))
            .json(&json!({ "token": token }))
    };
    // A successful sign-in first: it earns nothing against later failures.
    let r = send(sign_in(&server.token)).await;
    assert_eq!(r.status(), StatusCode::OK);
    let cookie = r.headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let session = cookie.split_once('=').unwrap().1.to_owned();
    assert!(!session.is_empty());
    let r = send(
        server
            .http
            .get(server.url("/me"))
            .header(header::COOKIE, &cookie),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK, "signed in with the cookie");

    // A wrong bearer token and wrong sign-ins: 401 until the address is over its budget.
    let r = send(server.http.get(server.url("/stores")).bearer_auth(&wrong)).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let mut refused = 1;
    let retry_after = loop {
        let r = send(sign_in(&wrong)).await;
        if r.status() == StatusCode::TOO_MANY_REQUESTS {
            break assert_too_many(r, "sign-in after refusals").await;
        }
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        refused += 1;
        assert!(
            refused <= 10,
            "still no 429 after {refused} refused sign-ins"
        );
    };
    assert!(refused >= 3, "429 after only {refused} refusals");
    // Blocked before any token check: even the right token, by sign-in or bearer...
    assert_too_many(send(sign_in(&server.token)).await, "the right token").await;
    assert_too_many(
        send(server.req(Method::GET, "/stores")).await,
        "a bearer request",
    )
    .await;
    // ...but a request without credentials (the dashboard page) still loads.
    let r = send(server.http.get(server.url("/"))).await;
    assert_eq!(r.status(), StatusCode::OK);

    tokio::time::sleep(retry_after).await;
    testkit::wait_for(
        "sign-in to be possible again",
        Duration::from_secs(30),
        || async { (send(sign_in(&server.token)).await.status() == StatusCode::OK).then_some(()) },
    )
    .await;

    // No secret anywhere: not the admin token, not the wrong one, not the session id.
    let audit = send(server.req(Method::GET, "/audit?limit=500"))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        audit.contains("unauthorized"),
        "refusals are audited: {audit}"
    );
    let metrics = send(server.http.get(server.url("/metrics")))
        .await
        .text()
        .await
        .unwrap();
    let log = server.log();
    assert!(
        log.contains("too many refused sign-ins"),
        "the block is logged"
    );
    for (what, text) in [("audit", &audit), ("metrics", &metrics), ("log", &log)] {
        for (secret_name, secret) in [
            ("admin token", server.token.as_str()),
            ("wrong token", wrong.as_str()),
            ("session id", session.as_str()),
        ] {
            assert!(!text.contains(secret), "the {secret_name} is in the {what}");
        }
    }
}

/// Sends raw bytes, answers what the server sent back until it closed the connection.
async fn raw(server: &Server, request: &[u8], limit: Duration) -> String {
    let addr = server.base.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(limit, stream.read_to_end(&mut answer))
        .await
        .expect("the server closed the connection in time")
        .ok();
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn cors_headers_and_request_limits() {
    let allowed = "https://admin.example.com";
    let server = Server::start(
        "guard",
        options(&[
            "--cors-allow-origin",
            allowed,
            "--url-scheme",
            "https",
            "--request-timeout",
            "2s",
        ]),
    )
    .await;

    // Security headers, on the dashboard and on API answers (errors included).
    let page = send(server.http.get(server.url("/"))).await;
    let api = send(server.req(Method::GET, "/stores")).await;
    let problem = send(server.http.get(server.url("/stores"))).await;
    for (what, r) in [("/", &page), ("/stores", &api), ("401", &problem)] {
        let h = r.headers();
        let csp = h[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        for directive in [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self';",
            "frame-ancestors 'none'",
            "base-uri 'none'",
        ] {
            assert!(
                csp.contains(directive),
                "{what}: {directive} missing: {csp}"
            );
        }
        assert!(!csp.contains("unsafe"), "{what}: {csp}");
        assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff", "{what}");
        assert_eq!(h[header::X_FRAME_OPTIONS], "DENY", "{what}");
        assert_eq!(h[header::REFERRER_POLICY], "no-referrer", "{what}");
        assert_eq!(h["cross-origin-opener-policy"], "same-origin", "{what}");
        assert!(h.contains_key("permissions-policy"), "{what}");
        assert!(
            h[header::STRICT_TRANSPORT_SECURITY]
                .to_str()
                .unwrap()
                .starts_with("max-age="),
            "{what}: HSTS with --url-scheme https"
        );
    }
    assert_eq!(api.headers()[header::CACHE_CONTROL], "no-store");
    assert_eq!(page.headers()[header::CACHE_CONTROL], "no-cache");
    // The Swagger UI alone may use inline styles.
    let docs = send(server.http.get(server.url("/docs/"))).await;
    assert_eq!(docs.status(), StatusCode::OK);
    let docs_csp = docs.headers()[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap();
    assert!(
        docs_csp.contains("style-src 'self' 'unsafe-inline'")
            && docs_csp.contains("script-src 'self';"),
        "{docs_csp}"
    );

    // CORS: the allowed origin gets a preflight answer and its headers; another origin nothing.
    let preflight = |origin: &str| {
        server
            .http
            .request(Method::OPTIONS, server.url("/stores"))
            .header(header::ORIGIN, origin)
            .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
            .header(
                header::ACCESS_CONTROL_REQUEST_HEADERS,
                "authorization, content-type, idempotency-key",
            )
    };
    let r = send(preflight(allowed)).await;
    assert!(r.status().is_success(), "preflight: {}", r.status());
    assert_eq!(r.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN], allowed);
    let methods = r.headers()[header::ACCESS_CONTROL_ALLOW_METHODS]
        .to_str()
        .unwrap();
    assert!(
        methods.contains("POST") && methods.contains("DELETE"),
        "{methods}"
    );
    let allowed_headers = r.headers()[header::ACCESS_CONTROL_ALLOW_HEADERS]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(
        allowed_headers.contains("idempotency-key"),
        "{allowed_headers}"
    );
    assert!(
        !r.headers()
            .contains_key(header::ACCESS_CONTROL_ALLOW_CREDENTIALS)
    );
    let r = send(preflight("https://evil.example")).await;
    assert!(
        !r.headers()
            .contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN)
    );
    let r = send(
        server
            .req(Method::GET, "/stores")
            .header(header::ORIGIN, allowed),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN], allowed);
    let r = send(
        server
            .req(Method::GET, "/stores")
            .header(header::ORIGIN, "https://evil.example"),
    )
    .await;
    assert!(
        !r.headers()
            .contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN)
    );

    // Bodies over 64 KiB: 413.
    let r = send(
        server
            .req(Method::POST, "/stores")
            .json(&json!({"name": "x".repeat(70_000)})),
    )
    .await;
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // Request heads over the limit (too many headers, or too large): 431.
    let mut many = String::from("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n");
    for i in 0..150 {
        many.push_str(&format!("x-filler-{i}: y\r\n"));
    }
    many.push_str("\r\n");
    let answer = raw(&server, many.as_bytes(), Duration::from_secs(30)).await;
    assert!(
        answer.starts_with("HTTP/1.1 431"),
        "150 headers: {answer:?}"
    );
    let r = server
        .http
        .get(server.url("/healthz"))
        .header("x-filler", "y".repeat(40 * 1024))
        .send()
        .await;
    match r {
        Ok(r) => assert_eq!(r.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE),
        // The server may close while the client still writes the rest of the head.
        Err(e) => assert!(e.is_request() || e.is_connect(), "40 KiB header: {e}"),
    }

    // A body that never comes: the client stalled, so the timeout answers 408 (not a server error).
    let stalled = format!(
        "POST /stores HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{",
        server.token
    );
    let answer = raw(&server, stalled.as_bytes(), Duration::from_secs(60)).await;
    assert!(
        answer.starts_with("HTTP/1.1 408"),
        "stalled body: {answer:?}"
    );
    assert!(answer.contains("problems/request-timeout"), "{answer}");
    // A head that never ends (slowloris): the connection is closed, not kept forever.
    let answer = raw(
        &server,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n",
        Duration::from_secs(60),
    )
    .await;
    assert!(!answer.contains("200 OK"), "{answer:?}");
}

#[tokio::test]
async fn cors_is_off_by_default() {
    let server = Server::start("nocors", Options::default()).await;
    let r = send(
        server
            .req(Method::GET, "/stores")
            .header(header::ORIGIN, "https://admin.example.com"),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let r_headers = r.headers();
    assert!(
        !r_headers
            .keys()
            .any(|name| name.as_str().starts_with("access-control-")),
        "{r_headers:?}"
    );
    assert!(
        !r_headers.contains_key(header::STRICT_TRANSPORT_SECURITY),
        "no HSTS over http"
    );
    let r = send(
        server
            .http
            .request(Method::OPTIONS, server.url("/stores"))
            .header(header::ORIGIN, "https://admin.example.com")
            .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST"),
    )
    .await;
    assert!(
        !r.status().is_success(),
        "preflight without CORS: {}",
        r.status()
    );
    assert!(
        !r.headers()
            .keys()
            .any(|name| name.as_str().starts_with("access-control-"))
    );
}
