//! The dashboard's side of the API: embedded assets under a strict CSP, session sign-in and sign-out,
//! `GET /me`, `GET /stores/{id}/credentials` and the list-wide `GET /events`, against the real
//! `storefleet serve` on the test cluster. The browser test (tests/ui) drives the same through Chromium.
mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};
use support::{Db, EventStream, Options, Server};

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; \
                   frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// The session cookie (`name=value`) from a sign-in answer.
fn session_cookie(r: &reqwest::Response) -> Option<(String, String)> {
    let set = r
        .headers()
        .get(header::SET_COOKIE)?
        .to_str()
        .ok()?
        .to_owned();
    let pair = set.split(';').next()?.trim().to_owned();
    Some((pair, set))
}

#[tokio::test]
async fn dashboard_assets_are_embedded_and_served_under_a_strict_csp() {
    let server = Server::start("dash-assets", Options::default()).await;
    let page = server.http.get(server.url("/")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(
        page.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert_eq!(page.headers()[header::CONTENT_SECURITY_POLICY], CSP);
    assert_eq!(page.headers()[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    assert_eq!(page.headers()[header::CACHE_CONTROL], "no-cache");
    let html = page.text().await.unwrap();
    assert!(
        !html.contains("<script>") && !html.contains(" style="),
        "inline script or style in the page"
    );

    // Follow every asset the page and its modules name: each must be served with the right type, and
    // nothing may come from another host.
    let mut pending: Vec<String> = references(&html, "/");
    let mut seen = BTreeSet::new();
    while let Some(path) = pending.pop() {
        if !seen.insert(path.clone()) {
            continue;
        }
        assert!(path.starts_with("/assets/"), "{path} is not a local asset");
        let r = server.http.get(server.url(&path)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        let content_type = r.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .to_owned();
        let etag = r.headers()[header::ETAG].clone();
        let expected = match path.rsplit('.').next().unwrap() {
            "js" => "text/javascript",
            "css" => "text/css",
            "svg" => "image/svg+xml",
            other => panic!("unexpected asset type .{other}"),
        };
        assert!(content_type.starts_with(expected), "{path}: {content_type}");
        let body = r.text().await.unwrap();
        assert!(
            !body.contains("http://") || path.ends_with(".svg"),
            "{path} names an absolute http URL"
        );
        assert!(
            !body.contains("https://"),
            "{path} names an absolute https URL"
        );
        if path.ends_with(".js") {
            pending.extend(references(&body, &path));
        }
        let again = server
            .http
            .get(server.url(&path))
            .header(header::IF_NONE_MATCH, etag)
            .send()
            .await
            .unwrap();
        assert_eq!(
            again.status(),
            StatusCode::NOT_MODIFIED,
            "{path} revalidation"
        );
    }
    assert!(seen.len() >= 8, "only {seen:?} reachable from the page");

    let missing = server
        .http
        .get(server.url("/assets/js/nope.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        missing.headers()[header::CONTENT_TYPE],
        "application/problem+json"
    );
}

/// Local paths named by `src="..."`, `href="..."` (HTML) or `from '...'` (ES modules), resolved
/// against `base`.
fn references(text: &str, base: &str) -> Vec<String> {
    let mut out = Vec::new();
    for marker in ["src=\"", "href=\"", "from '"] {
        for (i, _) in text.match_indices(marker) {
            let rest = &text[i + marker.len()..];
            let end = rest.find(['"', '\'']).unwrap();
            let target = &rest[..end];
            if target.starts_with('#') {
                continue;
            }
            let resolved = if let Some(relative) = target.strip_prefix("./") {
                format!("{}{relative}", &base[..=base.rfind('/').unwrap()])
            } else {
                target.to_owned()
            };
            out.push(resolved);
        }
    }
    out
}

#[tokio::test]
async fn session_cookie_signs_in_guards_origin_and_signs_out() {
    let server = Server::start(
        "dash-session",
        Options {
            max_stores: 2,
            ..Options::default()
        },
    )
    .await;
    let host = server.base.trim_start_matches("http://").to_owned();
    let post_session = |body: Value| server.http.post(server.url("/session")).json(&body);

    // A wrong token: 401, no cookie, audited.
    let r = post_session(json!({"token": "not-the-token"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.headers().get(header::SET_COOKIE).is_none());
    let r = server
        .http
        .post(server.url("/session"))
        .header(header::CONTENT_TYPE, "application/json")
        .body("{\"token\": 5}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let r = server
        .http
        .post(server.url("/session"))
        .body("token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // Login CSRF: another origin cannot sign the browser in, even with the right token.
    let r = post_session(json!({"token": server.token}))
        .header(header::ORIGIN, "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(r.headers().get(header::SET_COOKIE).is_none());

    // The right token: an opaque HttpOnly, SameSite=Strict cookie, and who we are.
    let r = post_session(json!({"token": server.token}))
        .header(header::ORIGIN, format!("http://{host}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let (cookie, set_cookie) = session_cookie(&r).expect("a session cookie");
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set_cookie.contains(flag), "{flag} missing: {set_cookie}");
    }
    assert!(
        !set_cookie.contains("Secure"),
        "Secure on plain http would lose the cookie: {set_cookie}"
    );
    assert!(
        cookie.starts_with("storefleet_session=") && !cookie.contains(&server.token),
        "{cookie}"
    );
    let mut me: Value = r.json().await.unwrap();
    let user_id = me.as_object_mut().unwrap().remove("user_id").unwrap();
    assert!(user_id.as_str().unwrap().starts_with("u-"), "{user_id}");
    assert_eq!(
        me,
        json!({"user": "admin", "role": "admin", "max_stores": 2, "stores_used": 0})
    );

    // The cookie alone authenticates reads...
    let with_cookie = |method: Method, path: &str| {
        server
            .http
            .request(method, server.url(path))
            .header(header::COOKIE, &cookie)
    };
    assert_eq!(
        with_cookie(Method::GET, "/me")
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    let (status, list) = {
        let r = with_cookie(Method::GET, "/stores").send().await.unwrap();
        (r.status(), r.json::<Value>().await.unwrap())
    };
    assert_eq!((status, list), (StatusCode::OK, json!([])));
    // ...and writes from its own origin (a 404 here: past authentication), never from another.
    let r = with_cookie(Method::DELETE, "/stores/store-000000")
        .header(header::ORIGIN, format!("http://{host}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = with_cookie(Method::POST, "/stores")
        .header(header::ORIGIN, "http://evil.example")
        .json(&json!({"name": "csrf"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let problem: Value = r.json().await.unwrap();
    assert_eq!(
        problem["type"],
        "https://storefleet.dev/problems/cross-origin"
    );
    assert!(
        server.cluster_stores().await.is_empty(),
        "a cross-origin POST created a store"
    );
    let r = with_cookie(Method::DELETE, "/session")
        .header(header::ORIGIN, "null")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    // Sign out: the cookie is cleared and the session is gone on the server too.
    let r = with_cookie(Method::DELETE, "/session")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let cleared = r.headers()[header::SET_COOKIE].to_str().unwrap();
    assert!(
        cleared.starts_with("storefleet_session=;") && cleared.contains("Max-Age=0"),
        "{cleared}"
    );
    assert_eq!(
        with_cookie(Method::GET, "/me")
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED
    );
    let forged = server
        .http
        .get(server.url("/me"))
        .header(header::COOKIE, "storefleet_session=00ff")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);

    let denied: Vec<Value> = server
        .audit("?limit=50")
        .await
        .into_iter()
        .filter(|e| e["action"] == "denied")
        .collect();
    assert!(
        denied
            .iter()
            .any(|e| e["detail"].as_str().unwrap().contains("POST /session")),
        "{denied:#?}"
    );
    assert!(
        denied.iter().any(|e| e["outcome"] == "cross-origin"),
        "{denied:#?}"
    );
}

#[tokio::test]
async fn me_events_and_credentials_follow_a_store() {
    let server = Server::start(
        "dash-creds",
        Options {
            max_stores: 2,
            ..Options::default()
        },
    )
    .await;
    let (status, me) = server.get_json("/me").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (me["max_stores"].as_u64(), me["stores_used"].as_u64()),
        (Some(2), Some(0))
    );

    // Unknown stores, bad ids and missing auth.
    for path in [
        "/stores/store-000000/credentials",
        "/stores/not-a-store/credentials",
    ] {
        let (status, body) = server.get_json(path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
    }
    let anonymous = server
        .http
        .get(server.url("/stores/store-000000/credentials"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);

    // The list-wide stream starts with a snapshot.
    let events = server.req(Method::GET, "/events").send().await.unwrap();
    assert_eq!(events.status(), StatusCode::OK);
    assert!(
        events.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let mut events = EventStream::new(events);
    let (name, snapshot) = next_event(&mut events).await;
    assert_eq!((name.as_str(), snapshot), ("snapshot", json!([])));

    let r = server.create(json!({"name": "Credentials shop"})).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let id = r.json::<Value>().await.unwrap()["store_id"]
        .as_str()
        .unwrap()
        .to_owned();
    // (A `snapshot` may come in between: the watch re-lists after an error; the tests run in parallel.)
    let (name, first) = loop {
        let event = next_event(&mut events).await;
        if event.0 != "snapshot" {
            break event;
        }
    };
    assert_eq!(
        (name.as_str(), first["store_id"].as_str()),
        ("store", Some(id.as_str()))
    );
    let (_, me) = server.get_json("/me").await;
    assert_eq!(me["stores_used"], 1);

    // Before the release is installed the answer is 409; once the Secret exists, it is what it holds.
    let credentials = testkit::wait_for(
        "the credentials to be available",
        support::READY_TIMEOUT,
        || async {
            let (status, body) = server.get_json(&format!("/stores/{id}/credentials")).await;
            match status {
                StatusCode::OK => Some(body),
                StatusCode::CONFLICT => None,
                other => panic!("GET credentials: {other} {body}"),
            }
        },
    )
    .await;
    let secret = Api::<Secret>::namespaced(server.cluster.client.clone(), &id)
        .get(&format!("{id}-credentials"))
        .await
        .unwrap();
    let data = secret.data.unwrap();
    let value = |key: &str| String::from_utf8(data[key].0.clone()).unwrap();
    assert_eq!(credentials["username"], value("wordpress-admin-user"));
    assert_eq!(credentials["password"], value("wordpress-admin-password"));
    assert_eq!(credentials["email"], value("wordpress-admin-email"));
    assert_eq!(
        credentials["admin_url"],
        format!("http://{id}.localhost/wp-admin/")
    );
    let revealed = server.audit(&format!("?store_id={id}")).await;
    assert!(
        revealed
            .iter()
            .any(|e| e["action"] == "credentials_revealed" && e["actor"] == "admin"),
        "{revealed:#?}"
    );

    // Deleting: the stream says Deleting, then deleted.
    let (status, _) = server.delete_store(&id).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let mut saw_deleting = false;
    loop {
        let (name, data) = next_event(&mut events).await;
        match name.as_str() {
            "store" => saw_deleting |= data["status"] == "Deleting",
            "deleted" => {
                assert_eq!(data["store_id"], id.as_str());
                break;
            }
            "snapshot" => {} // a re-list of the watch; fine
            other => panic!("unexpected event {other}: {data}"),
        }
    }
    assert!(saw_deleting, "no Deleting state before the deleted event");
    server.wait_gone(&id).await;
    let (_, me) = server.get_json("/me").await;
    assert_eq!(me["stores_used"], 0);
}

async fn next_event(events: &mut EventStream) -> (String, Value) {
    tokio::time::timeout(Duration::from_secs(240), events.next())
        .await
        .expect("no event within 240s")
        .expect("the event stream ended")
}

/// Sessions are kept in the database: a restart of the control plane (a new pod, a rolling update)
/// signs nobody out, and a signed-out session stays signed out. Before this, sessions were in
/// memory: the cookie answered 401 after the restart.
#[tokio::test]
async fn a_session_survives_a_restart_and_a_signed_out_one_does_not_come_back() {
    // SQLite on either run: the end of the test reads the database file for the session id.
    let mut server = Server::start(
        "dash-restart",
        Options {
            database: Db::Sqlite,
            ..Options::default()
        },
    )
    .await;
    let sign_in = || async {
        let r = server
            .http
            .post(server.url("/session"))
            .json(&json!({"token": server.token}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        session_cookie(&r).expect("a session cookie").0
    };
    let (kept, ended) = (sign_in().await, sign_in().await);
    async fn me(server: &Server, cookie: String) -> StatusCode {
        let r = server
            .http
            .get(server.url("/me"))
            .header(header::COOKIE, cookie);
        r.send().await.unwrap().status()
    }
    assert_eq!(me(&server, kept.clone()).await, StatusCode::OK);
    let r = server
        .http
        .delete(server.url("/session"))
        .header(header::COOKIE, &ended)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);

    server.kill9();
    server.restart().await;
    assert_eq!(
        me(&server, kept.clone()).await,
        StatusCode::OK,
        "the session was lost in the restart"
    );
    assert_eq!(
        me(&server, ended).await,
        StatusCode::UNAUTHORIZED,
        "a signed-out session came back"
    );
    // Not in the database as the cookie: only its SHA-256 is stored.
    let id = kept.split_once('=').unwrap().1;
    let path = server.database_path();
    let mut bytes = std::fs::read(&path).unwrap();
    // WAL mode: recent writes may still sit in the -wal file beside it.
    bytes.extend(std::fs::read(path.with_extension("db-wal")).unwrap_or_default());
    assert!(
        bytes.len() > 4096 && !bytes.windows(id.len()).any(|w| w == id.as_bytes()),
        "the session id is stored in the clear"
    );
}
