//! RFC 9457 problem details: every error answer is `application/problem+json`
//! `{type, title, status, detail, store_id?, request_id}`.
use axum::body::{Body, to_bytes};
use axum::extract::Request;
use axum::extract::rejection::{BytesRejection, JsonRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::DomainError;
use crate::stores::StoreError;

pub const PROBLEM_BASE: &str = "https://storefleet.dev/problems/";

/// The body of every error answer.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ProblemBody {
    #[schema(example = "https://storefleet.dev/problems/quota-exceeded")]
    #[serde(rename = "type")]
    pub type_: String,
    #[schema(example = "Quota exceeded")]
    pub title: String,
    #[schema(example = 403)]
    pub status: u16,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store_id: Option<String>,
    /// The request's id: also in the `x-request-id` response header and on every log line of the
    /// request.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "0b6f1d9e-3c1a-4a57-9d0e-2f4b8f0c6a11")]
    pub request_id: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Problem {
    pub status: StatusCode,
    /// Last path segment of the type URI, e.g. `quota-exceeded`.
    pub slug: &'static str,
    pub title: &'static str,
    pub detail: String,
    pub store_id: Option<String>,
}

impl Problem {
    pub fn new(
        status: StatusCode,
        slug: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            status,
            slug,
            title,
            detail: detail.into(),
            store_id: None,
        }
    }

    pub fn with_store(mut self, store_id: impl Into<String>) -> Self {
        self.store_id = Some(store_id.into());
        self
    }

    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Unauthorized",
            detail,
        )
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", "Not found", detail)
    }

    pub fn invalid(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-request",
            "Invalid request",
            detail,
        )
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "bad-request",
            "Bad request",
            detail,
        )
    }

    /// Rate limited; the caller adds `Retry-After`.
    pub fn too_many_requests(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too-many-requests",
            "Too many requests",
            detail,
        )
    }

    pub fn internal(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal error",
            detail,
        )
    }

    pub fn body(&self) -> ProblemBody {
        ProblemBody {
            type_: format!("{PROBLEM_BASE}{}", self.slug),
            title: self.title.to_owned(),
            status: self.status.as_u16(),
            detail: self.detail.clone(),
            store_id: self.store_id.clone(),
            request_id: None,
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.body()).expect("problems serialise");
        let mut response = (self.status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"storefleet\""),
            );
        }
        response
    }
}

/// Middleware: writes the request id into every problem+json answer, wherever the problem was made
/// (handlers, extractors, auth, fallbacks).
/// (`ProblemBody::request_id`.)
pub async fn add_request_id(req: Request, next: Next) -> Response {
    let request_id = crate::telemetry::request_id(&req).to_owned();
    let response = next.run(req).await;
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|ct| ct == "application/problem+json");
    if !is_problem || request_id.is_empty() {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = to_bytes(body, PROBLEM_SIZE_LIMIT).await else {
        return Problem::internal("an error answer could not be read").into_response();
    };
    let bytes = match serde_json::from_slice::<serde_json::Value>(&bytes) {
        Ok(serde_json::Value::Object(mut problem)) => {
            problem.insert("request_id".into(), request_id.into());
            serde_json::to_vec(&problem).expect("JSON serialises")
        }
        _ => bytes.to_vec(),
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(bytes))
}

/// Problems are small; this only bounds a mistake.
const PROBLEM_SIZE_LIMIT: usize = 1 << 20;

impl From<StoreError> for Problem {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(id) => {
                Problem::not_found(format!("there is no store {id}")).with_store(id)
            }
            StoreError::QuotaExceeded { .. } | StoreError::UserQuotaExceeded { .. } => {
                Problem::new(
                    StatusCode::FORBIDDEN,
                    "quota-exceeded",
                    "Quota exceeded",
                    e.to_string(),
                )
            }
            StoreError::NameTaken(_) => Problem::new(
                StatusCode::CONFLICT,
                "name-taken",
                "Name taken",
                e.to_string(),
            ),
            StoreError::Deleting(ref id) => Problem::new(
                StatusCode::CONFLICT,
                "store-deleting",
                "Store being deleted",
                e.to_string(),
            )
            .with_store(id.clone()),
            // The backup target refused the final backup's request: not the caller's fault and not
            // a bug; the store is left as it was.
            StoreError::Backup(_) => Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "final-backup-unavailable",
                "Final backup could not be asked for",
                e.to_string(),
            ),
            StoreError::UnknownPlan(unknown) => unknown.into(),
            StoreError::Volume(ref refusal) => {
                let (slug, title) = match **refusal {
                    crate::plans::VolumeRefusal::Shrink { .. } => {
                        ("volume-shrink", "Volume cannot shrink")
                    }
                    crate::plans::VolumeRefusal::NotExpandable { .. } => {
                        ("volume-not-expandable", "Volume cannot grow")
                    }
                };
                Problem::new(StatusCode::UNPROCESSABLE_ENTITY, slug, title, e.to_string())
            }
            StoreError::IdempotencyKeyReused => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency-key-reused",
                "Idempotency key reused",
                e.to_string(),
            ),
            // The API server (or its etcd) is away: a temporary state the client can retry, not a bug.
            StoreError::Kube(ref k) if kube_unavailable(k) => {
                tracing::warn!("{e}");
                Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "Kubernetes unavailable",
                    "the Kubernetes API server cannot be reached; retry in a few seconds",
                )
            }
            // Any other answer of the cluster (RBAC refusing, a resource it does not serve): a cause
            // on the cluster's side, which an operator fixes there. 503, never 500 (issue 19).
            StoreError::Kube(_) | StoreError::Database(_) => {
                tracing::error!("{e}");
                Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "Dependency unavailable",
                    e.to_string(),
                )
            }
            StoreError::NoFreeId => {
                tracing::error!("{e}");
                Problem::internal(e.to_string())
            }
        }
    }
}

/// A transport failure, or the API server answering that it cannot serve now (etcd down: 500/503/504
/// with a Status), rather than refusing this request.
fn kube_unavailable(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(status) => matches!(status.code, 500 | 503 | 504),
        kube::Error::HyperError(_) | kube::Error::Service(_) => true,
        _ => false,
    }
}

/// A plan the platform does not have: the detail lists those it has.
impl From<crate::plans::UnknownPlan> for Problem {
    fn from(e: crate::plans::UnknownPlan) -> Self {
        Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown-plan",
            "Unknown plan",
            e.to_string(),
        )
    }
}

impl From<DomainError> for Problem {
    fn from(e: DomainError) -> Self {
        match e {
            DomainError::InvalidStoreId(_) => Problem::not_found(e.to_string()),
            DomainError::InvalidIdempotencyKey => Problem::bad_request(e.to_string()),
            _ => Problem::invalid(e.to_string()),
        }
    }
}

fn payload_too_large() -> Problem {
    Problem::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload-too-large",
        "Payload too large",
        "the request body is larger than 64 KiB",
    )
}

/// Middleware: a body whose `Content-Length` is over the limit gets 413 at once. The body limit
/// alone would wait for the bytes, and a client that declares 10 GB and sends nothing would be
/// answered by the request timeout (a 5xx) instead.
pub async fn refuse_oversized_body(req: Request, next: Next) -> Response {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    let Some(declared) = declared.filter(|&n| n > super::BODY_LIMIT as u64) else {
        return next.run(req).await;
    };
    // Closing a connection with unread data resets it, and the client may then never read the 413:
    // a body of plausible size is read and dropped first (briefly); an absurd one is not.
    if declared <= DRAIN_LIMIT {
        use futures::StreamExt as _;
        let mut chunks = req.into_body().into_data_stream();
        let drain = async { while let Some(Ok(_)) = chunks.next().await {} };
        let _ = tokio::time::timeout(DRAIN_TIME, drain).await;
    }
    payload_too_large().into_response()
}

/// Bodies up to this size are read (and dropped) before a 413, so that the client reads the answer.
const DRAIN_LIMIT: u64 = 1024 * 1024;
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(5);

/// A request body axum could not read: too large (413) or broken (400).
impl From<BytesRejection> for Problem {
    fn from(r: BytesRejection) -> Self {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            payload_too_large()
        } else {
            Problem::new(r.status(), "bad-request", "Bad request", r.body_text())
        }
    }
}

impl From<JsonRejection> for Problem {
    fn from(r: JsonRejection) -> Self {
        match r {
            JsonRejection::JsonDataError(e) => Problem::invalid(e.body_text()),
            JsonRejection::JsonSyntaxError(e) => Problem::new(
                StatusCode::BAD_REQUEST,
                "invalid-json",
                "Invalid JSON",
                e.body_text(),
            ),
            JsonRejection::MissingJsonContentType(_) => Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported media type",
                "send the body as `Content-Type: application/json`",
            ),
            JsonRejection::BytesRejection(e) => e.into(),
            other => Problem::new(
                other.status(),
                "bad-request",
                "Bad request",
                other.body_text(),
            ),
        }
    }
}

impl From<QueryRejection> for Problem {
    fn from(r: QueryRejection) -> Self {
        Problem::bad_request(r.body_text())
    }
}

impl From<PathRejection> for Problem {
    fn from(r: PathRejection) -> Self {
        Problem::bad_request(r.body_text())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn parts(p: Problem) -> (StatusCode, String, serde_json::Value, Option<String>) {
        let response = p.into_response();
        let status = response.status();
        let ct = response.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .to_owned();
        let auth = response
            .headers()
            .get(header::WWW_AUTHENTICATE)
            .map(|v| v.to_str().unwrap().to_owned());
        let body = to_bytes(response.into_body(), 1 << 20).await.unwrap();
        (status, ct, serde_json::from_slice(&body).unwrap(), auth)
    }

    #[tokio::test]
    async fn problems_are_problem_json() {
        let (status, ct, body, auth) = parts(StoreError::QuotaExceeded { max: 5 }.into()).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_eq!(ct, "application/problem+json");
        assert_eq!(
            body["type"],
            "https://storefleet.dev/problems/quota-exceeded"
        );
        assert_eq!(body["status"], 403);
        assert!(body["detail"].as_str().unwrap().contains('5'));
        assert!(body.get("store_id").is_none());
        assert!(auth.is_none());
    }

    #[tokio::test]
    async fn unauthorized_asks_for_a_bearer_token() {
        let (status, _, _, auth) = parts(Problem::unauthorized("no token")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(auth.unwrap().starts_with("Bearer"));
    }

    #[tokio::test]
    async fn domain_errors_map_to_statuses() {
        let (status, _, body, _) = parts(StoreError::NotFound("store-000000".into()).into()).await;
        assert_eq!(
            (status, body["store_id"].as_str()),
            (StatusCode::NOT_FOUND, Some("store-000000"))
        );
        let (status, _, _, _) = parts(DomainError::NameTooLong(70).into()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        let (status, _, body, _) = parts(StoreError::IdempotencyKeyReused.into()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            body["type"],
            "https://storefleet.dev/problems/idempotency-key-reused"
        );
        let (status, _, _, _) = parts(DomainError::InvalidIdempotencyKey.into()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }
}
