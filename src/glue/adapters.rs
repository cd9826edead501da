//! D1, KV and fetch behind the ports (`D1Db`, `KvStorePort`, `FetchHttp`).

use wasm_bindgen::{JsCast, JsValue};
use worker::wasm_bindgen_futures::JsFuture;
use worker::{js_sys, AbortController, D1Database, Delay, Env, Headers, KvStore, Method, RequestInit, RequestRedirect};

use crate::error::{ApiError, ErrorCode};
use crate::net::{Http, HttpError, HttpRequest, HttpResponse};
use crate::store::{Db, Kv, Row, SqlValue, Statement, StoreError};

pub struct D1Db(D1Database);

impl D1Db {
    pub fn new(env: &Env, binding: &str) -> Result<Self, ApiError> {
        env.d1(binding).map(D1Db).map_err(|e| {
            ApiError::unavailable(ErrorCode::NotConfigured, "The database binding is missing.")
                .with_internal(e.to_string())
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

    async fn batch(&self, statements: &[Statement<'_>]) -> Result<Vec<u64>, StoreError> {
        let mut prepared = Vec::with_capacity(statements.len());
        for (sql, params) in statements {
            let args: Vec<JsValue> = params.iter().map(js).collect();
            prepared.push(self.0.prepare(*sql).bind(&args).map_err(backend)?);
        }
        let results = self.0.batch(prepared).await.map_err(backend)?;
        let mut changed = Vec::with_capacity(results.len());
        for r in results {
            if let Some(err) = r.error() {
                return Err(StoreError::Backend(err));
            }
            changed.push(r.meta().map_err(backend)?.and_then(|m| m.changes).unwrap_or(0) as u64);
        }
        Ok(changed)
    }
}

/// D1 bound on first use: the MCP hot path needs the database only for `user_key` servers, so
/// other requests neither look the binding up nor fail when it is missing.
pub struct LazyD1<'a> {
    env: &'a Env,
    binding: &'static str,
    db: std::cell::OnceCell<Result<D1Db, String>>,
}

impl<'a> LazyD1<'a> {
    pub fn new(env: &'a Env, binding: &'static str) -> Self {
        LazyD1 { env, binding, db: std::cell::OnceCell::new() }
    }

    fn db(&self) -> Result<&D1Db, StoreError> {
        self.db
            .get_or_init(|| D1Db::new(self.env, self.binding).map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|e| StoreError::Backend(e.clone()))
    }
}

impl Db for LazyD1<'_> {
    async fn execute(&self, sql: &str, params: &[SqlValue]) -> Result<u64, StoreError> {
        self.db()?.execute(sql, params).await
    }
    async fn query(&self, sql: &str, params: &[SqlValue]) -> Result<Vec<Row>, StoreError> {
        self.db()?.query(sql, params).await
    }
    async fn batch(&self, statements: &[Statement<'_>]) -> Result<Vec<u64>, StoreError> {
        self.db()?.batch(statements).await
    }
}

pub struct KvStorePort(KvStore);

impl KvStorePort {
    pub fn new(env: &Env, binding: &str) -> Result<Self, ApiError> {
        env.kv(binding).map(KvStorePort).map_err(|e| {
            ApiError::unavailable(ErrorCode::NotConfigured, "The KV binding is missing.").with_internal(e.to_string())
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

/// Outbound HTTP through the Workers `fetch`: redirects are never followed (the caller decides),
/// the call is aborted after the request's timeout, and at most `max_body` bytes are kept.
pub struct FetchHttp;

/// [`crate::net::whole_body_len`] of an upstream answer's headers.
fn whole_body_len(headers: &[(String, String)]) -> Option<usize> {
    let get = |name: &str| headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str());
    crate::net::whole_body_len(get("content-length"), get("transfer-encoding"), get("content-encoding"))
}

impl Http for FetchHttp {
    async fn pause(&self, ms: u32) {
        Delay::from(std::time::Duration::from_millis(u64::from(ms))).await;
    }

    async fn send(&self, req: &HttpRequest, max_body: usize) -> Result<HttpResponse, HttpError> {
        let headers = Headers::new();
        for (k, v) in &req.headers {
            headers.append(k, v).map_err(|e| HttpError::Network(format!("header {k}: {e}")))?;
        }
        let mut init = RequestInit::new();
        init.with_method(Method::from(req.method.to_ascii_uppercase()))
            .with_headers(headers)
            .with_redirect(RequestRedirect::Manual);
        if let Some(body) = &req.body {
            init.with_body(Some(js_sys::Uint8Array::from(body.as_slice()).into()));
        }
        let request = worker::Request::new_with_init(&req.url, &init).map_err(|e| HttpError::Network(e.to_string()))?;
        let controller = AbortController::default();
        let signal = controller.signal();
        let call = async {
            let net = |e: JsValue| HttpError::Network(worker::Error::from(e).to_string());
            // The global fetch, as `worker::Fetch` calls it, but keeping the runtime's response:
            // its body can then be read whole in one call (below).
            let init = worker::web_sys::RequestInit::new();
            init.set_signal(Some(&signal));
            let global: worker::web_sys::WorkerGlobalScope = js_sys::global().unchecked_into();
            let raw = JsFuture::from(global.fetch_with_request_and_init(request.inner(), &init)).await.map_err(net)?;
            let raw: worker::web_sys::Response = raw.dyn_into().map_err(net)?;
            let status = raw.status();
            let headers: Vec<(String, String)> = Headers(raw.headers()).entries().collect();
            let mut body = Vec::new();
            let mut truncated = false;
            if whole_body_len(&headers).is_some_and(|n| n <= max_body) {
                // A declared length within the cap (plain, not chunked, not compressed): one read
                // of the whole body, not a wasm<->JS round per chunk. It is still cut to the cap.
                let buf = JsFuture::from(raw.array_buffer().map_err(net)?).await.map_err(net)?;
                body = js_sys::Uint8Array::new(&buf).to_vec();
                if body.len() > max_body {
                    body.truncate(max_body);
                    truncated = true;
                }
            } else if let Ok(mut stream) = worker::Response::from(raw).stream() {
                // Otherwise read incrementally and stop at the cap: a huge answer never sits in
                // memory whole.
                use futures_util::StreamExt;
                while let Some(chunk) = stream.next().await {
                    let chunk = chunk.map_err(|e| HttpError::Network(e.to_string()))?;
                    let room = max_body - body.len();
                    if chunk.len() > room {
                        body.extend_from_slice(&chunk[..room]);
                        truncated = true;
                        break;
                    }
                    body.extend_from_slice(&chunk);
                }
            }
            Ok(HttpResponse { status, headers, body, truncated })
        };
        let timeout = Delay::from(std::time::Duration::from_millis(u64::from(req.timeout_ms)));
        futures_util::pin_mut!(call);
        futures_util::pin_mut!(timeout);
        match futures_util::future::select(call, timeout).await {
            futures_util::future::Either::Left((result, _)) => {
                if matches!(&result, Ok(r) if r.truncated) {
                    controller.abort(); // the rest of the transfer is not wanted
                }
                result
            }
            futures_util::future::Either::Right(((), _)) => {
                controller.abort();
                Err(HttpError::Timeout)
            }
        }
    }
}
