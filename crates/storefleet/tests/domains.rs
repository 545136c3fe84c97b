//! Custom domains (issue 18) on the real API server, through the real `storefleet serve`:
//! the validation table over HTTP (nothing left behind by a refusal), ownership (404 for a store the
//! caller cannot see), the per-store limit, the race-free claim (409 naming no store, also across
//! users), the primary domain reaching the release's values, and a deleted store freeing its
//! domains. Plus the store chart's ListenerSet, HTTPRoutes and Certificates accepted by the API
//! server (server-side dry run) with the right hostnames.
//!
//! Domains carry a random part: claims are cluster-scoped, and the test cluster is shared.
mod support;

use std::path::Path;
use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::ResourceExt;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use kube::runtime::wait::{await_condition, conditions};
use reqwest::{Method, StatusCode, header};
use serde::Deserialize;
use serde_json::{Value, json};
use storefleet::domains::DomainClaim;
use support::{GONE_TIMEOUT, Options, READY_TIMEOUT, Server, stores_api};

const BASE_DOMAIN: &str = "stores.example.net";
const MAX_DOMAINS: u32 = 3;

fn random_hex(len: usize) -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..len)
        .map(|_| char::from_digit(rng.random_range(0..16), 16).unwrap())
        .collect()
}

async fn start(test: &str) -> Server {
    Server::start(
        test,
        Options {
            extra_args: vec![
                "--base-domain".into(),
                BASE_DOMAIN.into(),
                "--max-domains-per-store".into(),
                MAX_DOMAINS.to_string(),
            ],
            ..Options::default()
        },
    )
    .await
}

/// `PUT /stores/{id}/domains/{domain}` as `token`'s user (the admin's when `None`).
async fn put(
    server: &Server,
    token: Option<&str>,
    id: &str,
    domain: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let path = format!("/stores/{id}/domains/{}", encode(domain));
    let mut req = match token {
        Some(t) => server.as_user(t, Method::PUT, &path),
        None => server.req(Method::PUT, &path),
    };
    if let Some(body) = body {
        req = req
            .header(header::CONTENT_TYPE, "application/json")
            .body(body.to_string());
    }
    let r = req.send().await.unwrap();
    let status = r.status();
    if status.is_client_error() || status.is_server_error() {
        assert_eq!(
            r.headers()[header::CONTENT_TYPE],
            "application/problem+json",
            "PUT {path}"
        );
    }
    let body = r.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        // An unexpected refusal is then explained in the failure's output.
        eprintln!("PUT {path}: {status} {body}");
    }
    (status, body)
}

async fn call(
    server: &Server,
    token: Option<&str>,
    method: Method,
    path: &str,
) -> (StatusCode, Value) {
    let req = match token {
        Some(t) => server.as_user(t, method, path),
        None => server.req(method, path),
    };
    let r = req.send().await.unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Percent-encodes a path segment (Unicode, `*`, `/`, spaces).
fn encode(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

async fn create_store(server: &Server, token: Option<&str>, name: &str) -> String {
    let req = match token {
        Some(t) => server.as_user(t, Method::POST, "/stores"),
        None => server.req(Method::POST, "/stores"),
    };
    let r = req.json(&json!({ "name": name })).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    r.json::<Value>().await.unwrap()["store_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Every claim of this server's instance: name -> store id.
async fn claims(server: &Server) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Api::<DomainClaim>::all(server.cluster.client.clone())
        .list(
            &ListParams::default().labels(&format!("storefleet.dev/instance={}", server.instance)),
        )
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|c| (c.name_any(), c.spec.store_id.clone()))
        .collect();
    out.sort();
    out
}

async fn spec_domains(server: &Server, id: &str) -> Value {
    let store = stores_api(&server.cluster.client).get(id).await.unwrap();
    serde_json::to_value(&store.spec.domains).unwrap()
}

#[tokio::test]
async fn domains_are_validated_claimed_once_limited_and_freed() {
    let server = start("domains").await;
    let tag = random_hex(6);
    let alice = server
        .create_user(&format!("alice-{tag}"), "member", 3)
        .await;
    let alice = alice["token"].as_str().unwrap().to_owned();
    let bob = server.create_user(&format!("bob-{tag}"), "member", 3).await;
    let bob = bob["token"].as_str().unwrap().to_owned();
    let shop_a = create_store(&server, Some(&alice), "Alice's").await;
    let shop_b = create_store(&server, Some(&bob), "Bob's").await;

    // Added: uppercase folded, the trailing dot dropped; a repeat is 200 with the same answer.
    let mine = format!("Shop-{tag}.EXAMPLE.com.");
    let domain = format!("shop-{tag}.example.com");
    let (status, body) = put(&server, Some(&alice), &shop_a, &mine, None).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["domain"], domain);
    assert_eq!(body["primary"], false);
    assert_eq!(body["state"], "WaitingForDns", "{body}");
    let (status, _) = put(&server, Some(&alice), &shop_a, &domain, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(claims(&server).await, [(domain.clone(), shop_a.clone())]);

    // IDNA: Unicode in the path becomes punycode.
    let (status, body) = put(
        &server,
        Some(&alice),
        &shop_a,
        &format!("bücher-{tag}.de"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let idn = format!("xn--bcher-{tag}-",);
    assert!(
        body["domain"].as_str().unwrap().starts_with("xn--")
            && body["display_name"] == format!("bücher-{tag}.de"),
        "{body} ({idn})"
    );
    let idn = body["domain"].as_str().unwrap().to_owned();

    // The validation table: each a 422 problem that names the domain, and nothing written.
    let before = (claims(&server).await, spec_domains(&server, &shop_a).await);
    for (bad, why) in [
        (format!("*.{tag}.example.com"), "wildcard"),
        ("co.uk".to_owned(), "public suffix"),
        ("github.io".to_owned(), "public suffix"),
        (format!("shop-{tag}.notatld"), "public suffix"),
        (BASE_DOMAIN.to_owned(), "platform"),
        (format!("{shop_a}.{BASE_DOMAIN}"), "platform"),
        (format!("x-{tag}.STORES.example.net."), "platform"),
        (format!("{}.example.com", "a".repeat(64)), "not a valid"),
        (
            format!("{}.example.com", vec!["a".repeat(60); 5].join(".")),
            "not a valid",
        ),
        (format!("shop_{tag}.example.com"), "not a valid"),
        (format!("shop-{tag}.example.com.."), "not a valid"),
        ("localhost".to_owned(), "one label"),
    ] {
        let (status, body) = put(&server, Some(&alice), &shop_a, &bad, None).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {body}");
        assert_eq!(
            body["type"], "https://storefleet.dev/problems/invalid-domain",
            "{bad}"
        );
        let detail = body["detail"].as_str().unwrap();
        assert!(detail.contains(why), "{bad}: {detail}");
    }
    // Bad bodies too.
    let (status, _) = put(
        &server,
        Some(&alice),
        &shop_a,
        &format!("x-{tag}.example.com"),
        Some(json!({"primary": "yes"})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = put(
        &server,
        Some(&alice),
        &shop_a,
        &format!("x-{tag}.example.com"),
        Some(json!({"primary": true, "other": 1})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        (claims(&server).await, spec_domains(&server, &shop_a).await),
        before,
        "a refused request left something behind"
    );

    // Another user's store: 404 for every route, exactly as a store that does not exist.
    for (method, path) in [
        (Method::GET, format!("/stores/{shop_a}/domains")),
        (
            Method::PUT,
            format!("/stores/{shop_a}/domains/other-{tag}.example.com"),
        ),
        (Method::DELETE, format!("/stores/{shop_a}/domains/{domain}")),
        (Method::GET, "/stores/store-000000/domains".to_owned()),
    ] {
        let (status, body) = call(&server, Some(&bob), method.clone(), &path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}: {body}");
    }
    assert_eq!(claims(&server).await, before.0);

    // Another store's domain, another user's: 409, and the answer does not say whose.
    let (status, body) = put(&server, Some(&bob), &shop_b, &domain, None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["type"], "https://storefleet.dev/problems/domain-taken");
    let text = body.to_string();
    assert!(!text.contains(&shop_a) && !text.contains("alice"), "{text}");
    assert_eq!(spec_domains(&server, &shop_b).await, json!([]));

    // Two stores racing for one new name: exactly one wins.
    let contested = format!("race-{tag}.example.org");
    let (a, b) = tokio::join!(
        put(&server, Some(&alice), &shop_a, &contested, None),
        put(&server, Some(&bob), &shop_b, &contested, None)
    );
    let mut statuses = [a.0, b.0];
    statuses.sort();
    assert_eq!(
        statuses,
        [StatusCode::CREATED, StatusCode::CONFLICT],
        "{a:?} {b:?}"
    );
    let (winner, loser) = if a.0 == StatusCode::CREATED {
        (&shop_a, &shop_b)
    } else {
        (&shop_b, &shop_a)
    };
    let (loser_token, winner_token) = if loser == &shop_a {
        (&alice, &bob)
    } else {
        (&bob, &alice)
    };
    assert!(
        !spec_domains(&server, loser)
            .await
            .to_string()
            .contains(&contested)
    );
    let (status, _) = call(
        &server,
        Some(winner_token),
        Method::DELETE,
        &format!("/stores/{winner}/domains/{contested}"),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let _ = loser_token;

    // The limit: alice's store has 2 of 3; the third fits, the fourth is refused and leaves nothing.
    let (status, _) = put(
        &server,
        Some(&alice),
        &shop_a,
        &format!("third-{tag}.example.com"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let before = (claims(&server).await, spec_domains(&server, &shop_a).await);
    let (status, body) = put(
        &server,
        Some(&alice),
        &shop_a,
        &format!("fourth-{tag}.example.com"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains(&MAX_DOMAINS.to_string())
    );
    assert_eq!(
        (claims(&server).await, spec_domains(&server, &shop_a).await),
        before
    );

    // GET: the store's domains with their state (the controller has looked by now or soon:
    // no --public-address and no TLS here, so Active).
    let listed = testkit::wait_for("the domains' state", Duration::from_secs(60), || {
        let server = &server;
        let (alice, shop_a) = (alice.clone(), shop_a.clone());
        async move {
            let (status, body) = call(
                server,
                Some(&alice),
                Method::GET,
                &format!("/stores/{shop_a}/domains"),
            )
            .await;
            assert_eq!(status, StatusCode::OK, "{body}");
            body.as_array()
                .unwrap()
                .iter()
                .all(|d| d["state"] == "Active")
                .then_some(body)
        }
    })
    .await;
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["domain"].as_str().unwrap())
        .collect();
    let mut expected = vec![domain.as_str(), idn.as_str()];
    let third = format!("third-{tag}.example.com");
    expected.push(&third);
    expected.sort();
    assert_eq!(names, expected);

    // Removing frees the name: bob may claim it now.
    let (status, _) = call(
        &server,
        Some(&alice),
        Method::DELETE,
        &format!("/stores/{shop_a}/domains/{domain}"),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = call(
        &server,
        Some(&alice),
        Method::DELETE,
        &format!("/stores/{shop_a}/domains/{domain}"),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = put(&server, Some(&bob), &shop_b, &domain, None).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    // Deleting bob's store frees its domain: alice's store takes it back once bob's is gone.
    let (status, _) = call(
        &server,
        Some(&bob),
        Method::DELETE,
        &format!("/stores/{shop_b}"),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, _) = put(&server, Some(&alice), &shop_a, &domain, None).await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "freed before the store was gone"
    );
    server.wait_gone(&shop_b).await;
    testkit::wait_for("bob's claim released", GONE_TIMEOUT, || {
        let server = &server;
        let domain = domain.clone();
        async move { (!claims(server).await.iter().any(|(d, _)| *d == domain)).then_some(()) }
    })
    .await;
    let (status, body) = put(&server, Some(&alice), &shop_a, &domain, None).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    // Every change is in the audit log (as store updates of alice's store), refusals as denied.
    let audit = server.audit(&format!("?store_id={shop_a}")).await;
    let outcomes: Vec<&str> = audit.iter().filter_map(|e| e["outcome"].as_str()).collect();
    for expected in [
        "domain-added",
        "domain-removed",
        "invalid-domain",
        "domain-limit",
    ] {
        assert!(
            outcomes.contains(&expected),
            "no {expected} in {outcomes:?}"
        );
    }
}

#[tokio::test]
async fn the_primary_domain_reaches_the_release_values() {
    let server = start("domains-primary").await;
    let tag = random_hex(6);
    let id = create_store(&server, None, "Primary").await;
    server.wait_phase(&id, "Ready", READY_TIMEOUT).await;
    let primary = format!("www-{tag}.example.com");
    let other = format!("shop-{tag}.example.com");
    assert_eq!(
        put(&server, None, &id, &other, None).await.0,
        StatusCode::CREATED
    );
    let (status, body) = put(&server, None, &id, &primary, Some(json!({"primary": true}))).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["primary"], true);

    let values = testkit::wait_for(
        "the release's values with the domains",
        READY_TIMEOUT,
        || {
            let out = server
                .cluster
                .helm()
                .args(["get", "values", &id, "-n", &id, "-o", "json"])
                .output()
                .unwrap();
            let values: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
            let ready = values["siteUrl"] == format!("http://{primary}");
            async move { ready.then_some(values) }
        },
    )
    .await;
    assert_eq!(
        values["domains"],
        json!([{ "name": other, "primary": false }, { "name": primary, "primary": true }])
    );
    // The platform host stays routed (an alias): the store's own route keeps it.
    assert_eq!(values["host"], format!("{id}.{BASE_DOMAIN}"));
    let route = Api::<DynamicObject>::namespaced_with(
        server.cluster.client.clone(),
        &id,
        &kube::discovery::ApiResource::from_gvk(&GroupVersionKind::gvk(
            "gateway.networking.k8s.io",
            "v1",
            "HTTPRoute",
        )),
    );
    // `helm get values` shows a release being upgraded; its objects follow a moment later.
    let both = json!([other, primary]);
    testkit::wait_for("the domains' route with both names", READY_TIMEOUT, || {
        let (route, name, both) = (route.clone(), format!("{id}-domains"), both.clone());
        async move {
            let own = route.get_opt(&name).await.ok().flatten()?;
            (own.data["spec"]["hostnames"] == both).then_some(())
        }
    })
    .await;
    let platform = route.get(&id).await.unwrap();
    assert_eq!(
        platform.data["spec"]["hostnames"],
        json!([format!("{id}.{BASE_DOMAIN}")])
    );

    // Primary off: WordPress's URL goes back to the platform host.
    let (status, _) = put(&server, None, &id, &primary, None).await;
    assert_eq!(status, StatusCode::OK);
    testkit::wait_for("siteUrl back on the platform host", READY_TIMEOUT, || {
        let out = server
            .cluster
            .helm()
            .args(["get", "values", &id, "-n", &id, "-o", "json"])
            .output()
            .unwrap();
        let values: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        let back = values["siteUrl"] == format!("http://{id}.{BASE_DOMAIN}");
        async move { back.then_some(()) }
    })
    .await;
    server.delete_leaving_nothing(&id).await;
    assert!(
        claims(&server).await.is_empty(),
        "a deleted store kept its domains"
    );
}

/// With TLS the state follows the domain's cert-manager Certificate, read by the domain controller:
/// pending while it has no Ready condition, Active once Ready, Failed when cert-manager gave up. No
/// cert-manager runs here, so the test writes the Certificate's status as cert-manager would.
#[tokio::test]
async fn with_tls_the_state_follows_the_certificate() {
    let server = Server::start(
        "domains-tls",
        Options {
            extra_args: vec![
                "--base-domain".into(),
                BASE_DOMAIN.into(),
                "--url-scheme".into(),
                "https".into(),
            ],
            extra_values: vec![
                "routing:\n  tls:\n    enabled: true\n    domainIssuer:\n      kind: ClusterIssuer\n      name: test-issuer\n"
                    .into(),
            ],
            ..Options::default()
        },
    )
    .await;
    apply_cert_manager_crds(&server.cluster.client).await;
    let tag = random_hex(6);
    let id = create_store(&server, None, "TLS").await;
    let domain = format!("tls-{tag}.example.com");
    assert_eq!(
        put(&server, None, &id, &domain, Some(json!({"primary": true})))
            .await
            .0,
        StatusCode::CREATED
    );
    let state = |want: &'static str| {
        let server = &server;
        let id = id.clone();
        move || {
            let id = id.clone();
            async move {
                let (_, body) = server.get_json(&format!("/stores/{id}/domains")).await;
                let d = body[0].clone();
                (d["state"] == want).then_some(d)
            }
        }
    };
    let pending = testkit::wait_for(
        "CertificatePending",
        READY_TIMEOUT,
        state("CertificatePending"),
    )
    .await;
    assert!(
        pending["message"].as_str().unwrap().contains("certificate"),
        "{pending}"
    );

    // The release made the Certificate the controller reads (same name as the chart's).
    let certificates = Api::<DynamicObject>::namespaced_with(
        server.cluster.client.clone(),
        &id,
        &kube::discovery::ApiResource::from_gvk(&GroupVersionKind::gvk(
            "cert-manager.io",
            "v1",
            "Certificate",
        )),
    );
    let name = storefleet::domains::controller::certificate_name(&domain);
    let cert = testkit::wait_for("the domain's Certificate", READY_TIMEOUT, || {
        let certificates = certificates.clone();
        let name = name.clone();
        async move { certificates.get_opt(&name).await.ok().flatten() }
    })
    .await;
    assert_eq!(cert.data["spec"]["dnsNames"], json!([domain]));
    let (_, store) = server.get_json(&format!("/stores/{id}")).await;
    let values: Value = serde_json::from_slice(
        &server
            .cluster
            .helm()
            .args(["get", "values", &id, "-n", &id, "-o", "json"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert_eq!(values["siteUrl"], format!("https://{domain}"), "{store}");

    let set_status = |status: Value| {
        let certificates = certificates.clone();
        let name = name.clone();
        async move {
            certificates
                .patch_status(
                    &name,
                    &PatchParams::default(),
                    &Patch::Merge(json!({ "status": status })),
                )
                .await
                .unwrap();
        }
    };
    set_status(json!({"conditions": [{"type": "Ready", "status": "True", "reason": "Ready", "message": "Certificate is up to date and has not expired"}]})).await;
    testkit::wait_for("Active", Duration::from_secs(60), state("Active")).await;
    set_status(json!({
        "lastFailureTime": "2026-01-01T00:00:00Z",
        "conditions": [{"type": "Ready", "status": "False", "reason": "Failed", "message": "rate limited by the ACME server"}],
    }))
    .await;
    let failed = testkit::wait_for("Failed", Duration::from_secs(60), state("Failed")).await;
    assert!(
        failed["message"].as_str().unwrap().contains("rate limited"),
        "{failed}"
    );
    // kubectl shows it too: the claim's status.
    let claim = Api::<DomainClaim>::all(server.cluster.client.clone())
        .get(&domain)
        .await
        .unwrap();
    assert_eq!(
        claim.state(),
        Some(storefleet::domains::DomainState::Failed)
    );
    server.delete_leaving_nothing(&id).await;
}

// --- the store chart ------------------------------------------------------------------------------

/// cert-manager's Certificate CRD (tests/cert-manager-crds.yaml), applied like `scripts/testcluster
/// up` does: the shared cluster may have been started before it existed. Idempotent.
async fn apply_cert_manager_crds(client: &kube::Client) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/cert-manager-crds.yaml");
    let yaml = std::fs::read_to_string(&path).unwrap();
    let crds = Api::<CustomResourceDefinition>::all(client.clone());
    for doc in serde_yaml::Deserializer::from_str(&yaml) {
        let crd = CustomResourceDefinition::deserialize(doc).unwrap();
        let name = crd.name_any();
        crds.patch(
            &name,
            &PatchParams::apply("storefleet-testcluster").force(),
            &Patch::Apply(&crd),
        )
        .await
        .unwrap();
        tokio::time::timeout(
            Duration::from_secs(60),
            await_condition(crds.clone(), &name, conditions::is_crd_established()),
        )
        .await
        .unwrap()
        .unwrap();
    }
}

fn render(
    cluster: &testkit::Cluster,
    release: &str,
    values: &[&str],
    extra: &[&str],
) -> Vec<Value> {
    let chart = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../charts/store");
    let mut cmd = cluster.helm();
    cmd.args(["template", release])
        .arg(&chart)
        .args(["--namespace", release]);
    for file in values {
        cmd.arg("-f").arg(chart.join(file));
    }
    cmd.args(extra);
    let yaml = testkit::run_ok(&mut cmd);
    serde_yaml::Deserializer::from_str(&yaml)
        .map(|doc| Value::deserialize(doc).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

/// The values the controller passes for two domains, the second primary.
fn domain_values(dir: &Path, a: &str, b: &str) -> String {
    let file = dir.join("domains.yaml");
    std::fs::write(
        &file,
        serde_yaml::to_string(
            &json!({ "domains": [{"name": a, "primary": false}, {"name": b, "primary": true}] }),
        )
        .unwrap(),
    )
    .unwrap();
    file.display().to_string()
}

#[tokio::test]
async fn domain_routes_and_certificates_are_accepted_by_the_api_server() {
    let cluster = testkit::cluster().await;
    apply_cert_manager_crds(&cluster.client).await;
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = ("shop.example.com", "xn--bcher-kva.de");
    let domains = domain_values(dir.path(), a, b);
    for (values, mode, tls) in [
        ("values-local.yaml", "gateway", false),
        ("values-prod.yaml", "gateway", true),
        ("values-prod.yaml", "ingress", true),
    ] {
        let ns = cluster.namespace("store-domains").await;
        let what = format!("{values}, {mode}");
        let mode_value = format!("routing.mode={mode}");
        let objects = render(
            &cluster,
            &ns.name,
            &[values],
            &["-f", &domains, "--set", &mode_value],
        );
        let of_kind =
            |kind: &str| -> Vec<&Value> { objects.iter().filter(|o| o["kind"] == kind).collect() };
        let certificates = of_kind("Certificate");
        if tls {
            // One per domain, named as the control plane reads it, from the platform's issuer.
            assert_eq!(certificates.len(), 2, "{what}");
            for (cert, domain) in certificates.iter().zip([a, b]) {
                let name = storefleet::domains::controller::certificate_name(domain);
                assert_eq!(cert["metadata"]["name"], name, "{what}");
                assert_eq!(cert["spec"]["dnsNames"], json!([domain]), "{what}");
                assert_eq!(cert["spec"]["secretName"], format!("{name}-tls"), "{what}");
                assert_eq!(
                    cert["spec"]["issuerRef"],
                    json!({"group": "cert-manager.io", "kind": "ClusterIssuer", "name": "letsencrypt-prod"}),
                    "{what}"
                );
            }
        } else {
            assert!(certificates.is_empty(), "{what}");
        }
        if mode == "gateway" {
            let sets = of_kind("ListenerSet");
            assert_eq!(sets.len(), 1, "{what}");
            let set = sets[0];
            let set_name = format!("{}-domains", ns.name);
            assert_eq!(set["metadata"]["name"], set_name);
            assert_eq!(
                set["spec"]["parentRef"],
                json!({"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "storefleet", "namespace": "storefleet"}),
                "{what}"
            );
            let listeners = set["spec"]["listeners"].as_array().unwrap();
            let hosts: Vec<(&str, &str)> = listeners
                .iter()
                .map(|l| {
                    (
                        l["protocol"].as_str().unwrap(),
                        l["hostname"].as_str().unwrap(),
                    )
                })
                .collect();
            if tls {
                assert_eq!(
                    hosts,
                    [("HTTP", a), ("HTTPS", a), ("HTTP", b), ("HTTPS", b)],
                    "{what}"
                );
                assert_eq!(
                    listeners[1]["tls"]["certificateRefs"][0]["name"],
                    format!(
                        "{}-tls",
                        storefleet::domains::controller::certificate_name(a)
                    )
                );
            } else {
                assert_eq!(hosts, [("HTTP", a), ("HTTP", b)], "{what}");
            }
            let routes = of_kind("HTTPRoute");
            let own = routes
                .iter()
                .find(|r| r["metadata"]["name"] == set_name)
                .expect("the domains' route");
            assert_eq!(own["spec"]["hostnames"], json!([a, b]), "{what}");
            let section = if tls { "https" } else { "http" };
            assert_eq!(
                own["spec"]["parentRefs"],
                json!([
                    {"group": "gateway.networking.k8s.io", "kind": "ListenerSet", "name": set_name, "sectionName": format!("{section}-0")},
                    {"group": "gateway.networking.k8s.io", "kind": "ListenerSet", "name": set_name, "sectionName": format!("{section}-1")},
                ]),
                "{what}"
            );
            assert_eq!(
                own["spec"]["rules"][0]["backendRefs"][0]["name"],
                format!("{}-wordpress", ns.name)
            );
            // The store's own host keeps its route.
            let platform = routes
                .iter()
                .find(|r| r["metadata"]["name"] == ns.name.as_str())
                .expect("the host's route");
            assert_eq!(platform["spec"]["hostnames"].as_array().unwrap().len(), 1);
            if tls {
                let redirect = routes
                    .iter()
                    .find(|r| r["metadata"]["name"] == format!("{set_name}-https-redirect"))
                    .expect("redirect");
                assert_eq!(redirect["spec"]["hostnames"], json!([a, b]));
            }
        } else {
            let ingress = of_kind("Ingress");
            let hosts: Vec<&str> = ingress[0]["spec"]["rules"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["host"].as_str().unwrap())
                .collect();
            assert_eq!(&hosts[1..], [a, b], "{what}");
            assert_eq!(
                ingress[0]["spec"]["tls"].as_array().unwrap().len(),
                3,
                "{what}"
            );
        }
        // Every object of the domains (and the rest) through the API server's validation.
        for object in objects.iter().filter(|o| {
            ["ListenerSet", "HTTPRoute", "Certificate", "Ingress"]
                .contains(&o["kind"].as_str().unwrap_or_default())
        }) {
            let what = format!("{} {} ({what})", object["kind"], object["metadata"]["name"]);
            let api_version = object["apiVersion"].as_str().unwrap();
            let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
            let gvk = GroupVersionKind::gvk(group, version, object["kind"].as_str().unwrap());
            let (resource, _) = kube::discovery::pinned_kind(&cluster.client, &gvk)
                .await
                .unwrap_or_else(|e| panic!("{what}: API server does not serve it: {e}"));
            let api =
                Api::<DynamicObject>::namespaced_with(cluster.client.clone(), &ns.name, &resource);
            let obj: DynamicObject = serde_json::from_value(object.clone()).unwrap();
            api.create(
                &PostParams {
                    dry_run: true,
                    field_manager: Some("domains-test".into()),
                },
                &obj,
            )
            .await
            .unwrap_or_else(|e| panic!("{what} rejected by the API server: {e}"));
        }
    }
}
