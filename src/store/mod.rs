//! Storage ports and the SQL they run.
//!
//! Core code talks to storage only through the two ports here: [`Db`] (D1 in production, a
//! real SQLite in host tests) and [`Kv`] (Workers KV in production, [`MemoryKv`] in host tests).
//! The SQL for each table lives in one submodule next to the functions that run it, so the
//! schema (`migrations/`) and its queries are read together. The D1/KV adapters are in `glue`.
//!
//! The ports are `async fn` traits used through generics (`impl Db`), never `dyn`, and carry no
//! `Send` bound: the Workers runtime is single-threaded.

pub mod apps;
pub mod audit;
pub mod connections;
pub mod envelopes;
pub mod git;
pub mod invitations;
pub mod key_users;
pub mod oauth_clients;
pub mod secrets;
pub mod servers;
pub mod sessions;
pub mod store_entries;
pub mod tokens;
pub mod usage;
pub mod users;
pub mod workspaces;

use std::cell::RefCell;
use std::collections::BTreeMap;

/// A bound SQL parameter. D1 numbers are JS doubles: integers are exact up to 2^53, which
/// covers millisecond timestamps and counters.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlValue {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
}

impl From<&str> for SqlValue {
    fn from(v: &str) -> Self {
        SqlValue::Text(v.to_string())
    }
}
impl From<String> for SqlValue {
    fn from(v: String) -> Self {
        SqlValue::Text(v)
    }
}
impl From<i64> for SqlValue {
    fn from(v: i64) -> Self {
        SqlValue::Integer(v)
    }
}
impl<T: Into<SqlValue>> From<Option<T>> for SqlValue {
    fn from(v: Option<T>) -> Self {
        v.map_or(SqlValue::Null, Into::into)
    }
}

/// One result row: column name -> JSON value (as D1 returns it).
pub type Row = serde_json::Map<String, serde_json::Value>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// The backend refused or failed the operation (message is for logs; it holds no values).
    Backend(String),
    /// A stored value is not what the code expects (hostile or corrupt storage).
    Corrupt(String),
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::Backend(m) => write!(f, "storage backend: {m}"),
            StoreError::Corrupt(m) => write!(f, "corrupt stored value: {m}"),
        }
    }
}

impl std::error::Error for StoreError {}

/// The SQL database port (D1).
#[allow(async_fn_in_trait)]
pub trait Db {
    /// Runs a statement; returns the number of rows it changed.
    async fn execute(&self, sql: &str, params: &[SqlValue]) -> Result<u64, StoreError>;
    /// Runs a query; returns its rows.
    async fn query(&self, sql: &str, params: &[SqlValue]) -> Result<Vec<Row>, StoreError>;
    /// Runs statements atomically, in order (D1's `batch` is one transaction): all of them
    /// take effect or none does. Returns the rows each changed.
    async fn batch(&self, statements: &[Statement<'_>]) -> Result<Vec<u64>, StoreError>;
}

/// One statement of a [`Db::batch`].
pub type Statement<'a> = (&'a str, Vec<SqlValue>);

/// The key-value port (Workers KV).
#[allow(async_fn_in_trait)]
pub trait Kv {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// `ttl_seconds`: KV's minimum is 60; `None` keeps the value until deleted.
    async fn put(&self, key: &str, value: &[u8], ttl_seconds: Option<u64>) -> Result<(), StoreError>;
    async fn delete(&self, key: &str) -> Result<(), StoreError>;
}

/// Reads an integer column; D1 returns numbers as JSON numbers (possibly floats).
pub fn row_i64(row: &Row, col: &str) -> Result<i64, StoreError> {
    match row.get(col) {
        Some(serde_json::Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15).map(|f| f as i64))
            .ok_or_else(|| StoreError::Corrupt(format!("column {col} is not an integer"))),
        _ => Err(StoreError::Corrupt(format!("column {col} is missing or not a number"))),
    }
}

/// A stored KV value and its TTL in seconds (recorded, not enforced, by [`MemoryKv`]).
pub type KvEntry = (Vec<u8>, Option<u64>);

/// Reads a text column; a missing or non-text value is corrupt storage.
pub(crate) fn text(row: &Row, col: &str) -> Result<String, StoreError> {
    row.get(col)
        .and_then(|v| v.as_str())
        .map(str::to_string)
        .ok_or_else(|| StoreError::Corrupt(format!("column {col} is missing or not text")))
}

/// A round trip through the database and its applied schema (`/healthz`): one row with
/// `one = 1`, and an error when the migrations are missing (the count reads a migrated table).
pub async fn probe(db: &impl Db) -> Result<Vec<Row>, StoreError> {
    db.query("SELECT 1 AS one, (SELECT COUNT(*) FROM audit_events WHERE ts < 0) AS probe", &[]).await
}

/// Reads a text column holding one of a vocabulary's names; anything else is corrupt storage.
pub(crate) fn parsed<T>(row: &Row, col: &str, parse: fn(&str) -> Option<T>) -> Result<T, StoreError> {
    let raw = text(row, col)?;
    parse(&raw).ok_or_else(|| StoreError::Corrupt(format!("column {col} holds an unknown value")))
}

/// Reads a nullable integer column: NULL (or absent) is `None`, anything but an integer is
/// corrupt storage.
pub(crate) fn opt_i64(row: &Row, col: &str) -> Result<Option<i64>, StoreError> {
    match row.get(col) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(_) => row_i64(row, col).map(Some),
    }
}

/// Reads a nullable text column.
pub(crate) fn opt_text(row: &Row, col: &str) -> Option<String> {
    row.get(col).and_then(|v| v.as_str()).map(str::to_string)
}

/// An in-memory [`Kv`] for host tests of core logic.
#[derive(Default)]
pub struct MemoryKv {
    pub entries: RefCell<BTreeMap<String, KvEntry>>,
}

impl Kv for MemoryKv {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.entries.borrow().get(key).map(|(v, _)| v.clone()))
    }
    async fn put(&self, key: &str, value: &[u8], ttl_seconds: Option<u64>) -> Result<(), StoreError> {
        self.entries.borrow_mut().insert(key.to_string(), (value.to_vec(), ttl_seconds));
        Ok(())
    }
    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.entries.borrow_mut().remove(key);
        Ok(())
    }
}

/// Drives a future that never waits on I/O to completion (host tests and the CLI).
/// Panics if the future is pending: the host backends are synchronous, so pending means a
/// future that would never finish, and a test must fail rather than hang.
pub fn block_on<F: std::future::Future>(fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match fut.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(v) => v,
        std::task::Poll::Pending => panic!("block_on: the future is pending; host backends never wait"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_read_back_from_d1_doubles() {
        // D1 hands numbers to the Worker as JS doubles: 1.79e12 (a millisecond timestamp) is
        // an integer column value, 1.5 is not.
        let row: Row = serde_json::from_str(r#"{"ts": 1.79e12, "n": 7, "f": 1.5, "s": "7", "big": 1e16}"#).unwrap();
        assert_eq!(row_i64(&row, "ts").unwrap(), 1_790_000_000_000);
        assert_eq!(row_i64(&row, "n").unwrap(), 7);
        assert!(row_i64(&row, "f").is_err());
        assert!(row_i64(&row, "s").is_err());
        assert!(row_i64(&row, "big").is_err(), "beyond 2^53 a double is not an exact integer");
        assert!(row_i64(&row, "missing").is_err());
    }

    #[test]
    fn block_on_refuses_a_future_that_waits() {
        let pending = std::panic::catch_unwind(|| block_on(std::future::pending::<()>()));
        assert!(pending.is_err(), "a pending future must fail the test, not hang it");
        assert_eq!(block_on(async { 5 }), 5);
    }
}
