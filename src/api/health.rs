//! `GET /healthz`. For anyone: a liveness answer, `{"status":"ok"}`, that touches neither D1
//! nor KV and says nothing about the build (an unauthenticated request must not cost a KV write,
//! which free plans allow 1,000 of a day, nor help time an attack).
//!
//! For the operator (`Authorization: Bearer <FLOWCP_OPERATOR_TOKEN>`): the deep check — the build
//! version and a real round trip to D1 and KV. D1: `SELECT 1` through the binding and the
//! applied schema (a count on a migrated table, so a database whose migrations were not applied
//! reports `error`). KV: a write of a probe value with a short TTL and a read back that must
//! return the same value. Status 200 when both are `ok`, 503 otherwise; the body names which
//! check failed but never carries backend details. A wrong token is 401.

use serde_json::json;
use subtle::ConstantTimeEq;

use super::JsonResponse;
use crate::error::{ApiError, ErrorCode};
use crate::store::{row_i64, Db, Kv};

/// What a `/healthz` request may see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    Liveness,
    Deep,
}

/// No `Authorization`: liveness. The operator token (compared in constant time): the deep check.
/// Any other `Authorization`, or one when no token is configured: 401.
pub fn probe_kind(authorization: Option<&str>, operator_token: Option<&str>) -> Result<Probe, ApiError> {
    let Some(given) = authorization else { return Ok(Probe::Liveness) };
    let given = given.trim().strip_prefix("Bearer ").unwrap_or("").trim();
    match operator_token {
        Some(t) if !given.is_empty() && bool::from(given.as_bytes().ct_eq(t.as_bytes())) => Ok(Probe::Deep),
        _ => Err(ApiError::new(ErrorCode::Unauthenticated, "The deep health check needs the operator token.")),
    }
}

/// Operator routes (`/ops/...`) need the operator token, compared in constant time; without
/// one configured they answer 401 to everyone.
pub fn require_operator(authorization: Option<&str>, operator_token: Option<&str>) -> Result<(), ApiError> {
    match probe_kind(authorization, operator_token) {
        Ok(Probe::Deep) => Ok(()),
        _ => Err(ApiError::new(ErrorCode::Unauthenticated, "This operation needs the operator token.")),
    }
}

/// The public answer: alive, nothing else.
pub fn liveness() -> JsonResponse {
    JsonResponse { status: 200, body: json!({ "status": "ok" }) }
}

pub const PROBE_KEY: &str = "health:probe";

pub async fn check(db: &impl Db, kv: &impl Kv, now_ms: i64, version: &str) -> (JsonResponse, Vec<String>) {
    let mut problems = Vec::new();
    let d1_ok = match crate::store::probe(db).await {
        Ok(rows) => match rows.first().map(|r| row_i64(r, "one")) {
            Some(Ok(1)) => true,
            other => {
                problems.push(format!("d1: unexpected answer {other:?}"));
                false
            }
        },
        Err(e) => {
            problems.push(format!("d1: {e}"));
            false
        }
    };
    let probe = format!("{now_ms}");
    let kv_ok = match kv.put(PROBE_KEY, probe.as_bytes(), Some(60)).await {
        Ok(()) => match kv.get(PROBE_KEY).await {
            Ok(Some(v)) if v == probe.as_bytes() => true,
            Ok(_) => {
                problems.push("kv: read back a different value".into());
                false
            }
            Err(e) => {
                problems.push(format!("kv: {e}"));
                false
            }
        },
        Err(e) => {
            problems.push(format!("kv: {e}"));
            false
        }
    };
    let word = |ok: bool| if ok { "ok" } else { "error" };
    let healthy = d1_ok && kv_ok;
    let body = json!({
        "status": word(healthy),
        "version": version,
        "checks": { "d1": word(d1_ok), "kv": word(kv_ok) },
    });
    (JsonResponse { status: if healthy { 200 } else { 503 }, body }, problems)
}
