//! The storefront check (`GET /stores/{id}/health`).
//!
//! - Through the product API on the test cluster: a Ready store's storefront is asked on its
//!   Service's ClusterIP, where no WordPress listens (the kubelet stand-in runs no container), so
//!   the answer is a 200 with both parts failed (unreachable; or, where the machine's own network
//!   answers every connection, whatever it answered), within the timeout; visibility as for
//!   `GET /stores/{id}`.
//! - The checker itself against a **stand-in for WordPress**: a small axum server on 127.0.0.1
//!   started by the test, answering as WordPress does (the home page with the site title, the REST
//!   index, `redirect_canonical`'s redirect of a foreign Host), and misbehaving on purpose. It is
//!   not WordPress; `tests/realpods.rs` asks real WordPress.
mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode as AxumStatus, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use k8s_openapi::api::core::v1::Service;
use kube::Api;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use storefleet::storefront::{Checker, Failure, PartResult, Target};
use support::{Options, Server};

const HOST: &str = "store-7016ff.localhost";
/// The store's name, and WordPress's site title.
const TITLE: &str = "Café \"Quatre\" -- shop";

// --- through the product API, on the test cluster -------------------------------------------

#[tokio::test]
async fn a_ready_store_on_the_standin_answers_unreachable_as_a_200() {
    let server = Server::start("storefront", Options::default()).await;
    let r = server.create(json!({"name": "Health shop"})).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let id = r.json::<Value>().await.unwrap()["store_id"]
        .as_str()
        .unwrap()
        .to_owned();
    server
        .wait_phase(&id, "Ready", support::READY_TIMEOUT)
        .await;

    let started = Instant::now();
    let r = server
        .req(Method::GET, &format!("/stores/{id}/health"))
        .send()
        .await
        .unwrap();
    let took = started.elapsed();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()[header::CACHE_CONTROL], "no-store");
    let report: Value = r.json().await.unwrap();
    assert_eq!(report["store_id"], id.as_str());
    assert_eq!(report["host"], format!("{id}.localhost"));
    assert_eq!(report["healthy"], false, "{report:#}");
    assert_eq!(report["woocommerce_active"], Value::Null, "{report:#}");
    // What answers on the Service's ClusterIP from this machine, asked independently: normally
    // nothing (no kube-proxy, no pod behind it). Some build machines' sandboxes answer every
    // outbound TCP connection themselves (an HTTP 404 from their egress proxy); then the report
    // must say exactly that instead. Either way: a 200, both parts failed, not healthy.
    let service = Api::<Service>::namespaced(server.cluster.client.clone(), &id)
        .get(&format!("{id}-wordpress"))
        .await
        .unwrap();
    let cluster_ip = service.spec.unwrap().cluster_ip.unwrap();
    let there = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(3))
        .build()
        .unwrap()
        .get(format!("http://{cluster_ip}/"))
        .header(header::HOST, format!("{id}.localhost"))
        .send()
        .await
        .ok()
        .map(|r| r.status().as_u16());
    eprintln!("on {cluster_ip}:80 this machine finds: {there:?}");
    for part in ["home_page", "rest_api"] {
        let p = &report[part];
        assert_eq!(p["result"], "failed", "{part}: {report:#}");
        match there {
            None => {
                assert!(
                    p["failure"] == "unreachable" || p["failure"] == "timeout",
                    "{part}: {report:#}"
                );
                assert_eq!(p["http_status"], Value::Null);
            }
            Some(status) => {
                assert_eq!(p["failure"], "http_status", "{part}: {report:#}");
                assert_eq!(p["http_status"], status, "{part}: {report:#}");
            }
        }
        assert!(p["reason"].as_str().is_some_and(|r| !r.is_empty()));
        assert!(p["latency_ms"].as_u64().unwrap() <= 3_500, "{report:#}");
    }
    // Both parts at once, each within 3 s: the answer never waits for the request timeout.
    assert!(took < Duration::from_secs(6), "took {took:?}");

    // Visibility as for GET /stores/{id}: another member's view of it, an unknown and a bad id.
    let member = server.create_user("health-member", "member", 1).await;
    let token = member["token"].as_str().unwrap();
    let theirs = server
        .as_user(token, Method::GET, &format!("/stores/{id}/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(theirs.status(), StatusCode::NOT_FOUND);
    let unknown = server
        .as_user(token, Method::GET, "/stores/store-000000/health")
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    let (theirs, unknown) = (
        theirs.json::<Value>().await.unwrap(),
        unknown.json::<Value>().await.unwrap(),
    );
    assert_eq!(
        (theirs["type"].as_str(), theirs["title"].as_str()),
        (unknown["type"].as_str(), unknown["title"].as_str()),
        "another user's store looks like a missing one"
    );
    for path in ["/stores/not-a-store/health", "/stores/store-000000/health"] {
        let (status, body) = server.get_json(path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
    }
    let anonymous = server
        .http
        .get(server.url(&format!("/stores/{id}/health")))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    server.assert_healthy().await;
}

// --- the checker against a stand-in for WordPress ---------------------------------------------

/// How the stand-in behaves.
#[derive(Clone)]
struct Site {
    /// The host WordPress believes it is (`home`): other Hosts are redirected there.
    host: &'static str,
    /// `<title>` as WordPress prints it (texturized and escaped).
    title_html: &'static str,
    namespaces: Vec<&'static str>,
    /// Every request, counted.
    hits: Arc<AtomicUsize>,
}

impl Site {
    fn new(namespaces: &[&'static str]) -> Self {
        Self {
            host: HOST,
            // wp_get_document_title() of TITLE: wptexturize, then esc_html.
            title_html: "Caf\u{e9} &#8220;Quatre&#8221; &#8211; shop",
            namespaces: namespaces.to_vec(),
            hits: Arc::default(),
        }
    }
}

/// WordPress's `redirect_canonical`: a request for another host is sent to the site's own.
fn canonical(site: &Site, headers: &HeaderMap, path: &str) -> Option<Response> {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    (host != Some(site.host)).then(|| {
        (
            AxumStatus::MOVED_PERMANENTLY,
            [(header::LOCATION, format!("http://{}{path}", site.host))],
        )
            .into_response()
    })
}

async fn home(State(site): State<Site>, headers: HeaderMap) -> Response {
    site.hits.fetch_add(1, Ordering::SeqCst);
    if let Some(r) = canonical(&site, &headers, "/") {
        return r;
    }
    let html = format!(
        "<!DOCTYPE html>\n<html lang=\"en-US\">\n<head>\n<meta charset=\"UTF-8\" />\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\" />\n\
         <title>{}</title>\n</head>\n<body class=\"home blog\"></body></html>",
        site.title_html
    );
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=UTF-8"),
            (
                header::LINK,
                "<http://store-7016ff.localhost/wp-json/>; rel=\"https://api.w.org/\"",
            ),
        ],
        html,
    )
        .into_response()
}

async fn rest_index(
    State(site): State<Site>,
    headers: HeaderMap,
    Query(query): Query<std::collections::HashMap<String, String>>,
) -> Response {
    site.hits.fetch_add(1, Ordering::SeqCst);
    if let Some(r) = canonical(&site, &headers, "/wp-json/") {
        return r;
    }
    // WP_REST_Server::get_index, then core's rest_filter_response_fields for `_fields`.
    let full = json!({
        "name": "Café \"Quatre\" -- shop", "description": "", "url": format!("http://{}", site.host),
        "home": format!("http://{}", site.host), "gmt_offset": "0", "timezone_string": "",
        "page_for_posts": 0, "page_on_front": 0, "show_on_front": "posts",
        "namespaces": site.namespaces, "authentication": [], "routes": {},
        "site_logo": 0, "site_icon": 0, "site_icon_url": "",
    });
    let body = match query.get("_fields").map(String::as_str) {
        Some("namespaces") => json!({ "namespaces": full["namespaces"] }),
        _ => full,
    };
    (
        [(header::CONTENT_TYPE, "application/json; charset=UTF-8")],
        body.to_string(),
    )
        .into_response()
}

fn wordpress(site: Site) -> Router {
    Router::new()
        .route("/", get(home))
        .route("/wp-json/", get(rest_index))
        .with_state(site)
}

/// Serves `app` on 127.0.0.1 (a free port) for the rest of the test.
async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

fn target(addr: SocketAddr) -> Target {
    Target {
        addr,
        host: HOST.into(),
        site_title: TITLE.into(),
    }
}

#[tokio::test]
async fn a_woocommerce_store_is_healthy() {
    let site = Site::new(&["oembed/1.0", "wp/v2", "wc/store", "wc/store/v1", "wc/v3"]);
    let addr = serve(wordpress(site.clone())).await;
    let checks = Checker::default().check(&target(addr)).await;
    assert_eq!(checks.home_page.result, PartResult::Ok, "{checks:?}");
    assert_eq!(checks.home_page.http_status, Some(200));
    assert_eq!(checks.rest_api.result, PartResult::Ok, "{checks:?}");
    assert_eq!(checks.woocommerce_active, Some(true));
    // The stand-in answers 200 only for its own Host: the check sent the store's, no redirect.
    assert_eq!(site.hits.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn wordpress_without_woocommerce_is_up_but_not_a_shop() {
    let addr = serve(wordpress(Site::new(&["oembed/1.0", "wp/v2"]))).await;
    let checks = Checker::default().check(&target(addr)).await;
    assert!(
        checks.home_page.is_ok() && checks.rest_api.is_ok(),
        "{checks:?}"
    );
    assert_eq!(checks.woocommerce_active, Some(false));
}

#[tokio::test]
async fn another_title_fails_the_home_page() {
    let site = Site {
        title_html: "Error establishing a database connection",
        ..Site::new(&["wp/v2", "wc/store/v1"])
    };
    let addr = serve(wordpress(site)).await;
    let checks = Checker::default().check(&target(addr)).await;
    let home = &checks.home_page;
    assert_eq!(
        (home.result, home.failure, home.http_status),
        (
            PartResult::Failed,
            Some(Failure::UnexpectedContent),
            Some(200)
        )
    );
    assert!(
        home.reason
            .as_deref()
            .unwrap()
            .contains("Error establishing a database connection"),
        "{home:?}"
    );
    assert!(checks.rest_api.is_ok());
}

#[tokio::test]
async fn redirects_stay_on_the_store_or_fail() {
    // A second server that must never be asked: where the store tries to send the check.
    let elsewhere_hits = Arc::new(AtomicUsize::new(0));
    let counted = elsewhere_hits.clone();
    let elsewhere = serve(Router::new().fallback(move || {
        counted.fetch_add(1, Ordering::SeqCst);
        async { "internal service" }
    }))
    .await;
    let site = Site::new(&["wp/v2"]);
    let off_store = format!("http://{elsewhere}/");
    let app = Router::new()
        // On the store: `/` moved to `/shop/` (relative), which is the home page.
        .route(
            "/",
            get(|| async { (AxumStatus::FOUND, [(header::LOCATION, "/shop/")]).into_response() }),
        )
        .route("/shop/", get(home))
        // Off the store: the REST index sends the check to another address.
        .route(
            "/wp-json/",
            get(move || async move {
                (AxumStatus::FOUND, [(header::LOCATION, off_store)]).into_response()
            }),
        )
        .with_state(site);
    let addr = serve(app).await;
    let checks = Checker::default().check(&target(addr)).await;
    assert_eq!(checks.home_page.result, PartResult::Ok, "{checks:?}");
    let rest = &checks.rest_api;
    assert_eq!(
        (rest.result, rest.failure, rest.http_status),
        (
            PartResult::Failed,
            Some(Failure::RedirectOffStore),
            Some(302)
        )
    );
    assert!(rest.reason.as_deref().unwrap().contains("not followed"));
    assert_eq!(checks.woocommerce_active, None);
    assert_eq!(
        elsewhere_hits.load(Ordering::SeqCst),
        0,
        "followed off the store"
    );

    // The check's own Host matters: asked as another store, WordPress redirects to its own host,
    // which is off the store being checked.
    let addr = serve(wordpress(Site::new(&["wp/v2"]))).await;
    let other = Target {
        host: "store-000000.localhost".into(),
        ..target(addr)
    };
    let checks = Checker::default().check(&other).await;
    assert_eq!(checks.home_page.failure, Some(Failure::RedirectOffStore));
    assert_eq!(checks.rest_api.failure, Some(Failure::RedirectOffStore));
}

#[tokio::test]
async fn redirect_loops_errors_and_oversized_answers_fail() {
    let app = Router::new()
        .route(
            "/",
            get(|| async { (AxumStatus::FOUND, [(header::LOCATION, "/")]).into_response() }),
        )
        .route(
            "/wp-json/",
            get(|| async { (AxumStatus::INTERNAL_SERVER_ERROR, "<h1>Fatal error</h1>") }),
        );
    let checks = Checker::default().check(&target(serve(app).await)).await;
    assert_eq!(checks.home_page.failure, Some(Failure::TooManyRedirects));
    assert_eq!(
        (checks.rest_api.failure, checks.rest_api.http_status),
        (Some(Failure::HttpStatus), Some(500))
    );

    let app = Router::new()
        .route("/", get(|| async { "x".repeat(2 * 1024 * 1024) }))
        .route("/wp-json/", get(|| async { "<html>not JSON</html>" }));
    let checks = Checker::default().check(&target(serve(app).await)).await;
    assert_eq!(checks.home_page.failure, Some(Failure::UnexpectedContent));
    assert!(checks.home_page.reason.unwrap().contains("larger than"));
    assert_eq!(checks.rest_api.failure, Some(Failure::UnexpectedContent));
    assert!(
        checks
            .rest_api
            .reason
            .unwrap()
            .contains("did not answer JSON")
    );
}

#[tokio::test]
async fn silence_times_out_and_a_closed_port_is_unreachable() {
    let app = Router::new().fallback(|| async {
        tokio::time::sleep(Duration::from_secs(30)).await;
        "too late"
    });
    let addr = serve(app).await;
    let timeout = Duration::from_millis(400);
    let started = Instant::now();
    let checks = Checker::new(timeout).check(&target(addr)).await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    for part in [&checks.home_page, &checks.rest_api] {
        assert_eq!(part.failure, Some(Failure::Timeout), "{part:?}");
        assert!(
            part.latency_ms >= 400 && part.latency_ms < 2_000,
            "{part:?}"
        );
    }

    // A port that was just free: nothing listens there.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let checks = Checker::default().check(&target(closed)).await;
    for part in [&checks.home_page, &checks.rest_api] {
        assert_eq!(part.failure, Some(Failure::Unreachable), "{part:?}");
        assert!(
            part.reason.as_deref().unwrap().starts_with("unreachable: "),
            "{part:?}"
        );
        assert!(
            !part.reason.as_deref().unwrap().contains("127.0.0.1"),
            "the reason names no address: {part:?}"
        );
    }
}
