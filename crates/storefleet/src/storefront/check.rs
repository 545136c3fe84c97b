//! Asking a store's WordPress: the home page and the REST index, at once, each within a timeout.
use std::time::{Duration, Instant};

use reqwest::header::{CONTENT_LENGTH, HOST, LOCATION};
use reqwest::{StatusCode, Url};

use super::wordpress::{self, RestIndex};
use super::{Checks, Failure, Part, Target};

/// Each part, redirects and body included, ends within this by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3);
/// Redirects followed while they stay on the store (`/shop` to `/shop/`, say).
const MAX_REDIRECTS: usize = 3;
/// A store's page is read up to this many bytes; a bigger one fails the part. A WooCommerce home
/// page is about 100 KiB; the REST index is asked for its `namespaces` only.
const MAX_BODY: usize = 1024 * 1024;

/// The REST index, reduced by WordPress itself to the one field read (`_fields`, core's
/// `rest_filter_response_fields`): the full index of a WooCommerce store lists every route with
/// its arguments and runs to megabytes.
const REST_INDEX_PATH: &str = "/wp-json/?_fields=namespaces";

/// Asks stores' WordPress over plain HTTP (a Service speaks HTTP; TLS ends at the Ingress).
#[derive(Clone, Debug)]
pub struct Checker {
    http: reqwest::Client,
    timeout: Duration,
}

impl Checker {
    pub fn new(timeout: Duration) -> Self {
        let http = reqwest::Client::builder()
            // Redirects are followed by hand, only on the store (`fetch`).
            .redirect(reqwest::redirect::Policy::none())
            // A ClusterIP must never go to an HTTP(S)_PROXY from the environment.
            .no_proxy()
            .connect_timeout(timeout)
            // One visit, not a session: nothing a store sets is sent back to it or another store.
            .cookie_store(false)
            .user_agent(concat!(
                "storefleet-storefront-check/",
                env!("CARGO_PKG_VERSION")
            ))
            .build()
            .expect("a client without TLS settings of its own builds");
        Self { http, timeout }
    }

    /// Both parts, asked at the same time.
    pub async fn check(&self, target: &Target) -> Checks {
        let (home_page, (rest_api, woocommerce_active)) =
            tokio::join!(self.home_page(target), self.rest_api(target));
        Checks {
            home_page,
            rest_api,
            woocommerce_active,
        }
    }

    async fn home_page(&self, target: &Target) -> Part {
        let started = Instant::now();
        let fetched = self.fetch_within(target, "/").await;
        let ms = elapsed_ms(started);
        match fetched {
            Err((failure, reason, status)) => {
                with_status(Part::failed(failure, reason, ms), status)
            }
            Ok(page) => {
                let html = String::from_utf8_lossy(&page.body);
                match wordpress::shows_title(&html, &target.site_title) {
                    Ok(()) => Part::ok(page.status.as_u16(), ms),
                    Err(reason) => Part::failed(Failure::UnexpectedContent, reason, ms)
                        .with_status(page.status.as_u16()),
                }
            }
        }
    }

    async fn rest_api(&self, target: &Target) -> (Part, Option<bool>) {
        let started = Instant::now();
        let fetched = self.fetch_within(target, REST_INDEX_PATH).await;
        let ms = elapsed_ms(started);
        match fetched {
            Err((failure, reason, status)) => {
                (with_status(Part::failed(failure, reason, ms), status), None)
            }
            Ok(page) => match RestIndex::parse(&page.body) {
                Ok(index) => (
                    Part::ok(page.status.as_u16(), ms),
                    Some(index.woocommerce_active()),
                ),
                Err(reason) => (
                    Part::failed(Failure::UnexpectedContent, reason, ms)
                        .with_status(page.status.as_u16()),
                    None,
                ),
            },
        }
    }

    /// One page: 200 and its body, or why not (with the last status seen, if any).
    async fn fetch_within(&self, target: &Target, path: &str) -> Result<Page, Missed> {
        match tokio::time::timeout(self.timeout, self.fetch(target, path)).await {
            Ok(result) => result,
            Err(_) => Err((
                Failure::Timeout,
                format!("no complete answer within {} ms", self.timeout.as_millis()),
                None,
            )),
        }
    }

    async fn fetch(&self, target: &Target, path: &str) -> Result<Page, Missed> {
        let mut path = path.to_owned();
        for _ in 0..=MAX_REDIRECTS {
            // The URL names the address to connect to; `Host` names the store, as the Ingress would.
            let url = format!("http://{}{path}", target.addr);
            let response = self
                .http
                .get(&url)
                .header(HOST, &target.host)
                .send()
                .await
                .map_err(|e| (classify(&e), describe(&e), None))?;
            let status = response.status();
            if status.is_redirection() {
                let location = response
                    .headers()
                    .get(LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .ok_or_else(|| {
                        (
                            Failure::Protocol,
                            format!("{status} without a usable Location"),
                            Some(status.as_u16()),
                        )
                    })?;
                path = on_store(&target.host, &path, location)
                    .map_err(|reason| (Failure::RedirectOffStore, reason, Some(status.as_u16())))?;
                continue;
            }
            if status != StatusCode::OK {
                return Err((
                    Failure::HttpStatus,
                    // The path may come from a store's redirect: quoted short.
                    format!("{} answered {status}", wordpress::excerpt(&path)),
                    Some(status.as_u16()),
                ));
            }
            let body = read_capped(response)
                .await
                .map_err(|(failure, reason)| (failure, reason, Some(status.as_u16())))?;
            return Ok(Page { status, body });
        }
        Err((
            Failure::TooManyRedirects,
            format!("more than {MAX_REDIRECTS} redirects on the store"),
            None,
        ))
    }
}

impl Default for Checker {
    fn default() -> Self {
        Self::new(DEFAULT_TIMEOUT)
    }
}

struct Page {
    status: StatusCode,
    body: Vec<u8>,
}

/// Why a page was not had: the kind, in words, and the last HTTP status seen.
type Missed = (Failure, String, Option<u16>);

fn with_status(part: Part, status: Option<u16>) -> Part {
    match status {
        Some(s) => part.with_status(s),
        None => part,
    }
}

/// The path (and query) to ask next when `location` stays on the store's host (and default port);
/// otherwise why not. Relative locations are read against the page that sent them.
pub fn on_store(host: &str, current_path: &str, location: &str) -> Result<String, String> {
    let base = Url::parse(&format!("http://{host}{current_path}")).map_err(|e| {
        format!(
            "cannot read the redirect from {}: {e}",
            wordpress::excerpt(current_path)
        )
    })?;
    let next = base.join(location).map_err(|e| {
        format!(
            "redirect to {:?}, not a URL ({e})",
            wordpress::excerpt(location)
        )
    })?;
    let same_host = next
        .host_str()
        .is_some_and(|h| h.eq_ignore_ascii_case(host));
    if !matches!(next.scheme(), "http" | "https") || !same_host || next.port().is_some() {
        return Err(format!(
            "redirect off the store to {:?} (not followed)",
            wordpress::excerpt(next.as_str())
        ));
    }
    Ok(match next.query() {
        Some(q) => format!("{}?{q}", next.path()),
        None => next.path().to_owned(),
    })
}

/// The body, up to [`MAX_BODY`] bytes.
async fn read_capped(mut response: reqwest::Response) -> Result<Vec<u8>, (Failure, String)> {
    let too_large = || {
        (
            Failure::UnexpectedContent,
            format!("the answer is larger than {MAX_BODY} bytes"),
        )
    };
    let announced = response
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > MAX_BODY as u64) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| (classify(&e), describe(&e)))?
    {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn classify(e: &reqwest::Error) -> Failure {
    if e.is_timeout() {
        Failure::Timeout
    } else if e.is_connect() {
        Failure::Unreachable
    } else {
        Failure::Protocol
    }
}

/// The innermost cause ("Connection refused (os error 111)"), without the URL: it names the
/// Service's address, which is the cluster's business, not the caller's.
fn describe(e: &reqwest::Error) -> String {
    let mut cause: &dyn std::error::Error = e;
    while let Some(source) = cause.source() {
        cause = source;
    }
    let what = match classify(e) {
        Failure::Unreachable => "unreachable",
        Failure::Timeout => "timed out",
        _ => "broken answer",
    };
    format!("{what}: {cause}")
}

fn elapsed_ms(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_are_followed_only_on_the_store() {
        let host = "store-7016ff.localhost";
        assert_eq!(on_store(host, "/shop", "/shop/").unwrap(), "/shop/");
        assert_eq!(on_store(host, "/a/b", "c?x=1").unwrap(), "/a/c?x=1");
        assert_eq!(
            on_store(host, "/", "http://STORE-7016FF.localhost/wp-json/").unwrap(),
            "/wp-json/"
        );
        // TLS ends at the Ingress: the Service is asked the same path over HTTP.
        assert_eq!(
            on_store(host, "/", "https://store-7016ff.localhost/").unwrap(),
            "/"
        );
        for off in [
            "http://store-000000.localhost/",
            "http://evil.example/",
            "//evil.example/x",
            "http://store-7016ff.localhost:8080/",
            "http://store-7016ff.localhost.evil.example/",
            "http://10.0.0.1/",
            "ftp://store-7016ff.localhost/",
            "http://user@169.254.169.254/",
        ] {
            let e = on_store(host, "/", off).unwrap_err();
            assert!(e.contains("off the store"), "{off}: {e}");
        }
    }
}
