//! Test support: a real SQLite database with FlowCP's migrations applied, behind the `Db` port
//! and held to D1's limits; a scripted HTTP port that behaves like the Worker's `fetch` adapter.

use std::cell::RefCell;
use std::collections::VecDeque;

use flowcp::net::{Http, HttpError, HttpRequest, HttpResponse};
use flowcp::store::{Db, Row, SqlValue, Statement, StoreError};
use rusqlite::types::{Value as SqlV, ValueRef};

/// D1's limits per statement (Cloudflare's documented limits): bound parameters and SQL length.
pub const D1_MAX_PARAMS: usize = 100;
pub const D1_MAX_SQL_BYTES: usize = 100_000;

/// Fails like D1 does when a statement exceeds its limits (SQLite itself allows ~32k params).
/// D1's largest string, BLOB or row.
const D1_MAX_VALUE_BYTES: usize = 2_000_000;

fn d1_limits(sql: &str, params: &[SqlValue]) -> Result<(), StoreError> {
    if params.len() > D1_MAX_PARAMS {
        return Err(StoreError::Backend(format!("D1: too many SQL variables ({} > {D1_MAX_PARAMS})", params.len())));
    }
    if sql.len() > D1_MAX_SQL_BYTES {
        return Err(StoreError::Backend(format!("D1: statement too long ({} bytes)", sql.len())));
    }
    if let Some(n) = params.iter().find_map(|p| match p {
        SqlValue::Text(t) if t.len() > D1_MAX_VALUE_BYTES => Some(t.len()),
        _ => None,
    }) {
        return Err(StoreError::Backend(format!("D1: string or blob too big ({n} bytes)")));
    }
    Ok(())
}

pub struct SqliteDb {
    conn: rusqlite::Connection,
}

impl SqliteDb {
    /// An in-memory database with every file of `migrations/` applied in name order,
    /// exactly as `wrangler d1 migrations apply` does.
    pub fn migrated() -> Self {
        let conn = rusqlite::Connection::open_in_memory().expect("sqlite");
        // D1 enforces foreign keys (and so ON DELETE CASCADE); make SQLite do the same.
        conn.execute_batch("PRAGMA foreign_keys = ON;").expect("pragma");
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations");
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .expect("migrations dir")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "sql"))
            .collect();
        files.sort();
        assert!(!files.is_empty(), "no migrations found");
        for f in files {
            let sql = std::fs::read_to_string(&f).expect("read migration");
            conn.execute_batch(&sql).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        }
        SqliteDb { conn }
    }

    /// Every row of every table, as text, by table: to compare the database before and after.
    pub fn dump(&self) -> std::collections::BTreeMap<String, Vec<String>> {
        let mut tables =
            self.conn.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").expect("tables");
        let names: Vec<String> =
            tables.query_map([], |r| r.get(0)).expect("tables").map(|n| n.expect("name")).collect();
        names
            .into_iter()
            .map(|t| {
                let mut stmt = self.conn.prepare(&format!("SELECT * FROM \"{t}\"")).expect("select");
                let n = stmt.column_count();
                let mut rows: Vec<String> = stmt
                    .query_map([], |r| {
                        let cell = |i| match r.get_ref(i) {
                            Ok(ValueRef::Text(t)) => String::from_utf8_lossy(t).into_owned(),
                            Ok(ValueRef::Integer(x)) => x.to_string(),
                            Ok(other) => format!("{other:?}"),
                            Err(e) => format!("<{e}>"),
                        };
                        Ok((0..n).map(cell).collect::<Vec<_>>().join("|"))
                    })
                    .expect("rows")
                    .map(|r| r.expect("row"))
                    .collect();
                rows.sort();
                (t, rows)
            })
            .collect()
    }
}

fn to_sql(v: &SqlValue) -> SqlV {
    match v {
        SqlValue::Null => SqlV::Null,
        SqlValue::Integer(i) => SqlV::Integer(*i),
        SqlValue::Real(f) => SqlV::Real(*f),
        SqlValue::Text(s) => SqlV::Text(s.clone()),
    }
}

impl Db for SqliteDb {
    async fn execute(&self, sql: &str, params: &[SqlValue]) -> Result<u64, StoreError> {
        d1_limits(sql, params)?;
        let params: Vec<SqlV> = params.iter().map(to_sql).collect();
        self.conn
            .execute(sql, rusqlite::params_from_iter(params))
            .map(|n| n as u64)
            .map_err(|e| StoreError::Backend(e.to_string()))
    }

    async fn batch(&self, statements: &[Statement<'_>]) -> Result<Vec<u64>, StoreError> {
        // One transaction, like D1's batch: a failing statement rolls back the ones before it.
        let backend = |e: rusqlite::Error| StoreError::Backend(e.to_string());
        self.conn.execute_batch("BEGIN").map_err(backend)?;
        let mut changed = Vec::with_capacity(statements.len());
        for (sql, params) in statements {
            let run = d1_limits(sql, params).and_then(|()| {
                let params: Vec<SqlV> = params.iter().map(to_sql).collect();
                self.conn.execute(sql, rusqlite::params_from_iter(params)).map_err(backend)
            });
            match run {
                Ok(n) => changed.push(n as u64),
                Err(e) => {
                    self.conn.execute_batch("ROLLBACK").map_err(backend)?;
                    return Err(e);
                }
            }
        }
        self.conn.execute_batch("COMMIT").map_err(backend)?;
        Ok(changed)
    }

    async fn query(&self, sql: &str, params: &[SqlValue]) -> Result<Vec<Row>, StoreError> {
        d1_limits(sql, params)?;
        let params: Vec<SqlV> = params.iter().map(to_sql).collect();
        let mut stmt = self.conn.prepare(sql).map_err(|e| StoreError::Backend(e.to_string()))?;
        let names: Vec<String> = stmt.column_names().iter().map(|s| s.to_string()).collect();
        let mut rows =
            stmt.query(rusqlite::params_from_iter(params)).map_err(|e| StoreError::Backend(e.to_string()))?;
        let mut out = Vec::new();
        while let Some(r) = rows.next().map_err(|e| StoreError::Backend(e.to_string()))? {
            let mut row = Row::new();
            for (i, name) in names.iter().enumerate() {
                let v = match r.get_ref(i).map_err(|e| StoreError::Backend(e.to_string()))? {
                    ValueRef::Null => serde_json::Value::Null,
                    ValueRef::Integer(i) => i.into(),
                    ValueRef::Real(f) => serde_json::json!(f),
                    ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned().into(),
                    ValueRef::Blob(b) => hex_string(b).into(),
                };
                row.insert(name.clone(), v);
            }
            out.push(row);
        }
        Ok(out)
    }
}

/// A [`Db`] that fails on command (issue 19's fault injection): the statements `fail` names,
/// counted from 0 over `execute` and `batch` calls, throw as D1 does when a write fails; the
/// others reach the inner database.
pub struct FaultyDb<'a> {
    pub inner: &'a SqliteDb,
    pub fail: Vec<usize>,
    pub calls: std::cell::Cell<usize>,
    /// The failing write is made, then reported failed (a timeout after the commit).
    pub late: bool,
}

impl<'a> FaultyDb<'a> {
    pub fn new(inner: &'a SqliteDb, fail: &[usize]) -> Self {
        FaultyDb { inner, fail: fail.to_vec(), calls: std::cell::Cell::new(0), late: false }
    }

    /// Whether this write fails; `Err` at once unless the fault is `late`.
    fn fault(&self) -> Result<bool, StoreError> {
        let n = self.calls.replace(self.calls.get() + 1);
        if self.fail.contains(&n) {
            if !self.late {
                return Err(injected(n));
            }
            return Ok(true);
        }
        Ok(false)
    }
}

fn injected(n: usize) -> StoreError {
    StoreError::Backend(format!("D1_ERROR: injected fault on write {n}"))
}

impl Db for FaultyDb<'_> {
    async fn execute(&self, sql: &str, params: &[SqlValue]) -> Result<u64, StoreError> {
        let late = self.fault()?;
        let r = self.inner.execute(sql, params).await;
        if late {
            return Err(injected(self.calls.get() - 1));
        }
        r
    }

    async fn batch(&self, statements: &[Statement<'_>]) -> Result<Vec<u64>, StoreError> {
        let late = self.fault()?;
        let r = self.inner.batch(statements).await;
        if late {
            return Err(injected(self.calls.get() - 1));
        }
        r
    }

    async fn query(&self, sql: &str, params: &[SqlValue]) -> Result<Vec<Row>, StoreError> {
        self.inner.query(sql, params).await
    }
}

/// Issue 19's fault injection for KV: reads of keys under a prefix throw (as a KV outage does)
/// or return bytes that are no stored value; and the writes (`put`, `delete`) that `fail_writes`
/// names, counted from 0, throw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KvFault {
    Throw,
    Corrupt,
}

pub struct FaultyKv<'a> {
    pub inner: &'a flowcp::store::MemoryKv,
    pub read_fault: Option<(String, KvFault)>,
    pub fail_writes: Vec<usize>,
    pub writes: std::cell::Cell<usize>,
    /// Writes of keys under this prefix are neither counted nor failed ("": none spared).
    pub spare: &'static str,
    /// The failing write is made, then reported failed.
    pub late: bool,
}

impl<'a> FaultyKv<'a> {
    /// Reads under `prefix` meet `fault`.
    pub fn reads(inner: &'a flowcp::store::MemoryKv, prefix: &str, fault: KvFault) -> Self {
        FaultyKv {
            inner,
            read_fault: Some((prefix.to_string(), fault)),
            fail_writes: Vec::new(),
            writes: Default::default(),
            spare: "",
            late: false,
        }
    }

    /// The writes `fail` names throw.
    pub fn writes(inner: &'a flowcp::store::MemoryKv, fail: &[usize]) -> Self {
        FaultyKv {
            inner,
            read_fault: None,
            fail_writes: fail.to_vec(),
            writes: Default::default(),
            spare: "",
            late: false,
        }
    }

    /// Whether this write fails; `Err` at once unless the fault is `late`.
    fn write_fault(&self, key: &str) -> Result<bool, StoreError> {
        if !self.spare.is_empty() && key.starts_with(self.spare) {
            return Ok(false);
        }
        let n = self.writes.replace(self.writes.get() + 1);
        if self.fail_writes.contains(&n) {
            if !self.late {
                return Err(StoreError::Backend(format!("KV PUT failed (injected, write {n})")));
            }
            return Ok(true);
        }
        Ok(false)
    }
}

impl flowcp::store::Kv for FaultyKv<'_> {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        match &self.read_fault {
            Some((prefix, KvFault::Throw)) if key.starts_with(prefix.as_str()) => {
                Err(StoreError::Backend("KV GET failed (injected)".into()))
            }
            Some((prefix, KvFault::Corrupt)) if key.starts_with(prefix.as_str()) => {
                Ok(Some(b"\xff\x00{\"not\": json".to_vec()))
            }
            _ => self.inner.get(key).await,
        }
    }
    async fn put(&self, key: &str, value: &[u8], ttl: Option<u64>) -> Result<(), StoreError> {
        let late = self.write_fault(key)?;
        self.inner.put(key, value, ttl).await?;
        if late {
            return Err(StoreError::Backend("KV PUT failed (injected, after the write)".into()));
        }
        Ok(())
    }
    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let late = self.write_fault(key)?;
        self.inner.delete(key).await?;
        if late {
            return Err(StoreError::Backend("KV PUT failed (injected, after the write)".into()));
        }
        Ok(())
    }
}

fn hex_string(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// One scripted answer of [`ScriptedHttp`].
pub type Scripted = Result<HttpResponse, HttpError>;

/// An HTTP port that answers from a script, in order, and records every request. It is held to
/// what the Worker's `FetchHttp` really does: a body over `max_body` comes back cut and marked
/// `truncated`; a GET or HEAD with a body fails as the `Request` constructor does; header names
/// sent twice are merged into one `a, b` value as JS `Headers` does. An empty script answers
/// 200 `{}`.
#[derive(Default)]
pub struct ScriptedHttp {
    pub script: RefCell<VecDeque<Scripted>>,
    pub seen: RefCell<Vec<HttpRequest>>,
    /// Answers first when it returns one (a fake service by URL, such as a fake GitHub).
    pub router: RefCell<Option<Router>>,
}

/// A fake service behind [`ScriptedHttp`]: an answer for the requests it serves.
pub type Router = Box<dyn Fn(&HttpRequest) -> Option<Scripted>>;

impl ScriptedHttp {
    pub fn new(script: impl IntoIterator<Item = Scripted>) -> Self {
        ScriptedHttp { script: RefCell::new(script.into_iter().collect()), ..Default::default() }
    }

    pub fn push(&self, answer: Scripted) {
        self.script.borrow_mut().push_back(answer);
    }
}

/// A response with a status, headers and a body.
pub fn resp(status: u16, headers: &[(&str, &str)], body: &[u8]) -> Scripted {
    Ok(HttpResponse {
        status,
        headers: headers.iter().map(|(k, v)| (k.to_ascii_lowercase(), v.to_string())).collect(),
        body: body.to_vec(),
        truncated: false,
    })
}

/// Header list as JS `Headers` keeps it: lowercase names, repeated names joined with ", ".
pub fn js_headers(headers: &[(String, String)]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for (k, v) in headers {
        let k = k.to_ascii_lowercase();
        match out.iter_mut().find(|(n, _)| *n == k) {
            Some((_, existing)) => {
                existing.push_str(", ");
                existing.push_str(v);
            }
            None => out.push((k, v.clone())),
        }
    }
    out
}

impl Http for ScriptedHttp {
    async fn send(&self, req: &HttpRequest, max_body: usize) -> Result<HttpResponse, HttpError> {
        let mut seen = req.clone();
        seen.headers = js_headers(&req.headers);
        self.seen.borrow_mut().push(seen);
        if req.body.is_some() && matches!(req.method.to_ascii_uppercase().as_str(), "GET" | "HEAD") {
            return Err(HttpError::Network("invalid URL or options for Request.".into()));
        }
        let routed = self.router.borrow().as_ref().and_then(|r| r(req));
        let answer = match routed {
            Some(a) => a,
            None => self.script.borrow_mut().pop_front().unwrap_or_else(|| resp(200, &[], b"{}")),
        };
        answer.map(|mut r| {
            if r.body.len() > max_body {
                r.body.truncate(max_body);
                r.truncated = true;
            }
            r
        })
    }
}

/// Publishes `m` (a whole manifest) into `kv` as FlowCP does: its format-3 parts, then the head.
/// The live pointer is the caller's.
pub fn put_manifest(kv: &flowcp::store::MemoryKv, m: &flowcp::manifest::Manifest) {
    use flowcp::store::Kv;
    let parts = flowcp::mcp::shards::encode(m).expect("the manifest encodes");
    flowcp::store::block_on(async {
        for (key, bytes) in parts {
            kv.put(&key, &bytes, None).await.expect("KV put");
        }
    });
}
