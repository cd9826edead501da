//! Test support: a real SQLite database with FlowCP's migrations applied, behind the `Db` port.

use flowcp::store::{Db, Row, SqlValue, StoreError};
use rusqlite::types::{Value as SqlV, ValueRef};

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
        let params: Vec<SqlV> = params.iter().map(to_sql).collect();
        self.conn
            .execute(sql, rusqlite::params_from_iter(params))
            .map(|n| n as u64)
            .map_err(|e| StoreError::Backend(e.to_string()))
    }

    async fn query(&self, sql: &str, params: &[SqlValue]) -> Result<Vec<Row>, StoreError> {
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

fn hex_string(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
