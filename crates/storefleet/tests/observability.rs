//! Observability (issue 8): `/metrics` after a real store lifecycle, request ids in headers, problem
//! bodies and logs, and JSON log lines that name their store.
mod support;

use std::collections::BTreeMap;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::{Options, READY_TIMEOUT, Server};

/// One sample of the exposition: metric name, labels, value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// The scrape, parsed strictly as Prometheus/OpenMetrics text: `# TYPE`/`# HELP`/`# UNIT` comments,
/// `# EOF`, and samples `name{label="value",...} value`. Anything else fails the test.
struct Exposition {
    types: BTreeMap<String, String>,
    samples: Vec<Sample>,
}

fn parse_exposition(text: &str) -> Exposition {
    let mut types = BTreeMap::new();
    let mut samples = Vec::new();
    let is_name = |s: &str| {
        !s.is_empty()
            && !s.starts_with(|c: char| c.is_ascii_digit())
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    };
    for line in text.lines() {
        if line == "# EOF" {
            continue;
        }
        if let Some(comment) = line.strip_prefix("# ") {
            let mut words = comment.splitn(3, ' ');
            let (kind, name, rest) = (words.next(), words.next(), words.next());
            assert!(
                matches!(kind, Some("TYPE" | "HELP" | "UNIT")) && name.is_some_and(is_name),
                "bad comment line: {line}"
            );
            if kind == Some("TYPE") {
                types.insert(
                    name.unwrap().to_owned(),
                    rest.unwrap_or_default().to_owned(),
                );
            }
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("bad sample line: {line}"));
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("bad value in: {line}")),
        };
        let (name, labels) = match series.split_once('{') {
            None => (series, BTreeMap::new()),
            Some((name, rest)) => {
                let body = rest
                    .strip_suffix('}')
                    .unwrap_or_else(|| panic!("unclosed labels: {line}"));
                (name, parse_labels(body, line))
            }
        };
        assert!(is_name(name), "bad metric name in: {line}");
        samples.push(Sample {
            name: name.to_owned(),
            labels,
            value,
        });
    }
    Exposition { types, samples }
}

/// `a="x",b="y\"z"`.
fn parse_labels(mut body: &str, line: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    while !body.is_empty() {
        let (key, rest) = body
            .split_once("=\"")
            .unwrap_or_else(|| panic!("bad label in: {line}"));
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c)) => value.push(c),
                    None => panic!("bad escape in: {line}"),
                },
                Some((i, '"')) => break i,
                Some((_, c)) => value.push(c),
                None => panic!("unterminated label value in: {line}"),
            }
        };
        labels.insert(key.to_owned(), value);
        body = rest[end + 1..]
            .strip_prefix(',')
            .unwrap_or(&rest[end + 1..]);
    }
    labels
}

impl Exposition {
    /// The value of the one sample `name` whose labels include `want`.
    fn value(&self, name: &str, want: &[(&str, &str)]) -> Option<f64> {
        let found: Vec<&Sample> = self
            .samples
            .iter()
            .filter(|s| {
                s.name == name
                    && want
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .collect();
        assert!(found.len() <= 1, "several {name} {want:?}: {found:?}");
        found.first().map(|s| s.value)
    }

    /// Every series of histogram `family`: buckets never decrease and `+Inf` equals `_count`.
    fn check_histogram(&self, family: &str) {
        assert_eq!(
            self.types.get(family).map(String::as_str),
            Some("histogram"),
            "{family}"
        );
        for count in self
            .samples
            .iter()
            .filter(|s| s.name == format!("{family}_count"))
        {
            let mut buckets: Vec<(f64, f64)> = self
                .samples
                .iter()
                .filter(|s| {
                    s.name == format!("{family}_bucket")
                        && count.labels.iter().all(|(k, v)| s.labels.get(k) == Some(v))
                })
                .map(|s| (s.labels["le"].parse::<f64>().unwrap(), s.value))
                .collect();
            buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
            assert!(
                buckets.len() > 3,
                "{family} {:?}: few buckets",
                count.labels
            );
            assert!(
                buckets.windows(2).all(|w| w[0].1 <= w[1].1),
                "{family} {:?}: buckets decrease: {buckets:?}",
                count.labels
            );
            assert_eq!(buckets.last().unwrap().0, f64::INFINITY);
            assert_eq!(buckets.last().unwrap().1, count.value, "{family}");
        }
    }
}

async fn scrape(server: &Server) -> (String, Exposition) {
    // Unauthenticated, like a Prometheus scraper.
    let r = server
        .http
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let text = r.text().await.unwrap();
    let parsed = parse_exposition(&text);
    (text, parsed)
}

fn log_lines(server: &Server) -> Vec<Value> {
    let log = server.log();
    log.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str::<Value>(l)
                .ok()
                .filter(Value::is_object)
                .unwrap_or_else(|| panic!("a log line that is not a JSON object: {l}"))
        })
        .collect()
}

#[tokio::test]
async fn metrics_and_logs_follow_a_store_from_request_to_gone() {
    let server = Server::start("obs", Options::default()).await;

    let r = server
        .create(json!({"engine": "woocommerce", "name": "Metrics"}))
        .await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let id = r.json::<Value>().await.unwrap()["store_id"]
        .as_str()
        .unwrap()
        .to_owned();
    server.wait_phase(&id, "Ready", READY_TIMEOUT).await;

    let (_, m) = scrape(&server).await;
    assert_eq!(
        m.value("storefleet_stores", &[("phase", "Ready")]),
        Some(1.0)
    );
    assert_eq!(m.types["storefleet_stores"], "gauge");
    // Stores by release: the new store on the platform's values, under the chart it was installed with.
    let chart = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../charts/store");
    let version = storefleet::metrics::chart_version(&chart);
    assert_eq!(m.types["storefleet_stores_by_release"], "gauge");
    assert_eq!(
        m.value(
            "storefleet_stores_by_release",
            &[
                ("chart_version", version.as_str()),
                ("target", "(platform)")
            ]
        ),
        Some(1.0)
    );

    let (status, _) = server.delete_store(&id).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    server.wait_gone(&id).await;

    let (text, m) = scrape(&server).await;
    // Stores by phase: every phase is listed; the store is gone.
    for phase in ["Provisioning", "Ready", "Failed", "Deleting", "Restoring"] {
        assert_eq!(
            m.value("storefleet_stores", &[("phase", phase)]),
            Some(0.0),
            "{phase}\n{text}"
        );
    }

    // No store, no series: the family does not keep a target at 0 for ever.
    assert!(
        !m.samples
            .iter()
            .any(|s| s.name == "storefleet_stores_by_release"),
        "{text}"
    );

    // Provisioning duration: observed once, when the store turned Ready.
    let family = "storefleet_store_provisioning_duration_seconds";
    m.check_histogram(family);
    assert_eq!(
        m.value(&format!("{family}_count"), &[]),
        Some(1.0),
        "{text}"
    );
    let sum = m.value(&format!("{family}_sum"), &[]).unwrap();
    assert!(
        sum > 0.0 && sum < READY_TIMEOUT.as_secs_f64() + 60.0,
        "{text}"
    );

    // Helm: the install succeeded, and every helm run the log shows was timed under its operation.
    // (Uninstall may not run: the garbage collector can delete the namespace first.)
    let family = "storefleet_helm_operation_duration_seconds";
    m.check_histogram(family);
    let helm = |op: &str, outcome: &str| {
        m.value(
            &format!("{family}_count"),
            &[("operation", op), ("outcome", outcome)],
        )
        .unwrap_or(0.0)
    };
    assert!(helm("install", "success") >= 1.0, "{text}");
    assert!(helm("status", "success") >= 1.0, "{text}");
    let lines = log_lines(&server);
    let runs = |verb: &str| {
        lines
            .iter()
            .filter(|l| {
                l["message"] == "running helm"
                    && l["store_id"] == id.as_str()
                    && l["args"].as_str().is_some_and(|a| a.starts_with(verb))
            })
            .count() as f64
    };
    let timed = |op: &str| helm(op, "success") + helm(op, "error");
    assert_eq!(
        timed("install") + timed("upgrade"),
        runs(r#"["upgrade", "--install""#),
        "{text}"
    );
    assert_eq!(timed("uninstall"), runs(r#"["uninstall""#), "{text}");
    assert_eq!(timed("status"), runs(r#"["list""#), "{text}");

    // Reconcile errors: a counter by reason, known reasons listed from the start.
    assert_eq!(
        m.types
            .get("storefleet_reconcile_errors")
            .map(String::as_str),
        Some("counter"),
        "{text}"
    );
    assert!(
        m.value("storefleet_reconcile_errors_total", &[("reason", "helm")])
            .is_some(),
        "{text}"
    );

    // HTTP: by route template, never by raw path.
    let requests = "storefleet_http_requests_total";
    assert_eq!(m.types["storefleet_http_requests"], "counter");
    assert_eq!(
        m.value(
            requests,
            &[("route", "/stores"), ("method", "POST"), ("status", "202")]
        ),
        Some(1.0),
        "{text}"
    );
    let gets = m
        .value(
            requests,
            &[
                ("route", "/stores/{store_id}"),
                ("method", "GET"),
                ("status", "200"),
            ],
        )
        .unwrap_or(0.0);
    assert!(gets >= 1.0, "{text}");
    assert_eq!(
        m.value(
            requests,
            &[
                ("route", "/stores/{store_id}"),
                ("method", "DELETE"),
                ("status", "202")
            ]
        ),
        Some(1.0),
        "{text}"
    );
    assert!(
        !text.contains(&id),
        "a raw store id in the metrics:\n{text}"
    );
    let family = "storefleet_http_request_duration_seconds";
    m.check_histogram(family);
    let timed = m
        .value(
            &format!("{family}_count"),
            &[("route", "/stores/{store_id}"), ("method", "GET")],
        )
        .unwrap();
    // The duration histogram saw every GET of the store (including the 404 after it was gone).
    let all_gets: f64 = m
        .samples
        .iter()
        .filter(|s| {
            s.name == requests
                && s.labels["route"] == "/stores/{store_id}"
                && s.labels["method"] == "GET"
        })
        .map(|s| s.value)
        .sum();
    assert_eq!(timed, all_gets, "{text}");

    // Logs: every line is JSON; every line that mentions the store carries its id as a field.
    let about_store: Vec<&Value> = lines
        .iter()
        .filter(|l| l.to_string().contains(&id))
        .collect();
    assert!(about_store.len() >= 5, "few lines about {id}");
    for line in &about_store {
        assert_eq!(
            line["store_id"],
            id.as_str(),
            "a line about {id} without store_id: {line}"
        );
    }
    for message in ["namespace created", "store is ready"] {
        assert!(
            about_store.iter().any(|l| l["message"] == message),
            "no `{message}` line for {id}"
        );
    }
}

#[tokio::test]
async fn request_ids_reach_headers_problem_bodies_and_logs() {
    let server = Server::start("reqid", Options::default()).await;
    let header_of = |r: &reqwest::Response| {
        r.headers()
            .get("x-request-id")
            .map(|v| v.to_str().unwrap().to_owned())
    };

    // No incoming id: a fresh UUID, in the header and in the problem body.
    let r = server
        .req(Method::GET, "/stores/store-000000")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let made = header_of(&r).expect("x-request-id on a problem answer");
    assert!(uuid::Uuid::parse_str(&made).is_ok(), "{made}");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["request_id"], made.as_str(), "{body}");
    assert_eq!(body["store_id"], "store-000000", "{body}");

    // A sane incoming id is kept: echoed in the header and the body of a 401 made by the auth layer.
    let r = server
        .http
        .get(server.url("/stores"))
        .header("x-request-id", "obs-test:42.a_b")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(header_of(&r).as_deref(), Some("obs-test:42.a_b"));
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["request_id"], "obs-test:42.a_b", "{body}");

    // Also on success answers, and on a route that does not exist.
    let r = server
        .req(Method::GET, "/stores")
        .header("x-request-id", "obs-list-1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(header_of(&r).as_deref(), Some("obs-list-1"));
    let r = server.req(Method::GET, "/nowhere").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let made_404 = header_of(&r).unwrap();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["request_id"], made_404.as_str());

    // An insane incoming id (too long, or characters that do not belong in logs) is replaced.
    for insane in ["has spaces in it", &"x".repeat(129), "a\"b", "<script>"] {
        let r = server
            .req(Method::GET, "/stores/store-000000")
            .header("x-request-id", insane)
            .send()
            .await
            .unwrap();
        let got = header_of(&r).unwrap();
        assert!(uuid::Uuid::parse_str(&got).is_ok(), "{insane:?} -> {got:?}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["request_id"], got.as_str());
    }

    // The 404 of an unknown route is counted as `unmatched`, not by its raw path.
    let (text, m) = scrape(&server).await;
    assert!(!text.contains("/nowhere"), "{text}");
    assert!(
        m.value(
            "storefleet_http_requests_total",
            &[("route", "unmatched"), ("method", "GET"), ("status", "404")]
        )
        .is_some_and(|n| n >= 1.0),
        "{text}"
    );

    // Logs: every line is JSON; every HTTP line carries a request id, and our ids are there.
    let lines = log_lines(&server);
    let http: Vec<&Value> = lines
        .iter()
        .filter(|l| {
            l["target"]
                .as_str()
                .is_some_and(|t| t.starts_with("tower_http"))
        })
        .collect();
    assert!(!http.is_empty(), "no HTTP log lines");
    for line in &http {
        assert!(
            line["request_id"].as_str().is_some_and(|s| !s.is_empty()),
            "an HTTP log line without request_id: {line}"
        );
    }
    for id in [
        made.as_str(),
        "obs-test:42.a_b",
        "obs-list-1",
        made_404.as_str(),
    ] {
        let line = http
            .iter()
            .find(|l| l["request_id"] == id)
            .unwrap_or_else(|| panic!("no HTTP log line with request_id {id}"));
        assert!(line["route"].is_string(), "{line}");
    }
    let line = http
        .iter()
        .find(|l| l["request_id"] == made.as_str())
        .unwrap();
    assert_eq!(line["store_id"], "store-000000", "{line}");
}
