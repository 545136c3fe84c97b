//! Hostile input against the real `storefleet serve`: shell metacharacters, path traversal, unicode
//! tricks, malformed and oversized bodies, header injection. Every request goes out as raw bytes over
//! TCP, so nothing is tidied up on the way (reqwest would resolve `..`, refuse CR in a header and
//! always send a well-formed body). Refused requests get a 4xx, never a 5xx, and leave nothing in the
//! cluster; text that is fine as a display name is kept verbatim and never reaches a shell.
mod support;

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{Options, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Rate limits off: these tests send a hundred refused requests in a second and assert each status.
fn unlimited() -> Vec<String> {
    [
        "--rate-limit-reads",
        "0",
        "--rate-limit-writes",
        "0",
        "--auth-failures-per-minute",
        "0",
    ]
    .map(String::from)
    .to_vec()
}

/// One request, byte for byte as it goes on the wire.
#[derive(Clone)]
struct Raw {
    method: Vec<u8>,
    target: Vec<u8>,
    headers: Vec<(Vec<u8>, Vec<u8>)>,
    body: Option<Vec<u8>>,
    /// Sent as `Transfer-Encoding: chunked`, one chunk per element.
    chunks: Option<Vec<Vec<u8>>>,
    /// Write no `Host` header (unless one is in `headers`).
    no_host: bool,
    /// Headers and body exactly as given: no `Content-Length` or chunk framing added.
    verbatim_body: bool,
}

impl Raw {
    fn new(method: impl AsRef<[u8]>, target: impl AsRef<[u8]>) -> Self {
        Self {
            method: method.as_ref().to_vec(),
            target: target.as_ref().to_vec(),
            headers: Vec::new(),
            body: None,
            chunks: None,
            no_host: false,
            verbatim_body: false,
        }
    }

    fn header(mut self, name: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Self {
        self.headers
            .push((name.as_ref().to_vec(), value.as_ref().to_vec()));
        self
    }

    fn body(mut self, body: impl AsRef<[u8]>) -> Self {
        self.body = Some(body.as_ref().to_vec());
        self
    }

    fn json(self, body: impl AsRef<[u8]>) -> Self {
        self.header("Content-Type", "application/json").body(body)
    }

    fn chunked(mut self, chunks: &[&[u8]]) -> Self {
        self.chunks = Some(chunks.iter().map(|c| c.to_vec()).collect());
        self
    }

    /// The body follows the headers as is; the caller wrote the framing headers.
    fn verbatim(mut self, body: impl AsRef<[u8]>) -> Self {
        self.body = Some(body.as_ref().to_vec());
        self.verbatim_body = true;
        self
    }

    fn without_host(mut self) -> Self {
        self.no_host = true;
        self
    }

    fn has_header(&self, name: &str) -> bool {
        self.headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
    }

    fn wire(&self, authority: &str) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&self.method);
        out.push(b' ');
        out.extend_from_slice(&self.target);
        out.extend_from_slice(b" HTTP/1.1\r\n");
        if !self.no_host && !self.has_header("host") {
            out.extend_from_slice(format!("Host: {authority}\r\n").as_bytes());
        }
        out.extend_from_slice(b"Connection: close\r\n");
        for (name, value) in &self.headers {
            out.extend_from_slice(name);
            out.extend_from_slice(b": ");
            out.extend_from_slice(value);
            out.extend_from_slice(b"\r\n");
        }
        if let Some(chunks) = &self.chunks {
            out.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
            for chunk in chunks {
                out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                out.extend_from_slice(chunk);
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(b"0\r\n\r\n");
            return out;
        }
        match &self.body {
            Some(body) if self.verbatim_body => {
                out.extend_from_slice(b"\r\n");
                out.extend_from_slice(body);
            }
            Some(body) => {
                out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
                out.extend_from_slice(body);
            }
            None => out.extend_from_slice(b"\r\n"),
        }
        out
    }
}

/// A response as read off the socket.
struct Answer {
    status: u16,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

/// Sends `wire` on a fresh connection, half-closes it and reads the whole answer (`Connection: close`).
async fn exchange(authority: &str, wire: &[u8]) -> Answer {
    let read = async {
        let mut socket = TcpStream::connect(authority).await.expect("connect");
        // The server may answer (and close) before it read everything, e.g. a 413 on a huge body.
        // No half-close after writing: hyper takes it for a client that left, and answers nothing.
        let _ = socket.write_all(wire).await;
        let mut bytes = Vec::new();
        let _ = socket.read_to_end(&mut bytes).await;
        bytes
    };
    let bytes = tokio::time::timeout(Duration::from_secs(60), read)
        .await
        .expect("no answer within 60 s");
    parse_answer(&bytes)
}

fn parse_answer(bytes: &[u8]) -> Answer {
    let text = String::from_utf8_lossy(bytes);
    let end = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no complete HTTP answer: {text:?}"));
    let head = &bytes[..end];
    let mut lines = head
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let status_line = String::from_utf8_lossy(lines.next().unwrap()).into_owned();
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers: Vec<(String, Vec<u8>)> = lines
        .filter_map(|line| {
            let colon = line.iter().position(|&b| b == b':')?;
            let name = String::from_utf8_lossy(&line[..colon]).trim().to_owned();
            Some((name, line[colon + 1..].trim_ascii().to_vec()))
        })
        .collect();
    let mut answer = Answer {
        status,
        headers,
        body: bytes[end + 4..].to_vec(),
    };
    if answer
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case(b"chunked"))
    {
        answer.body = dechunk(&answer.body);
    }
    answer
}

fn dechunk(mut rest: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    while let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") {
        let size = String::from_utf8_lossy(&rest[..eol]);
        let size = usize::from_str_radix(size.split(';').next().unwrap().trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        rest = &rest[eol + 2..];
        body.extend_from_slice(&rest[..size.min(rest.len())]);
        rest = &rest[(size + 2).min(rest.len())..];
    }
    body
}

/// Who is expected to answer.
#[derive(Clone, Copy, Debug)]
enum By {
    /// The application: `application/problem+json` of this type, with the request id.
    Problem(&'static str),
    /// hyper, before any handler ran: it cannot parse the request (no body, no request id).
    Hyper,
}

struct Case {
    what: String,
    request: Raw,
    status: u16,
    by: By,
}

/// A request id the server may echo: what `telemetry::drop_insane_request_id` keeps.
fn sane_request_id(v: &[u8]) -> bool {
    (1..=128).contains(&v.len())
        && v.iter()
            .all(|c| c.is_ascii_alphanumeric() || b"._:-".contains(c))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// Sends every case; answers every failed expectation at once.
async fn run(server: &Server, cases: Vec<Case>) {
    let authority = server.base.trim_start_matches("http://").to_owned();
    let mut failures = Vec::new();
    for case in &cases {
        let answer = exchange(&authority, &case.request.wire(&authority)).await;
        if let Err(why) = check(server, case, &answer) {
            failures.push(format!(
                "{}: {why}\n    answered {} {:?} {}",
                case.what,
                answer.status,
                answer
                    .header("content-type")
                    .map(String::from_utf8_lossy)
                    .unwrap_or_default(),
                String::from_utf8_lossy(&answer.body[..answer.body.len().min(300)])
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} hostile requests were answered wrongly:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

fn check(server: &Server, case: &Case, answer: &Answer) -> Result<(), String> {
    if !(400..500).contains(&answer.status) {
        return Err("not a 4xx".into());
    }
    if answer.status != case.status {
        return Err(format!("expected {}", case.status));
    }
    // Nothing the client injected comes back as a header, and no secret comes back at all.
    if answer.header("x-injected").is_some() {
        return Err("a header was injected into the answer".into());
    }
    let token = server.token.as_bytes();
    if contains(&answer.body, token) || answer.headers.iter().any(|(_, v)| contains(v, token)) {
        return Err("the answer contains the admin token".into());
    }
    let echoed = answer.header("x-request-id");
    if let Some(id) = echoed {
        if !sane_request_id(id) {
            return Err(format!("answered an insane x-request-id {id:?}"));
        }
        let sent = case
            .request
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(b"x-request-id"));
        if sent.clone().count() > 1 && sent.clone().any(|(_, v)| v == id) {
            return Err("echoed one of two x-request-id headers".into());
        }
    }
    match case.by {
        By::Hyper => {
            if echoed.is_some() || !answer.body.is_empty() {
                return Err("expected hyper's bare answer, got one from the application".into());
            }
        }
        By::Problem(slug) => {
            if answer.header("content-type") != Some(b"application/problem+json") {
                return Err("not application/problem+json".into());
            }
            let body: Value =
                serde_json::from_slice(&answer.body).map_err(|e| format!("body not JSON: {e}"))?;
            if body["type"] != format!("https://storefleet.dev/problems/{slug}") {
                return Err(format!("expected problem type {slug}"));
            }
            if body["status"] != answer.status {
                return Err("problem status differs from the HTTP status".into());
            }
            let id = echoed.ok_or("no x-request-id")?;
            if body["request_id"].as_str().map(str::as_bytes) != Some(id) {
                return Err("problem request_id differs from x-request-id".into());
            }
        }
    }
    Ok(())
}

fn case(what: impl Into<String>, request: Raw, status: u16, by: By) -> Case {
    Case {
        what: what.into(),
        request,
        status,
        by,
    }
}

const NOT_FOUND: By = By::Problem("not-found");
const BAD_REQUEST: By = By::Problem("bad-request");
const INVALID_JSON: By = By::Problem("invalid-json");
const INVALID: By = By::Problem("invalid-request");
const UNAUTHORIZED: By = By::Problem("unauthorized");

/// Store ids as they appear in a request target (already percent-encoded where needed).
fn hostile_ids() -> Vec<(&'static str, String)> {
    vec![
        ("encoded traversal", "..%2F..%2Fetc%2Fpasswd".into()),
        (
            "dot-encoded traversal",
            "%2e%2e%2f%2e%2e%2fetc%2fpasswd".into(),
        ),
        (
            "double-encoded traversal",
            "%252e%252e%252fetc%252fpasswd".into(),
        ),
        ("semicolon command", "store-7016ff;rm%20-rf%20%2F".into()),
        ("command substitution", "$(id)".into()),
        ("backticks", "%60id%60".into()),
        ("pipe", "store-7016ff%7Cid".into()),
        ("and-and", "store-7016ff&&id".into()),
        ("NUL", "store-7016ff%00".into()),
        ("CR LF", "store-7016ff%0d%0aX-Injected:%20yes".into()),
        ("very long id", "a".repeat(8000)),
        ("uppercase", "store-7016FF".into()),
        ("RTL override", "store-7016ff%E2%80%AE".into()),
        ("zero-width joiner", "store%E2%80%8D-7016ff".into()),
        ("Cyrillic homoglyph", "%D1%95tore-7016ff".into()),
        (
            "fullwidth digits",
            "store-%EF%BC%97%EF%BC%90%EF%BC%91%EF%BC%96ff".into(),
        ),
        ("emoji", "store-%F0%9F%9B%92".into()),
        ("combining mark", "store-7016ff%CC%81".into()),
        ("NFD e-acute", "store-7016fe%CC%81".into()),
    ]
}

#[tokio::test]
async fn hostile_requests_get_a_4xx_and_create_nothing() {
    let server = Server::start(
        "hostile",
        Options {
            max_stores: 2,
            extra_args: unlimited(),
            ..Options::default()
        },
    )
    .await;
    assert!(server.cluster_stores().await.is_empty());
    assert!(server.cluster_namespaces().await.is_empty());
    let token = server.token.clone();
    let bearer = format!("Bearer {token}");
    let with_token =
        |method: &str, target: &str| Raw::new(method, target).header("Authorization", &bearer);
    // A body that would create a store: whatever else is wrong must be what refuses it.
    let good = json!({"name": "Should Not Exist"}).to_string();
    let post = |body: &str| with_token("POST", "/stores").json(body);
    let mut cases = Vec::new();

    // Store ids and paths.
    for (what, id) in hostile_ids() {
        for method in ["GET", "DELETE"] {
            cases.push(case(
                format!("{method} /stores/{{{what}}}"),
                with_token(method, &format!("/stores/{id}")),
                404,
                NOT_FOUND,
            ));
        }
        cases.push(case(
            format!("GET credentials of {what}"),
            with_token("GET", &format!("/stores/{id}/credentials")),
            404,
            NOT_FOUND,
        ));
        cases.push(case(
            format!("GET health of {what}"),
            with_token("GET", &format!("/stores/{id}/health")),
            404,
            NOT_FOUND,
        ));
    }
    for (what, target) in [
        ("literal traversal (no route)", "/stores/../../etc/passwd"),
        (
            "traversal after an id (not normalised to /audit)",
            "/stores/store-7016ff/../../audit",
        ),
        ("double slash", "/stores//store-7016ff"),
        // The URI parser takes raw UTF-8 (it is not valid HTTP, but harmless): the id is refused.
        ("raw UTF-8 in the path", "/stores/ѕtore-7016ff"),
    ] {
        cases.push(case(what, with_token("GET", target), 404, NOT_FOUND));
    }
    cases.push(case(
        "invalid UTF-8 in a percent-encoded id",
        with_token("GET", "/stores/store-%FF%FE"),
        400,
        BAD_REQUEST,
    ));
    for (what, target) in [
        (
            "raw spaces in the path",
            &b"/stores/store-7016ff;rm -rf /"[..],
        ),
        ("raw backticks in the path", b"/stores/`id`"),
        ("raw NUL in the path", b"/stores/store-7016ff\0"),
    ] {
        cases.push(case(
            what,
            Raw::new("GET", target).header("Authorization", &bearer),
            400,
            By::Hyper,
        ));
    }

    // Query strings.
    for (what, target, status, by) in [
        ("wait=maybe", "/stores?wait=maybe", 400, BAD_REQUEST),
        ("wait=1", "/stores?wait=1", 400, BAD_REQUEST),
        (
            "wait twice",
            "/stores?wait=true&wait=false",
            400,
            BAD_REQUEST,
        ),
    ] {
        cases.push(case(
            what,
            with_token("POST", target).json(&good),
            status,
            by,
        ));
    }
    for query in [
        "limit=-1",
        "limit=0",
        "limit=1001",
        "limit=99999999999999999999",
        "limit=1e3",
        "limit=%00",
        "limit=1&limit=2",
        "store_id=..%2F..%2Fetc%2Fpasswd",
        "store_id=$(id)",
        "store_id=store-7016ff%E2%80%AE",
    ] {
        cases.push(case(
            format!("GET /audit?{query}"),
            with_token("GET", &format!("/audit?{query}")),
            400,
            BAD_REQUEST,
        ));
    }

    // Malformed and hostile bodies.
    let deep_array = format!("{{\"name\": {}{}}}", "[".repeat(10_000), "]".repeat(10_000));
    let deep_object = format!("{}\"x\"{}", "{\"name\": ".repeat(5_000), "}".repeat(5_000));
    for (what, body, status, by) in [
        (
            "truncated JSON",
            r#"{"name": "#.to_owned(),
            400,
            INVALID_JSON,
        ),
        (
            "two JSON documents",
            r#"{"name": "a"} {"name": "b"}"#.into(),
            400,
            INVALID_JSON,
        ),
        ("deeply nested arrays", deep_array, 400, INVALID_JSON),
        ("deeply nested objects", deep_object, 400, INVALID_JSON),
        (
            "number out of range",
            r#"{"name": 1e999999}"#.into(),
            400,
            INVALID_JSON,
        ),
        (
            "lone surrogate",
            r#"{"name": "\ud800"}"#.into(),
            400,
            INVALID_JSON,
        ),
        ("null", "null".into(), 422, INVALID),
        ("a string", r#""Shop""#.into(), 422, INVALID),
        (
            "an array of one object",
            r#"[{"name": "Shop"}]"#.into(),
            422,
            INVALID,
        ),
        ("name is a number", r#"{"name": 5}"#.into(), 422, INVALID),
        (
            "name is a huge number",
            r#"{"name": 99999999999999999999999999}"#.into(),
            422,
            INVALID,
        ),
        (
            "name is an array",
            r#"{"name": ["Shop"]}"#.into(),
            422,
            INVALID,
        ),
        (
            "name is an operator object",
            r#"{"name": {"$gt": ""}}"#.into(),
            422,
            INVALID,
        ),
        ("name is true", r#"{"name": true}"#.into(), 422, INVALID),
        (
            "engine is a number",
            r#"{"engine": 1}"#.into(),
            422,
            INVALID,
        ),
        (
            "duplicate keys",
            r#"{"name": "Shop A", "name": "Shop B"}"#.into(),
            422,
            INVALID,
        ),
        (
            "an owner smuggled in",
            r#"{"name": "Shop", "owner": "someone-else"}"#.into(),
            422,
            INVALID,
        ),
        (
            "__proto__",
            r#"{"name": "Shop", "__proto__": {"admin": true}}"#.into(),
            422,
            INVALID,
        ),
    ] {
        cases.push(case(what, post(&body), status, by));
    }
    for (what, body) in [
        (
            "invalid UTF-8 in a string",
            &b"{\"name\": \"\xff\xfe\"}"[..],
        ),
        (
            "a UTF-8 byte order mark",
            b"\xef\xbb\xbf{\"name\": \"Shop\"}",
        ),
        (
            "raw control character in a string",
            b"{\"name\": \"a\x01b\"}",
        ),
    ] {
        cases.push(case(
            what,
            with_token("POST", "/stores").json(body),
            400,
            INVALID_JSON,
        ));
    }
    // Display names that must be refused: invisible control or reordering characters.
    for (what, name) in [
        ("NUL", "Shop\u{0}".to_owned()),
        ("ANSI escape", "\u{1b}[31mShop\u{1b}[0m".into()),
        ("DEL", "Shop\u{7f}".into()),
        // (At either end it would be trimmed: NEL is white space.)
        ("C1 NEL", "Sh\u{85}op".into()),
        ("CR LF", "Shop\r\nX-Injected: yes".into()),
        ("RTL override (Trojan Source)", "Shop\u{202E}gnp.exe".into()),
        ("LTR override", "\u{202D}Shop".into()),
        ("RTL isolate", "Shop \u{2067}x\u{2069}".into()),
        ("RTL embedding", "\u{202B}Shop\u{202C}".into()),
        ("65 emoji", "🛒".repeat(65)),
        ("empty", String::new()),
        ("only unicode spaces", "\u{3000}\u{a0} ".into()),
    ] {
        cases.push(case(
            format!("name with {what}"),
            post(&json!({"name": name}).to_string()),
            422,
            INVALID,
        ));
    }
    for engine in [
        "WooCommerce",
        "woocommerce ",
        "woocommerce\u{0}",
        "../woocommerce",
        "$(id)",
    ] {
        cases.push(case(
            format!("engine {engine:?}"),
            post(&json!({"engine": engine}).to_string()),
            422,
            INVALID,
        ));
    }

    // Content types and framing.
    let unsupported = By::Problem("unsupported-media-type");
    for (what, content_type) in [
        ("text/plain", &b"text/plain"[..]),
        ("a form", b"application/x-www-form-urlencoded"),
        ("multipart", b"multipart/form-data; boundary=x"),
        ("application/jsonp", b"application/jsonp"),
        (
            "non-ASCII content type",
            "application/json; charset=ütf-8".as_bytes(),
        ),
    ] {
        cases.push(case(
            format!("Content-Type {what}"),
            with_token("POST", "/stores")
                .header("Content-Type", content_type)
                .body(&good),
            415,
            unsupported,
        ));
    }
    cases.push(case(
        "no Content-Type",
        with_token("POST", "/stores").body(&good),
        415,
        unsupported,
    ));
    let utf16: Vec<u8> = good.encode_utf16().flat_map(u16::to_le_bytes).collect();
    cases.push(case(
        "UTF-16 JSON",
        with_token("POST", "/stores")
            .header("Content-Type", "application/json; charset=utf-16")
            .body(utf16),
        400,
        INVALID_JSON,
    ));
    let too_large = By::Problem("payload-too-large");
    let big = json!({"name": "x".repeat(70_000)}).to_string();
    cases.push(case("a body over 64 KiB", post(&big), 413, too_large));
    cases.push(case(
        "a chunked body over 64 KiB",
        with_token("POST", "/stores")
            .header("Content-Type", "application/json")
            .chunked(&[&[b' '; 40_000], &[b' '; 40_000], good.as_bytes()]),
        413,
        too_large,
    ));
    cases.push(case(
        "Content-Length of 10 GB (body never sent)",
        with_token("POST", "/stores")
            .header("Content-Type", "application/json")
            .header("Content-Length", "10000000000")
            .verbatim(&good),
        413,
        too_large,
    ));
    cases.push(case(
        "a chunked body of broken JSON",
        with_token("POST", "/stores")
            .header("Content-Type", "application/json")
            .chunked(&[b"{\"na", b"me\": "]),
        400,
        INVALID_JSON,
    ));
    cases.push(case(
        "a malformed chunk size",
        with_token("POST", "/stores")
            .header("Content-Type", "application/json")
            .header("Transfer-Encoding", "chunked")
            .verbatim(format!("zz\r\n{good}\r\n0\r\n\r\n")),
        400,
        BAD_REQUEST,
    ));
    cases.push(case(
        "two different Content-Lengths",
        with_token("POST", "/stores")
            .header("Content-Type", "application/json")
            .header("Content-Length", good.len().to_string())
            .header("Content-Length", "3")
            .verbatim(&good),
        400,
        By::Hyper,
    ));
    cases.push(case(
        "a negative Content-Length",
        with_token("POST", "/stores")
            .header("Content-Type", "application/json")
            .header("Content-Length", "-1")
            .verbatim(&good),
        400,
        By::Hyper,
    ));
    // Request smuggling: hyper lets Transfer-Encoding win (RFC 9112) and closes the connection
    // after; whichever framing won, this body is not valid JSON.
    cases.push(case(
        "Content-Length and Transfer-Encoding together",
        with_token("POST", "/stores")
            .header("Content-Type", "application/json")
            .header("Content-Length", "4")
            .header("Transfer-Encoding", "chunked")
            .verbatim("5\r\n{\"a\":\r\n0\r\n\r\n"),
        400,
        INVALID_JSON,
    ));

    // Idempotency-Key.
    for (what, key) in [
        ("of 10 KB", "k".repeat(10_000).into_bytes()),
        ("with non-ASCII", "clé-1".as_bytes().to_vec()),
        ("with a tab", b"key\tone".to_vec()),
        ("with a space", b"key one".to_vec()),
    ] {
        cases.push(case(
            format!("Idempotency-Key {what}"),
            post(&good).header("Idempotency-Key", key),
            400,
            BAD_REQUEST,
        ));
    }
    for (what, key) in [
        ("with a bare CR", &b"key\rX-Injected: yes"[..]),
        ("with NUL", b"key\0one"),
        ("folded onto a second line", b"key\r\n one"),
    ] {
        cases.push(case(
            format!("Idempotency-Key {what}"),
            post(&good).header("Idempotency-Key", key),
            400,
            By::Hyper,
        ));
    }

    // Authorization variants that must not authenticate (the body would create a store).
    let anonymous_post = || Raw::new("POST", "/stores").json(&good);
    for (what, value) in [
        ("two tokens", format!("Bearer {token} {token}").into_bytes()),
        (
            "a comma-separated pair",
            format!("Bearer {token},Bearer {token}").into_bytes(),
        ),
        (
            "a tab instead of a space",
            format!("Bearer\t{token}").into_bytes(),
        ),
        ("the scheme only", b"Bearer".to_vec()),
        ("the scheme and a space", b"Bearer ".to_vec()),
        ("the token without a scheme", token.clone().into_bytes()),
        (
            "Basic with the token",
            format!("Basic {token}").into_bytes(),
        ),
        ("non-ASCII", "Bearer tökén".as_bytes().to_vec()),
        (
            "a token of 10 KB",
            format!("Bearer {}", "t".repeat(10_000)).into_bytes(),
        ),
        (
            "the token with a suffix",
            format!("Bearer {token}\u{202E}").into_bytes(),
        ),
    ] {
        cases.push(case(
            format!("Authorization {what}"),
            anonymous_post().header("Authorization", value),
            401,
            UNAUTHORIZED,
        ));
    }
    cases.push(case(
        "two Authorization headers, the first wrong",
        anonymous_post()
            .header("Authorization", "Bearer wrong")
            .header("Authorization", &bearer),
        401,
        UNAUTHORIZED,
    ));
    cases.push(case(
        "two Authorization headers, the first valid",
        anonymous_post()
            .header("Authorization", &bearer)
            .header("Authorization", "Bearer wrong"),
        401,
        UNAUTHORIZED,
    ));
    for (what, value) in [
        ("with NUL", format!("Bearer {token}\0").into_bytes()),
        (
            "with a bare CR",
            format!("Bearer {token}\rX-Injected: yes").into_bytes(),
        ),
    ] {
        cases.push(case(
            format!("Authorization {what}"),
            anonymous_post().header("Authorization", value),
            400,
            By::Hyper,
        ));
    }

    // X-Request-Id: only a sane one is echoed (`check` asserts that on every answer).
    let lookup = || with_token("GET", "/stores/store-000000");
    for (what, value) in [
        ("of 10 KB", "r".repeat(10_000).into_bytes()),
        ("with non-ASCII", "réq-1".as_bytes().to_vec()),
        ("with markup", b"<script>alert(1)</script>".to_vec()),
        ("with a space", b"req one".to_vec()),
        ("with a quote", b"req\"one".to_vec()),
    ] {
        let answer_case = case(
            format!("X-Request-Id {what}"),
            lookup().header("X-Request-Id", &value),
            404,
            NOT_FOUND,
        );
        cases.push(answer_case);
    }
    cases.push(case(
        "two X-Request-Id headers",
        lookup()
            .header("X-Request-Id", "first-id")
            .header("X-Request-Id", "second-id"),
        404,
        NOT_FOUND,
    ));
    cases.push(case(
        "X-Request-Id with a bare CR",
        lookup().header("X-Request-Id", "id\rX-Injected: yes"),
        400,
        By::Hyper,
    ));

    // Host header tricks: routing and answers do not depend on it.
    for (what, request) in [
        ("a foreign Host", lookup().header("Host", "evil.example")),
        (
            "a Host with a path",
            lookup().header("Host", "127.0.0.1/../../etc"),
        ),
        ("no Host", lookup().without_host()),
        (
            "two Host headers",
            lookup()
                .header("Host", "a.example")
                .header("Host", "b.example"),
        ),
        (
            "an absolute URI naming another host",
            with_token("GET", "http://evil.example/stores/store-000000"),
        ),
    ] {
        cases.push(case(what, request, 404, NOT_FOUND));
    }
    // Methods.
    let not_allowed = By::Problem("method-not-allowed");
    cases.push(case(
        "TRACE /stores",
        with_token("TRACE", "/stores"),
        405,
        not_allowed,
    ));
    cases.push(case(
        "PUT /stores",
        with_token("PUT", "/stores").json(&good),
        405,
        not_allowed,
    ));
    cases.push(case(
        "an invented method",
        with_token("FROBNICATE", "/stores"),
        405,
        not_allowed,
    ));
    cases.push(case(
        "a method with NUL",
        with_token("GE\0T", "/stores"),
        400,
        By::Hyper,
    ));

    let count = cases.len();
    run(&server, cases).await;

    // Nothing reached the cluster, and the server still serves.
    assert!(
        server.cluster_stores().await.is_empty(),
        "a refused request created a Store"
    );
    assert!(
        server.cluster_namespaces().await.is_empty(),
        "a refused request created a namespace"
    );
    let (status, list) = server.get_json("/stores").await;
    assert_eq!((status, list), (StatusCode::OK, json!([])));
    server.assert_healthy().await;
    let log = server.log();
    assert!(
        !log.contains(&token),
        "the admin token is in the server log"
    );
    eprintln!("{count} hostile requests refused");
}

#[tokio::test]
async fn odd_but_harmless_input_is_accepted_verbatim_and_never_runs() {
    let server = Server::start(
        "harmless",
        Options {
            max_stores: 10,
            extra_args: unlimited(),
            ..Options::default()
        },
    )
    .await;
    let authority = server.base.trim_start_matches("http://").to_owned();
    let token = server.token.clone();

    // Authorization that RFC 9110 allows: the scheme is case-insensitive, spaces may repeat.
    for value in [
        format!("bearer {token}"),
        format!("BEARER {token}"),
        format!("Bearer   {token}"),
    ] {
        let r = Raw::new("GET", "/stores").header("Authorization", &value);
        let answer = exchange(&authority, &r.wire(&authority)).await;
        assert_eq!(answer.status, 200, "{:?}", value.replace(&token, "<token>"));
    }

    // Display names are text: shell syntax, markup and unicode are kept as sent and never executed.
    let marker = format!("/tmp/sf-pwned-{}", std::process::id());
    let names = [
        format!("$(touch {marker})"),
        format!("`touch {marker}-b`; rm -rf / | cat && echo"),
        "{{ .Release.Name }} ' \" ../../etc/passwd %00 %s".to_owned(),
        "<script>alert(1)</script>".to_owned(),
        "Café 🛒 👩‍👩‍👧 ѕtore ７".to_owned(),
        // The same "Café", decomposed: names are not normalised, so it is another name.
        "Cafe\u{301}".to_owned(),
        "שלום Shop ١٢٣".to_owned(),
    ];
    let mut ids = Vec::new();
    for name in &names {
        let r = Raw::new("POST", "/stores")
            .header("Authorization", format!("Bearer {token}"))
            .json(json!({"name": name}).to_string());
        let answer = exchange(&authority, &r.wire(&authority)).await;
        assert_eq!(
            answer.status,
            202,
            "{name:?}: {}",
            String::from_utf8_lossy(&answer.body)
        );
        let body = answer.json();
        assert_eq!(body["name"], name.as_str(), "answered name");
        ids.push(body["store_id"].as_str().unwrap().to_owned());
    }
    // A chunked body is a body like any other.
    let chunked = Raw::new("POST", "/stores")
        .header("Authorization", format!("Bearer {token}"))
        .header("Content-Type", "application/json")
        .chunked(&[b"{\"name\": ", b"\"Chunked Shop\"}"]);
    let answer = exchange(&authority, &chunked.wire(&authority)).await;
    assert_eq!(
        answer.status,
        202,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    assert_eq!(answer.json()["name"], "Chunked Shop");
    ids.push(answer.json()["store_id"].as_str().unwrap().to_owned());

    // Verbatim in the Store object and in the Helm values the chart sees (`siteTitle`).
    for (id, name) in ids.iter().zip(&names) {
        let (status, store) = server.get_json(&format!("/stores/{id}")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(store["name"], name.as_str());
        let object = support::stores_api(&server.cluster.client)
            .get(id)
            .await
            .unwrap();
        assert_eq!(object.spec.name.as_deref(), Some(name.as_str()));
        let values = testkit::wait_for(
            &format!("the release of {id}"),
            support::READY_TIMEOUT,
            || async {
                let out = server
                    .cluster
                    .helm()
                    .args(["get", "values", id, "-n", id, "-o", "json"])
                    .output()
                    .unwrap();
                out.status
                    .success()
                    .then(|| serde_json::from_slice::<Value>(&out.stdout).unwrap())
            },
        )
        .await;
        assert_eq!(values["siteTitle"], name.as_str(), "{id}");
    }
    for path in [marker.clone(), format!("{marker}-b")] {
        assert!(
            !std::path::Path::new(&path).exists(),
            "{path} exists: a store name ran in a shell"
        );
    }

    // Deleted through the API, nothing is left.
    for id in &ids {
        let (status, _) = server.delete_store(id).await;
        assert_eq!(status, StatusCode::ACCEPTED, "DELETE {id}");
    }
    futures::future::join_all(ids.iter().map(|id| server.wait_gone(id))).await;
    assert!(server.cluster_stores().await.is_empty());
    assert!(server.cluster_namespaces().await.is_empty());
}
