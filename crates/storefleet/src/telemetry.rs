//! Logging and request tracing: `RUST_LOG` filters (default `info`), text or JSON lines on stderr.
//!
//! JSON lines are flat: the fields of the enclosing spans (`store_id` of a reconcile, `request_id`
//! and `route` of an HTTP request) sit beside the event's own fields, so every line about a store can
//! be found with `jq 'select(.store_id == "store-7016ff")'`.
use std::fmt;

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue};
use serde_json::{Map, Value};
use tower_http::request_id::{MakeRequestId, RequestId};
use tracing::field::{Field, Visit};
use tracing::{Event, Span, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

use crate::config::LogFormat;
use crate::domain::StoreId;

pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .fmt_fields(JsonFields::new())
            .event_format(FlatJson)
            .try_init(),
    };
}

/// One JSON object per line: timestamp, level, target, span fields (outermost first, inner ones win),
/// then the event's fields (`message` included).
struct FlatJson;

impl<S, N> FormatEvent<S, N> for FlatJson
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let mut line = Map::new();
        line.insert(
            "timestamp".into(),
            chrono::Utc::now()
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
                .into(),
        );
        line.insert("level".into(), meta.level().as_str().into());
        line.insert("target".into(), meta.target().into());
        if let Some(scope) = ctx.event_scope() {
            let mut innermost = None;
            for span in scope.from_root() {
                let extensions = span.extensions();
                // Recorded by `JsonFields`: a JSON object of the span's fields.
                if let Some(fields) = extensions.get::<FormattedFields<N>>()
                    && let Ok(Value::Object(fields)) = serde_json::from_str(fields.as_str())
                {
                    line.extend(fields);
                }
                innermost = Some(span.name());
            }
            if let Some(name) = innermost {
                line.insert("span".into(), name.into());
            }
        }
        event.record(&mut FieldVisitor(&mut line));
        writeln!(writer, "{}", Value::Object(line))
    }
}

struct FieldVisitor<'a>(&'a mut Map<String, Value>);

impl Visit for FieldVisitor<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().into(), format!("{value:?}").into());
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }
}

/// New request ids are UUIDs (v4).
#[derive(Clone, Copy, Default)]
pub struct UuidRequestId;

impl MakeRequestId for UuidRequestId {
    fn make_request_id<B>(&mut self, _: &axum::http::Request<B>) -> Option<RequestId> {
        let id = uuid::Uuid::new_v4().to_string();
        Some(RequestId::new(
            HeaderValue::from_str(&id).expect("a UUID is a valid header"),
        ))
    }
}

/// An incoming `x-request-id` is kept only if it is sane: 1 to 128 characters of `[A-Za-z0-9._:-]`
/// (it ends up in logs and answers). Anything else is dropped, so a fresh one is made.
pub async fn drop_insane_request_id(mut req: Request) -> Request {
    let sane = |v: &HeaderValue| {
        let b = v.as_bytes();
        (1..=128).contains(&b.len())
            && b.iter()
                .all(|c| c.is_ascii_alphanumeric() || b"._:-".contains(c))
    };
    let headers = req.headers_mut();
    if headers.get_all(&REQUEST_ID_HEADER).iter().count() > 1
        || headers.get(&REQUEST_ID_HEADER).is_some_and(|v| !sane(v))
    {
        headers.remove(&REQUEST_ID_HEADER);
    }
    req
}

/// The request id of a request, as set by `SetRequestIdLayer`.
pub fn request_id<B>(req: &axum::http::Request<B>) -> &str {
    req.extensions()
        .get::<RequestId>()
        .and_then(|id| id.header_value().to_str().ok())
        .unwrap_or_default()
}

/// The route template (`/stores/{store_id}`), never the raw path; `unmatched` for the fallback.
pub fn route<B>(req: &axum::http::Request<B>) -> &str {
    req.extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
}

/// Characters of a request's URI that reach the log.
const URI_LOGGED: usize = 256;

/// The span of an HTTP request: every log line inside carries the request id, and `store_id` when
/// the path names a store.
pub fn http_span<B>(req: &axum::http::Request<B>) -> Span {
    let store_id = req
        .uri()
        .path()
        .strip_prefix("/stores/")
        .and_then(|rest| StoreId::parse(rest.split('/').next().unwrap_or_default()).ok());
    // A path is the caller's to make as long as the head limit allows: the log keeps its start.
    let uri = req.uri().to_string();
    let uri = match uri.char_indices().nth(URI_LOGGED) {
        Some((end, _)) => format!("{}…", &uri[..end]),
        None => uri,
    };
    tracing::info_span!(
        "request",
        request_id = request_id(req),
        method = crate::api::methods::label(req.method()),
        route = route(req),
        uri = %uri,
        store_id = store_id.as_ref().map(StoreId::as_str),
    )
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::*;

    #[tokio::test]
    async fn only_sane_request_ids_are_kept() {
        let with = |id: &str| {
            axum::http::Request::builder()
                .header(REQUEST_ID_HEADER, id)
                .body(axum::body::Body::empty())
                .unwrap()
        };
        for sane in ["abc", "0b6f1d9e-3c1a-4a57-9d0e-2f4b8f0c6a11", "a.b_c:d-1"] {
            let req = drop_insane_request_id(with(sane)).await;
            assert_eq!(req.headers()[&REQUEST_ID_HEADER], sane);
        }
        for insane in ["", "a b", "a\"b", "<x>", &"x".repeat(129)] {
            let req = drop_insane_request_id(with(insane)).await;
            assert!(
                req.headers().get(&REQUEST_ID_HEADER).is_none(),
                "{insane:?}"
            );
        }
    }

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn json_lines_carry_the_fields_of_their_spans() {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .fmt_fields(JsonFields::new())
            .event_format(FlatJson)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let outer = tracing::info_span!("reconcile", store_id = "store-00aa11");
            let _outer = outer.enter();
            let inner = tracing::info_span!("step", attempt = 2);
            let _inner = inner.enter();
            tracing::info!(ready = true, "store is ready");
        });
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        let line: Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(line["store_id"], "store-00aa11", "{line}");
        assert_eq!(line["attempt"], 2, "{line}");
        assert_eq!(line["ready"], true, "{line}");
        assert_eq!(line["message"], "store is ready", "{line}");
        assert_eq!(line["span"], "step", "{line}");
        assert_eq!(line["level"], "INFO", "{line}");
    }
}
