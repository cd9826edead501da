//! D1 and KV behind the storage ports (`D1Db`, `KvStorePort`).

use wasm_bindgen::JsValue;
use worker::{D1Database, Env, KvStore};

use crate::error::ApiError;
use crate::store::{Db, Kv, Row, SqlValue, StoreError};

pub struct D1Db(D1Database);

impl D1Db {
    pub fn new(env: &Env, binding: &str) -> Result<Self, ApiError> {
        env.d1(binding).map(D1Db).map_err(|e| {
            ApiError::unavailable("not_configured", "The database binding is missing.").with_internal(e.to_string())
        })
    }
}

fn js(v: &SqlValue) -> JsValue {
    match v {
        SqlValue::Null => JsValue::null(),
        // D1 numbers are doubles; callers keep integers within 2^53.
        SqlValue::Integer(i) => JsValue::from_f64(*i as f64),
        SqlValue::Real(f) => JsValue::from_f64(*f),
        SqlValue::Text(s) => JsValue::from_str(s),
    }
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

impl Db for D1Db {
    async fn execute(&self, sql: &str, params: &[SqlValue]) -> Result<u64, StoreError> {
        let args: Vec<JsValue> = params.iter().map(js).collect();
        let result = self.0.prepare(sql).bind(&args).map_err(backend)?.run().await.map_err(backend)?;
        if let Some(err) = result.error() {
            return Err(StoreError::Backend(err));
        }
        Ok(result.meta().map_err(backend)?.and_then(|m| m.changes).unwrap_or(0) as u64)
    }

    async fn query(&self, sql: &str, params: &[SqlValue]) -> Result<Vec<Row>, StoreError> {
        let args: Vec<JsValue> = params.iter().map(js).collect();
        let result = self.0.prepare(sql).bind(&args).map_err(backend)?.all().await.map_err(backend)?;
        if let Some(err) = result.error() {
            return Err(StoreError::Backend(err));
        }
        result.results::<Row>().map_err(backend)
    }
}

pub struct KvStorePort(KvStore);

impl KvStorePort {
    pub fn new(env: &Env, binding: &str) -> Result<Self, ApiError> {
        env.kv(binding).map(KvStorePort).map_err(|e| {
            ApiError::unavailable("not_configured", "The KV binding is missing.").with_internal(e.to_string())
        })
    }
}

impl Kv for KvStorePort {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.0.get(key).bytes().await.map_err(backend)
    }

    async fn put(&self, key: &str, value: &[u8], ttl_seconds: Option<u64>) -> Result<(), StoreError> {
        let mut put = self.0.put_bytes(key, value).map_err(backend)?;
        if let Some(ttl) = ttl_seconds {
            put = put.expiration_ttl(ttl.max(60));
        }
        put.execute().await.map_err(backend)
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.0.delete(key).await.map_err(backend)
    }
}
