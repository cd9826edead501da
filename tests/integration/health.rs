//! `/healthz` core logic against real SQLite and the in-memory KV.

use flowcp::api::health;
use flowcp::store::{block_on, Db, Kv, MemoryKv, Row, SqlValue, StoreError};

use crate::support::SqliteDb;

#[test]
fn healthy_backends_report_ok_with_version() {
    let (resp, problems) = block_on(health::check(&SqliteDb::migrated(), &MemoryKv::default(), 5, "1.2.3+abc"));
    assert_eq!(resp.status, 200, "{problems:?}");
    assert_eq!(resp.body["status"], "ok");
    assert_eq!(resp.body["version"], "1.2.3+abc");
    assert_eq!(resp.body["checks"], serde_json::json!({"d1": "ok", "kv": "ok"}));
}

struct BrokenKv;
impl Kv for BrokenKv {
    async fn get(&self, _: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(None)
    }
    async fn put(&self, _: &str, _: &[u8], _: Option<u64>) -> Result<(), StoreError> {
        Ok(())
    }
    async fn delete(&self, _: &str) -> Result<(), StoreError> {
        Ok(())
    }
}

struct UnmigratedDb;
impl Db for UnmigratedDb {
    async fn execute(&self, _: &str, _: &[SqlValue]) -> Result<u64, StoreError> {
        Err(StoreError::Backend("no such table: audit_events".into()))
    }
    async fn query(&self, _: &str, _: &[SqlValue]) -> Result<Vec<Row>, StoreError> {
        Err(StoreError::Backend("no such table: audit_events".into()))
    }
    async fn batch(&self, _: &[flowcp::store::Statement<'_>]) -> Result<Vec<u64>, StoreError> {
        Err(StoreError::Backend("no such table: audit_events".into()))
    }
}

#[test]
fn kv_that_loses_writes_is_reported_as_503() {
    let (resp, problems) = block_on(health::check(&SqliteDb::migrated(), &BrokenKv, 5, "v"));
    assert_eq!(resp.status, 503);
    assert_eq!(resp.body["checks"]["kv"], "error");
    assert_eq!(resp.body["checks"]["d1"], "ok");
    assert_eq!(problems.len(), 1);
}

#[test]
fn database_without_schema_is_reported_without_backend_details() {
    let (resp, problems) = block_on(health::check(&UnmigratedDb, &MemoryKv::default(), 5, "v"));
    assert_eq!(resp.status, 503);
    assert_eq!(resp.body["checks"]["d1"], "error");
    assert!(!resp.body.to_string().contains("no such table"));
    assert!(problems[0].contains("no such table"));
}

/// Security review F6: an unauthenticated `/healthz` is a liveness answer that writes nothing,
/// reads nothing and names no version; the deep check needs the operator token (a wrong one,
/// or any token when none is configured, is 401).
#[test]
fn public_healthz_is_liveness_only_and_the_deep_check_needs_the_operator_token() {
    use flowcp::api::health::{liveness, probe_kind, Probe};
    const TOKEN: &str = "an operator token of at least thirty-two characters";
    assert_eq!(probe_kind(None, Some(TOKEN)).unwrap(), Probe::Liveness);
    assert_eq!(probe_kind(None, None).unwrap(), Probe::Liveness);
    assert_eq!(probe_kind(Some(&format!("Bearer {TOKEN}")), Some(TOKEN)).unwrap(), Probe::Deep);
    for wrong in ["Bearer nope", "Bearer ", TOKEN, "Basic abc", &format!("Bearer {TOKEN}x")] {
        assert_eq!(probe_kind(Some(wrong), Some(TOKEN)).unwrap_err().status, 401, "{wrong}");
    }
    assert_eq!(probe_kind(Some(&format!("Bearer {TOKEN}")), None).unwrap_err().status, 401, "no token configured");
    let live = liveness();
    assert_eq!((live.status, live.body.clone()), (200, serde_json::json!({ "status": "ok" })));
    // Short tokens are ignored: the deep check stays off.
    let short = |name: &str| (name == flowcp::config::OPERATOR_TOKEN).then(|| "short".to_string());
    assert_eq!(flowcp::config::operator_token(short), None);
}
