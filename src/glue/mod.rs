//! The Workers runtime glue (wasm32 only, and thin): `#[event(fetch)]`, `#[event(scheduled)]`,
//! routing, and the D1/KV adapters of the storage ports. Everything here only translates
//! between the runtime and core code; no product logic lives in this module.

mod adapters;

use worker::{
    console_error, console_log, event, Context, Date, Delay, Env, Method, Request, Response, ScheduleContext,
    ScheduledEvent,
};

use crate::api::{self, health, JsonResponse, Request as CoreRequest, Response as CoreResponse, Services};
use crate::config::{self, Secrets};
use crate::error::{check_body_len, check_declared_len, limits, ApiError, ErrorCode};
use crate::jobs::retention::{self, RetentionPolicy};
use crate::mcp::server as mcp_server;
use crate::mcp::transport;
use crate::net::FetchPolicy;
use crate::redact::{self, Redactor};
use crate::store::audit;
use adapters::{D1Db, FetchHttp, KvStorePort, LazyD1};

pub const D1_BINDING: &str = "DB";
pub const KV_BINDING: &str = "KV";

fn now_ms() -> i64 {
    Date::now().as_millis() as i64
}

#[event(fetch)]
async fn fetch(raw: worker::web_sys::Request, env: Env, ctx: Context) -> worker::Result<Response> {
    console_error_panic_hook::set_once();
    let req = without_cf(raw);
    let started = now_ms();
    let method = req.method();
    let path = req.path();
    // A handle on the request's headers (a JS reference, not a copy): its own secrets (access
    // key, cookie, CSRF token) are read from it only when a line is logged.
    let headers = worker::Headers(req.headers().0.clone());
    let (response, internal) = match handle(req, &env, &ctx).await {
        Ok(answer) => answer,
        Err(e) => (error_response(&e), e.internal.clone().or_else(|| (e.status >= 500).then(|| e.message.clone()))),
    };
    let status = response.status_code();
    // Errors are always logged. Other requests only with FLOWCP_LOG_REQUESTS=1: the platform
    // records every invocation already, and under wrangler dev each console line costs ~2 ms.
    let settings = SETTINGS.with(|c| c.borrow().clone());
    if internal.is_some() || settings.as_ref().is_some_and(|s| s.log_requests) {
        let sensitive: Vec<(&str, String)> = redact::SENSITIVE_HEADERS
            .iter()
            .filter_map(|name| headers.get(name).ok().flatten().map(|v| (*name, v)))
            .collect();
        let sensitive = sensitive.iter().map(|(k, v)| (*k, v.as_str()));
        let redactor = match &settings {
            Some(s) => s.redactor.with_request(sensitive),
            None => Redactor::default().with_request(sensitive),
        };
        let line = redact::log_line(method.as_ref(), &path, status, now_ms() - started, internal.as_deref(), &redactor);
        if internal.is_some() {
            console_error!("{}", line);
        } else {
            console_log!("{}", line);
        }
    }
    Ok(response)
}

thread_local! {
    /// `{ value: undefined }`, the property descriptor [`without_cf`] defines.
    static NO_CF: worker::js_sys::Object = {
        let d = worker::js_sys::Object::new();
        let _ = worker::js_sys::Reflect::set(&d, &"value".into(), &worker::wasm_bindgen::JsValue::UNDEFINED);
        d
    };
}

/// The request as `worker::Request`, without reading `request.cf`: the conversion reads it
/// eagerly, and the runtime builds that object anew for every request (6% of a `tools/call`'s
/// isolate time in issue 18's profile). FlowCP never uses it (the client address comes from
/// `CF-Connecting-IP`), so it is shadowed by an own `undefined` property first. Should the
/// runtime refuse the definition, the conversion reads it as before.
fn without_cf(raw: worker::web_sys::Request) -> Request {
    NO_CF.with(|d| {
        let _ = worker::js_sys::Reflect::define_property(&raw, &"cf".into(), d);
    });
    Request::from(raw)
}

/// A response and, when it is a failure on our side, the detail for the operator log.
type Answer = (Response, Option<String>);

async fn handle(mut req: Request, env: &Env, ctx: &Context) -> Result<Answer, ApiError> {
    let settings = settings(env)?;
    // A global ceiling before any body is read; routes apply their own tighter limits.
    let declared = req.headers().get("content-length").ok().flatten();
    check_declared_len(declared.as_deref(), limits::DOCUMENT)?;

    let path = req.path();
    if path == "/healthz" {
        return match req.method() {
            Method::Get | Method::Head => {
                let authorization = req.headers().get("authorization").ok().flatten();
                if health::probe_kind(authorization.as_deref(), settings.operator_token.as_deref())?
                    == health::Probe::Liveness
                {
                    return Ok((json_response(&health::liveness())?, None));
                }
                let db = D1Db::new(env, D1_BINDING)?;
                let kv = KvStorePort::new(env, KV_BINDING)?;
                let (mut resp, problems) = health::check(&db, &kv, now_ms(), &crate::build_version()).await;
                let redactor = &settings.redactor;
                for p in problems {
                    console_error!("healthz: {}", redactor.text(&p));
                }
                // Linear memory only grows, so this is the isolate's wasm high-water mark (the
                // Worker limit is 128 MB for wasm memory and JS heap together).
                resp.body["memory"] = serde_json::json!({ "wasm_bytes": core::arch::wasm32::memory_size(0) * 65_536 });
                Ok((json_response(&resp)?, None))
            }
            _ => Err(ApiError::method_not_allowed()),
        };
    }
    if let Some(server_id) = path.strip_prefix("/mcp/") {
        return mcp(&mut req, env, ctx, &settings, server_id).await;
    }
    if path == crate::mcp::management::PATH {
        return management_mcp(&mut req, env, ctx, &settings).await;
    }
    if path == "/ops/reseal" {
        return Ok((reseal(&req, env, &settings).await?, None));
    }
    if path == "/ops/plan" {
        return Ok((set_plan(&mut req, env, &settings).await?, None));
    }
    if path == "/.well-known/security.txt" {
        let url =
            req.url().map_err(|e| ApiError::bad_request("The request URL is invalid.").with_internal(e.to_string()))?;
        let host = req.headers().get("host").ok().flatten().unwrap_or_else(|| url.host_str().unwrap_or("").to_string());
        let origin = public_origin(&url, &host, &settings).ok_or_else(ApiError::not_found)?;
        let body = crate::security_txt::render(settings.security_contact.as_deref(), &origin, now_ms());
        let mut resp = Response::ok(body).map_err(|e| ApiError::internal(e.to_string()))?;
        let _ = resp.headers_mut().set("content-type", "text/plain; charset=utf-8");
        return Ok((resp, None));
    }
    if path == "/.well-known/oauth-protected-resource/mcp" {
        let url =
            req.url().map_err(|e| ApiError::bad_request("The request URL is invalid.").with_internal(e.to_string()))?;
        let host = req.headers().get("host").ok().flatten().unwrap_or_else(|| url.host_str().unwrap_or("").to_string());
        let origin = public_origin(&url, &host, &settings).ok_or_else(ApiError::not_found)?;
        let body = crate::mcp::management::protected_resource_metadata(&origin);
        let mut resp = json_response(&JsonResponse { status: 200, body })?;
        let _ = resp.headers_mut().set("access-control-allow-origin", "*");
        return Ok((resp, None));
    }
    if let Some(server_id) = path.strip_prefix("/.well-known/oauth-protected-resource/mcp/") {
        return Ok((protected_resource(&req, env, server_id).await?, None));
    }
    // The bookshop API of the local demo exists only in development (FLOWCP_ENV=development).
    if path.starts_with("/demo/") && settings.development {
        let url =
            req.url().map_err(|e| ApiError::bad_request("The request URL is invalid.").with_internal(e.to_string()))?;
        let r = to_core_request(&mut req, &url).await?;
        check_body_len(r.body.len(), limits::API_JSON)?;
        let origin = url.origin().ascii_serialization();
        let (status, value) = crate::demo::handle(&r.method, &r.path, &r.query, &r.body, &origin);
        return Ok((json_response(&JsonResponse { status, body: value })?, None));
    }
    // The local outbox of `make dev` and the e2e tests: what FlowCP "sent" to an address.
    if path == "/dev/outbox" && settings.development && settings.mailer == crate::mail::Mailer::Outbox {
        let url =
            req.url().map_err(|e| ApiError::bad_request("The request URL is invalid.").with_internal(e.to_string()))?;
        // Only on this machine, even in development: a deployment left in development mode
        // must not publish every mailed link.
        if !matches!(url.host_str(), Some("127.0.0.1" | "localhost" | "[::1]")) {
            return Err(ApiError::not_found());
        }
        let to = url.query_pairs().find(|(k, _)| k == "to").map(|(_, v)| v.into_owned()).unwrap_or_default();
        let kv = KvStorePort::new(env, KV_BINDING)?;
        let messages = crate::mail::outbox(&kv, &to).await?;
        let body = serde_json::json!({ "to": to, "messages": messages });
        return Ok((json_response(&JsonResponse { status: 200, body })?, None));
    }
    if path.starts_with("/git/") {
        return git(&mut req, env, ctx, &settings).await;
    }
    if path.starts_with("/api/") || path.starts_with("/oauth/") || crate::oauth::http::is_metadata_path(&path) {
        let db = D1Db::new(env, D1_BINDING)?;
        let kv = KvStorePort::new(env, KV_BINDING)?;
        let url =
            req.url().map_err(|e| ApiError::bad_request("The request URL is invalid.").with_internal(e.to_string()))?;
        let origin = url.origin().ascii_serialization();
        let host = req.headers().get("host").ok().flatten().unwrap_or_else(|| url.host_str().unwrap_or("").to_string());
        // Emailed links: https and the bare host in production (never a scheme or port a
        // request chose); the request's own origin in development (http://127.0.0.1:8787).
        let link_origin = public_origin(&url, &host, &settings);
        let core_req = to_core_request(&mut req, &url).await?;
        let svc = services(&db, &kv, &settings, origin, link_origin);
        if !path.starts_with("/api/") {
            // The authorization server: its issuer is this origin only on a host this
            // deployment serves (a forged Host must not mint another issuer).
            if svc.link_origin.is_none() {
                return Err(ApiError::not_found());
            }
            let svc = Services { origin: svc.link_origin.clone().unwrap_or_default(), ..svc };
            // Registration, and an authorize request naming a client by its metadata document
            // (FlowCP fetches it), share the per-address and global limits.
            let policy = FetchPolicy { allow_loopback: settings.allow_local_fetch };
            let fetches_document = path == "/oauth/authorize"
                && core_req
                    .query
                    .iter()
                    .any(|(k, v)| k == "client_id" && crate::oauth::cimd::is_document_url(v, policy));
            let limited = (path == "/oauth/register" && core_req.method == "POST") || fetches_document;
            if limited && settings.rate_limits {
                let addr = crate::auth::throttle::address_key(core_req.client_addr.as_deref().unwrap_or(""));
                if let Some(resp) = registration_limited(env, &addr).await {
                    return Ok((from_core_response(resp)?, None));
                }
            }
            let signs_in = path.starts_with(crate::oauth::http::CALLBACK_PREFIX)
                || (path.starts_with(crate::oauth::portal::PREFIX) && path.ends_with("/sign-in"));
            if signs_in && settings.rate_limits {
                let addr = crate::auth::throttle::address_key(core_req.client_addr.as_deref().unwrap_or(""));
                if let Some(retry_after) = over_limit(env, &[(SIGN_IN_LIMITER, format!("signin:{addr}"))], b"").await {
                    let e = ApiError::new(
                        crate::error::ErrorCode::TooManyAttempts,
                        "Too many sign-ins from this address; try again in a minute.",
                    );
                    let resp = crate::api::Response::from_error(&e).with_header("retry-after", retry_after.to_string());
                    return Ok((from_core_response(resp)?, None));
                }
            }
            let resp = crate::oauth::http::handle(&svc, &core_req).await.ok_or_else(ApiError::not_found)?;
            return Ok((from_core_response(resp)?, None));
        }
        let resp = api::handle(&svc, &core_req).await?;
        return Ok((from_core_response(resp)?, None));
    }
    Err(ApiError::not_found())
}

/// The handlers' ports and settings for a request answered at `origin`.
fn services<'a>(
    db: &'a D1Db,
    kv: &'a KvStorePort,
    settings: &'a Settings,
    origin: String,
    link_origin: Option<String>,
) -> Services<'a, D1Db, KvStorePort, FetchHttp> {
    Services {
        db,
        kv,
        http: &FetchHttp,
        fetch_policy: FetchPolicy { allow_loopback: settings.allow_local_fetch },
        secrets: &settings.secrets,
        mailer: &settings.mailer,
        now_ms: now_ms(),
        clock: now_ms,
        origin,
        link_origin,
        default_plan: settings.default_plan,
        git: settings.git.as_ref(),
    }
}

/// `/git/...`: the Git provider's OAuth callback and webhook deliveries (issue 17), on a host
/// this deployment serves. A push to a followed branch is answered at once and synced after the
/// response (`wait_until`): providers wait about 10 s for an answer.
async fn git(
    req: &mut Request,
    env: &Env,
    ctx: &Context,
    settings: &std::rc::Rc<Settings>,
) -> Result<Answer, ApiError> {
    let url =
        req.url().map_err(|e| ApiError::bad_request("The request URL is invalid.").with_internal(e.to_string()))?;
    let host = req.headers().get("host").ok().flatten().unwrap_or_else(|| url.host_str().unwrap_or("").to_string());
    let origin = public_origin(&url, &host, settings).ok_or_else(ApiError::not_found)?;
    let core_req = to_core_request(req, &url).await?;
    let db = D1Db::new(env, D1_BINDING)?;
    let kv = KvStorePort::new(env, KV_BINDING)?;
    let svc = services(&db, &kv, settings, origin.clone(), Some(origin.clone()));
    let (resp, sync) = api::git::public(&svc, &core_req).await?;
    if let Some(source) = sync {
        let (env, settings) = (env.clone(), settings.clone());
        ctx.wait_until(async move {
            let (Ok(db), Ok(kv)) = (D1Db::new(&env, D1_BINDING), KvStorePort::new(&env, KV_BINDING)) else { return };
            let svc = services(&db, &kv, &settings, origin.clone(), Some(origin));
            if let Err(e) = api::git_sync::sync(&svc, &source, api::git_sync::Trigger::Webhook).await {
                let redactor = &settings.redactor;
                console_error!("git sync of {} failed: {}", source.id, redactor.text(&e.internal.unwrap_or(e.message)));
            }
        });
    }
    Ok((from_core_response(resp)?, None))
}

// TODO-security(issue 11 review): `/ops` shares the deep `/healthz` token; give operations a
// token of their own so monitoring never holds a key-rotation capability.
/// An `/ops` request: its method, then the operator token (fails closed); answers its URL.
fn operator_request(req: &Request, method: Method, settings: &Settings) -> Result<worker::Url, ApiError> {
    if req.method() != method {
        return Err(ApiError::method_not_allowed());
    }
    let authorization = req.headers().get("authorization").ok().flatten();
    health::require_operator(authorization.as_deref(), settings.operator_token.as_deref())?;
    req.url().map_err(|e| ApiError::bad_request("The request URL is invalid.").with_internal(e.to_string()))
}

/// `POST /ops/reseal?cursor=&limit=&dry_run=1` (operator token): one page of the re-seal job
/// (docs/operations.md, "Key rotation").
async fn reseal(req: &Request, env: &Env, settings: &Settings) -> Result<Response, ApiError> {
    let url = operator_request(req, Method::Post, settings)?;
    let param = |name: &str| url.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned());
    let after = match param("cursor") {
        None => String::new(),
        Some(c) => crate::service::reseal::resume_after(&c)
            .ok_or_else(|| ApiError::bad_request("The cursor is not one this job issued."))?,
    };
    let limit = match param("limit") {
        None => crate::service::reseal::DEFAULT_PAGE,
        Some(l) => l.parse().map_err(|_| ApiError::bad_request("`limit` must be a number."))?,
    };
    let dry_run = matches!(param("dry_run").as_deref(), Some("1" | "true"));
    let db = D1Db::new(env, D1_BINDING)?;
    let kv = KvStorePort::new(env, KV_BINDING)?;
    let report =
        crate::service::reseal::run(&db, &kv, &settings.secrets.keyring, &after, limit, dry_run, now_ms()).await?;
    json_response(&JsonResponse { status: 200, body: serde_json::to_value(&report).unwrap_or_default() })
}

/// `PUT /ops/plan?workspace=<id>` (operator token): sets a workspace's plan and limit overrides
/// (docs/operations.md, "Plans"); answers the workspace's plan view.
async fn set_plan(req: &mut Request, env: &Env, settings: &Settings) -> Result<Response, ApiError> {
    let url = operator_request(req, Method::Put, settings)?;
    let ws = url
        .query_pairs()
        .find(|(k, _)| k == "workspace")
        .map(|(_, v)| v.into_owned())
        .filter(|w| crate::vocab::is_plain_id(w, 64))
        .ok_or_else(|| ApiError::bad_request("`workspace` must name a workspace id."))?;
    let body = read_body(req, crate::error::limits::API_JSON).await?;
    let db = D1Db::new(env, D1_BINDING)?;
    let view = api::workspaces::set_plan(&db, &ws, &body, settings.default_plan, now_ms())
        .await?
        .ok_or_else(ApiError::not_found)?;
    // The operator's change, for the record (no secret is in a plan).
    console_log!(
        "ops: plan of {ws} set to {} (limits: {})",
        view.plan.map_or("the default", crate::vocab::Plan::as_str),
        serde_json::to_string(&view.limits).unwrap_or_default()
    );
    json_response(&JsonResponse { status: 200, body: serde_json::to_value(&view).unwrap_or_default() })
}

/// This deployment's origin as clients must see it (emailed links, the OAuth issuer, token
/// audiences, protected-resource metadata): https and the bare host in production (never a
/// scheme or port a request chose; a trailing dot dropped), the request's own origin in
/// development (http://127.0.0.1:8787). `None` when the Host is not one this deployment serves.
fn public_origin(url: &worker::Url, host: &str, settings: &Settings) -> Option<String> {
    if !transport::host_allowed(host, &settings.allowed_hosts) {
        return None;
    }
    Some(match url.host_str() {
        Some(h) if !settings.development => format!("https://{}", h.strip_suffix('.').unwrap_or(h)),
        _ => url.origin().ascii_serialization(),
    })
}

/// A JSON-RPC refusal of an MCP request before the runtime (no id: none was read).
fn mcp_refusal(status: u16, message: &str, headers: Vec<(String, String)>) -> Result<Answer, ApiError> {
    let code = if status == 429 { crate::mcp::jsonrpc::RATE_LIMITED } else { crate::mcp::jsonrpc::INVALID_REQUEST };
    let body = crate::mcp::jsonrpc::error(serde_json::Value::Null, code, message);
    Ok((from_core_response(CoreResponse { status, body: Some(body), headers })?, None))
}

/// 429 with the seconds to wait.
fn too_many(message: &str, retry_after: u32) -> Result<Answer, ApiError> {
    mcp_refusal(429, message, vec![("retry-after".to_string(), retry_after.to_string())])
}

/// `POST /mcp/<server id>`: the MCP runtime. Audit events are written after the response.
async fn mcp(
    req: &mut Request,
    env: &Env,
    ctx: &Context,
    settings: &Settings,
    server_id: &str,
) -> Result<Answer, ApiError> {
    if !crate::vocab::is_plain_id(server_id, 64) {
        return Err(ApiError::not_found());
    }
    let kv = KvStorePort::new(env, KV_BINDING)?;
    let url =
        req.url().map_err(|e| ApiError::bad_request("The request URL is invalid.").with_internal(e.to_string()))?;
    let headers: Vec<(String, String)> = req.headers().entries().collect();
    // DNS-rebinding defence: only the hosts this deployment answers for (FLOWCP_ALLOWED_HOSTS).
    let host = req.headers().get("host").ok().flatten().unwrap_or_else(|| url.host_str().unwrap_or("").to_string());
    // The allow-listed public origin: the same one the OAuth issuer and token audiences use.
    let Some(origin) = public_origin(&url, &host, settings) else {
        return mcp_refusal(403, "Forbidden: this host is not served here.", Vec::new());
    };
    let method = req.method().to_string();
    let body = if method == "POST" { read_body(req, limits::MCP_MESSAGE).await? } else { Vec::new() };
    if settings.rate_limits {
        if let Some(retry_after) = rate_limited(env, server_id, &headers, &body).await {
            return too_many(
                "Too many requests to this server: slow down and retry after the Retry-After seconds.",
                retry_after,
            );
        }
    }
    let clock = now_ms;
    let cache = MANIFEST_CACHE.with(std::rc::Rc::clone);
    let db = LazyD1::new(env, D1_BINDING);
    let key_users = crate::oauth::keys::isolate_cache();
    let fetch_policy = FetchPolicy { allow_loopback: settings.allow_local_fetch };
    let gate = crate::oauth::keys::Gate {
        db: &db,
        kv: &kv,
        http: &FetchHttp,
        keyring: &settings.secrets.keyring,
        secrets: settings.secrets.token_secrets.as_ref(),
        fetch_policy,
        origin: &origin,
        clock: &clock,
        cache: &key_users,
        admitted: Default::default(),
        user: Default::default(),
        default_plan: settings.default_plan,
    };
    let quota_cache = crate::plans::isolate_cache();
    let quota = crate::plans::Gate {
        db: &db,
        default_plan: settings.default_plan,
        clock: &clock,
        cache: &quota_cache,
        failure: Default::default(),
    };
    let rt = mcp_server::Runtime {
        kv: &kv,
        cache: &cache,
        http: &FetchHttp,
        keyring: &settings.secrets.keyring,
        fetch_policy,
        origin: origin.clone(),
        clock: &clock,
        upstream_timeout_ms: settings.upstream_timeout_ms,
        key_gate: Some(&gate),
        quota: Some(&quota),
    };
    let out =
        mcp_server::handle(&rt, server_id, &mcp_server::McpRequest { method: &method, headers: &headers, body: &body })
            .await;
    if let Some(e) = quota.failure.take() {
        let redactor = &settings.redactor;
        console_error!("quota counters of {server_id} not read (calls let through): {}", redactor.text(&e));
    }
    mcp_answer(out, env, ctx, settings)
}

/// `POST /mcp`: FlowCP's own MCP server (issue 15). Its tools call the owner API in-process, as
/// the signed-in account with a grant to one workspace. Audit events are written after the
/// response, as for published servers.
async fn management_mcp(req: &mut Request, env: &Env, ctx: &Context, settings: &Settings) -> Result<Answer, ApiError> {
    let db = D1Db::new(env, D1_BINDING)?;
    let kv = KvStorePort::new(env, KV_BINDING)?;
    let url =
        req.url().map_err(|e| ApiError::bad_request("The request URL is invalid.").with_internal(e.to_string()))?;
    let host = req.headers().get("host").ok().flatten().unwrap_or_else(|| url.host_str().unwrap_or("").to_string());
    // The token audience and the tools' base URL are the allow-listed public origin only.
    let Some(origin) = public_origin(&url, &host, settings) else {
        return mcp_refusal(403, "Forbidden: this host is not served here.", Vec::new());
    };
    let headers: Vec<(String, String)> = req.headers().entries().collect();
    let method = req.method().to_string();
    let body = if method == "POST" { read_body(req, limits::MCP_MESSAGE).await? } else { Vec::new() };
    if settings.rate_limits {
        let addr = req.headers().get("cf-connecting-ip").ok().flatten().unwrap_or_default();
        if let Some(retry_after) = management_rate_limited(env, settings, &origin, &headers, &body, &addr).await {
            return too_many("Too many requests: slow down and retry after the Retry-After seconds.", retry_after);
        }
    }
    let svc = services(&db, &kv, settings, origin.clone(), Some(origin));
    let cache = MANIFEST_CACHE.with(std::rc::Rc::clone);
    let request = mcp_server::McpRequest { method: &method, headers: &headers, body: &body };
    let out = crate::mcp::management::serve(&svc, &cache, settings.upstream_timeout_ms, &request).await;
    mcp_answer(out, env, ctx, settings)
}

/// An MCP answer as sent, its audit events queued for after the response. A stored
/// `tools/list` page goes out as its bytes, spliced into the answer (never parsed again).
fn mcp_answer(out: mcp_server::McpResponse, env: &Env, ctx: &Context, settings: &Settings) -> Result<Answer, ApiError> {
    let spliced = out.page.is_some().then(|| out.body_bytes()).flatten();
    let mcp_server::McpResponse { status, body, headers, audit, internal, .. } = out;
    if !audit.is_empty() {
        queue_audit(env, ctx, audit, settings);
    }
    let Some(bytes) = spliced else {
        return Ok((from_core_response(CoreResponse { status, body, headers })?, internal));
    };
    let mut resp =
        Response::from_bytes(bytes).map_err(|e| ApiError::internal(format!("response: {e}")))?.with_status(status);
    let h = resp.headers_mut();
    h.set("content-type", "application/json").map_err(|e| ApiError::internal(format!("header: {e}")))?;
    for (k, v) in &headers {
        h.append(k, v).map_err(|e| ApiError::internal(format!("header: {e}")))?;
    }
    Ok((with_common_headers(resp), internal))
}

/// The Workers Rate Limiting bindings of `/mcp` (`[[ratelimits]]` in wrangler.toml; they run
/// under wrangler dev too): calls per server, and per access key, per minute.
const SERVER_LIMITER: &str = "MCP_SERVER_LIMITER";
const KEY_LIMITER: &str = "MCP_KEY_LIMITER";
/// Dynamic client registrations per client address (an IPv6 /64 counts as one), and in all,
/// per minute (`[[ratelimits]]`).
const REGISTER_LIMITER: &str = "OAUTH_REGISTER_LIMITER";
/// Sign-ins at published servers' providers, per client address (wrangler.toml).
const SIGN_IN_LIMITER: &str = "SIGN_IN_LIMITER";
const REGISTER_GLOBAL_LIMITER: &str = "OAUTH_REGISTER_GLOBAL_LIMITER";

/// `Some(429 or 503)` when a registration must wait. Anyone may register and each one is a
/// stored row, so a missing limiter refuses (fails closed), unlike the MCP limits.
async fn registration_limited(env: &Env, addr: &str) -> Option<crate::api::Response> {
    let refuse = |status: u16, why: &str| {
        let e = crate::oauth::OAuthError::new(status, "temporarily_unavailable", why);
        Some(
            e.to_response()
                .with_header("retry-after", RATE_PERIOD_S.to_string())
                .with_header("access-control-allow-origin", "*"),
        )
    };
    for (binding, key) in [(REGISTER_LIMITER, format!("reg:{addr}")), (REGISTER_GLOBAL_LIMITER, "reg:all".to_string())]
    {
        let Ok(limiter) = env.rate_limiter(binding) else {
            return refuse(503, "client registration is not available on this deployment");
        };
        match limiter.limit(key).await {
            Ok(o) if o.success => {}
            Ok(_) => return refuse(429, "too many client registrations; retry in a minute"),
            Err(_) => return refuse(503, "client registration is not available right now; retry in a minute"),
        }
    }
    None
}
/// The limiters count per minute; a refused client is told to wait that long at most.
const RATE_PERIOD_S: u32 = 60;

/// Whether this request goes over a limit (`Some(seconds to wait)`). Each message of a batch
/// counts. The key limiter counts by a hash of the bearer value, checked or not (an invalid key
/// is limited like any other). A limiter that is not bound or fails lets the call through: the
/// limits protect capacity, not access, which the runtime checks on its own.
// TODO-security(issue 11): the per-server count comes before the key check, so anyone who knows
// a keyed server's id can spend its minute budget; count keyed servers after `authorize` (the
// limiter as a runtime port) and limit unauthenticated requests per client address.
async fn rate_limited(env: &Env, server_id: &str, headers: &[(String, String)], body: &[u8]) -> Option<u32> {
    let bearer = crate::mcp::access::presented_key(headers);
    let mut keys = vec![(SERVER_LIMITER, format!("srv:{server_id}"))];
    if let Some(b) = bearer {
        keys.push((KEY_LIMITER, format!("key:{}", crate::crypto::sha256_hex_truncated(b.as_bytes(), 32))));
    }
    over_limit(env, &keys, body).await
}

/// The limits of FlowCP's own `/mcp`: per connection for an authentic token (opened here, no
/// I/O: a forged or foreign token cannot spend someone's bucket), else per client address. No
/// server-wide bucket: one caller could spend it for every account.
async fn management_rate_limited(
    env: &Env,
    settings: &Settings,
    origin: &str,
    headers: &[(String, String)],
    body: &[u8],
    client_addr: &str,
) -> Option<u32> {
    use crate::oauth::tokens::{self, Kind};
    let audience = crate::oauth::resource::Target::Management.canonical(origin);
    let connection = crate::mcp::access::presented_key(headers)
        .and_then(|b| tokens::open(&settings.secrets.keyring, Kind::Access, &audience, b, now_ms()).ok());
    let key = match connection {
        Some((conn, _)) => format!("mgmt:conn:{conn}"),
        None => format!("mgmt:addr:{}", crate::auth::throttle::address_key(client_addr)),
    };
    over_limit(env, &[(KEY_LIMITER, key)], body).await
}

/// Whether any of `keys` is over its limiter's budget, counting each message of a batch.
async fn over_limit(env: &Env, keys: &[(&str, String)], body: &[u8]) -> Option<u32> {
    let messages = if body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        serde_json::from_slice::<Vec<serde::de::IgnoredAny>>(body)
            .map(|v| v.len())
            .unwrap_or(1)
            .clamp(1, transport::MAX_BATCH)
    } else {
        1
    };
    for (binding, key) in keys {
        let binding = *binding;
        let Ok(limiter) = env.rate_limiter(binding) else { continue };
        for _ in 0..messages {
            if matches!(limiter.limit(key.clone()).await, Ok(o) if !o.success) {
                return Some(RATE_PERIOD_S);
            }
        }
    }
    None
}

thread_local! {
    /// The isolate's MCP hot-path caches (manifests, live pointers, access-key mirrors).
    static MANIFEST_CACHE: std::rc::Rc<mcp_server::ManifestCache> = std::rc::Rc::default();
    static AUDIT_QUEUE: std::cell::RefCell<Vec<audit::AuditEvent>> = const { std::cell::RefCell::new(Vec::new()) };
    static AUDIT_FLUSH_PENDING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// Events this isolate wrote directly because the queue refused them (logged with each).
    static AUDIT_FALLBACKS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    /// Messages the consumer's injected fault already failed once (development only).
    static AUDIT_FAULT_SEEN: std::cell::RefCell<std::collections::HashSet<String>> = std::cell::RefCell::default();
}

/// How long audit events of concurrent calls are gathered before one send (or one write).
const AUDIT_COALESCE_MS: u64 = 25;

/// The audit queue's producer binding (wrangler.toml); without it, events are written directly.
const AUDIT_QUEUE_BINDING: &str = "AUDIT_QUEUE";

/// The audit writer (DESIGN §2, issue 19): events are gathered in the isolate and, after the
/// response, a single pending `wait_until` task sends those of a short window to the audit
/// queue in one `sendBatch` (one send per window, not per call); the queue's consumer
/// ([`audit_queue`]) writes them to D1. Where the deployment has no queue, or the send fails,
/// they are written directly, in multi-row INSERTs ([`insert_directly`]): nothing is dropped
/// silently, and each fallback is logged with the isolate's running count.
fn queue_audit(env: &Env, ctx: &Context, events: Vec<audit::AuditEvent>, settings: &Settings) {
    AUDIT_QUEUE.with(|q| q.borrow_mut().extend(events));
    if AUDIT_FLUSH_PENDING.with(|p| p.replace(true)) {
        return; // a pending flush (kept alive by an earlier request's wait_until) takes these too
    }
    let env = env.clone();
    let redactor = std::rc::Rc::clone(&settings.redactor);
    // Local fault injection for the e2e tests: every send fails.
    let fault = settings.development && env.var("FLOWCP_FAULT_AUDIT_QUEUE").is_ok_and(|v| v.to_string() == "send");
    ctx.wait_until(async move {
        Delay::from(std::time::Duration::from_millis(AUDIT_COALESCE_MS)).await;
        AUDIT_FLUSH_PENDING.with(|p| p.set(false));
        let batch = AUDIT_QUEUE.with(|q| std::mem::take(&mut *q.borrow_mut()));
        if let Ok(queue) = env.queue(AUDIT_QUEUE_BINDING) {
            let sent = if fault {
                Err("fault injected (FLOWCP_FAULT_AUDIT_QUEUE=send)".to_string())
            } else {
                send_audit(&queue, &batch).await
            };
            let Err(e) = sent else { return };
            let total = AUDIT_FALLBACKS.with(|n| {
                n.set(n.get() + batch.len() as u64);
                n.get()
            });
            console_error!(
                "audit queue: a send of {} events failed ({}); writing them directly ({total} events so far in this isolate)",
                batch.len(),
                redactor.text(&e)
            );
        }
        insert_directly(&env, &batch, &redactor).await;
    });
}

/// Sends events, 100 per `sendBatch`. An error means none of them may be counted as sent (a
/// re-send is harmless: the insert is idempotent).
async fn send_audit(queue: &worker::Queue, events: &[audit::AuditEvent]) -> Result<(), String> {
    for chunk in events.chunks(crate::jobs::audit::SEND_BATCH) {
        let bodies =
            chunk.iter().map(crate::jobs::audit::encode).collect::<Result<Vec<_>, _>>().map_err(|e| e.to_string())?;
        queue.send_batch(bodies).await.map_err(|e| e.to_string())?;
    }
    Ok(())
}

async fn insert_directly(env: &Env, events: &[audit::AuditEvent], redactor: &Redactor) {
    let written = match D1Db::new(env, D1_BINDING) {
        Ok(db) => audit::insert_many(&db, events).await,
        Err(e) => Err(crate::store::StoreError::Backend(e.to_string())),
    };
    if let Err(e) = written {
        console_error!("audit write of {} events failed: {}", events.len(), redactor.text(&e.to_string()));
    }
}

/// The audit queue's consumer: writes a delivery to D1 and acknowledges each message written;
/// the others are retried (then dead-lettered). The handler reads any queue of audit events, so
/// pointing a consumer at the dead-letter queue replays it.
#[event(queue)]
async fn audit_queue(batch: worker::MessageBatch<String>, env: Env, _ctx: Context) -> worker::Result<()> {
    use worker::MessageExt;
    console_error_panic_hook::set_once();
    let mut messages: Vec<worker::RawMessage> = batch.raw_iter().collect();
    let redactor = Redactor::of_values(config::redaction_values(|name| env.secret(name).ok().map(|s| s.to_string())));
    // Local fault injection for the e2e tests: the first delivery of every message fails (and
    // the redelivered ones of the same batch are written as usual).
    let development = env.var("FLOWCP_ENV").is_ok_and(|v| v.to_string() == "development");
    if development && env.var("FLOWCP_FAULT_AUDIT_CONSUMER").is_ok_and(|v| v.to_string() == "fail-first") {
        let (fresh, seen): (Vec<_>, Vec<_>) = messages.into_iter().partition(|m| {
            AUDIT_FAULT_SEEN.with(|s| {
                let mut s = s.borrow_mut();
                if s.len() > 100_000 {
                    s.clear(); // bounded: a long local run may fail a message twice
                }
                s.insert(m.id())
            })
        });
        if !fresh.is_empty() {
            console_log!("audit queue: fault injected, retrying {} first deliveries", fresh.len());
        }
        let soon = worker::QueueRetryOptionsBuilder::new().with_delay_seconds(1).build();
        for m in &fresh {
            m.retry_with_options(&soon);
        }
        messages = seen;
    }
    if messages.is_empty() {
        return Ok(());
    }
    let db = match D1Db::new(&env, D1_BINDING) {
        Ok(db) => db,
        Err(e) => {
            console_error!(
                "audit queue: no D1 ({}); retrying {} events",
                redactor.text(&e.to_string()),
                messages.len()
            );
            for m in &messages {
                m.retry();
            }
            return Ok(());
        }
    };
    let bodies: Vec<Option<String>> = messages.iter().map(|m| m.body().as_string()).collect();
    let d = crate::jobs::audit::consume(&db, &bodies, now_ms()).await;
    for (m, v) in messages.iter().zip(&d.verdicts) {
        match v {
            crate::jobs::audit::Verdict::Ack => m.ack(),
            crate::jobs::audit::Verdict::Retry => m.retry(),
        }
    }
    if d.failed + d.undecodable > 0 {
        console_error!(
            "audit queue: wrote {} events, retrying {} (write failed: {}, unreadable: {}): {}",
            d.written,
            d.failed + d.undecodable,
            d.failed,
            d.undecodable,
            redactor.text(d.first_error.as_deref().unwrap_or(""))
        );
    }
    Ok(())
}

/// RFC 9728 metadata for OAuth-mode servers; 404 for other or unpublished servers.
async fn protected_resource(req: &Request, env: &Env, server_id: &str) -> Result<Response, ApiError> {
    let kv = KvStorePort::new(env, KV_BINDING)?;
    let cache = MANIFEST_CACHE.with(std::rc::Rc::clone);
    let loaded = mcp_server::load_manifest(&kv, &cache, server_id, now_ms())
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .ok_or_else(ApiError::not_found)?;
    if loaded.manifest.auth.mode != crate::vocab::AuthMode::Oauth {
        return Err(ApiError::not_found());
    }
    let url =
        req.url().map_err(|e| ApiError::bad_request("The request URL is invalid.").with_internal(e.to_string()))?;
    let host = req.headers().get("host").ok().flatten().unwrap_or_else(|| url.host_str().unwrap_or("").to_string());
    let settings = settings(env)?;
    let origin = public_origin(&url, &host, &settings).ok_or_else(ApiError::not_found)?;
    let body = mcp_server::protected_resource_metadata(&origin, &loaded.manifest);
    let mut resp = json_response(&JsonResponse { status: 200, body })?;
    // Public metadata: browser-based clients read it from any origin.
    let _ = resp.headers_mut().set("access-control-allow-origin", "*");
    Ok(resp)
}

fn var_is_on(env: &Env, name: &str) -> bool {
    env.var(name).map(|v| matches!(v.to_string().as_str(), "1" | "true")).unwrap_or(false)
}

/// How much of an over-limit body is read and dropped before answering 413 (memory stays
/// flat). Under wrangler dev a smaller drain deadlocks a client that keeps writing: the answer
/// is not forwarded until the upload ends, and the upload stalls once nobody reads it.
// TODO-security(issue 11): the drain has no time limit; a slow sender holds the request.
const DRAIN_MAX: usize = 64 * 1024 * 1024;

/// Reads a request body with a limit; no session, database or key work has happened yet. A
/// body whose plain `Content-Length` is within the limit (not chunked, not encoded:
/// [`crate::net::whole_body_len`]) is read whole in one call, since the runtime delivers exactly
/// that many bytes; any other is read as a stream with a running limit: `413` as soon as more
/// than `limit` bytes arrived, and the rest is drained, never kept.
async fn read_body(req: &mut Request, limit: usize) -> Result<Vec<u8>, ApiError> {
    use futures_util::StreamExt;
    let h = req.headers();
    let get = |name: &str| h.get(name).ok().flatten();
    let (length, transfer, encoding) = (get("content-length"), get("transfer-encoding"), get("content-encoding"));
    let declared = crate::net::whole_body_len(length.as_deref(), transfer.as_deref(), encoding.as_deref());
    if declared.is_some_and(|n| n <= limit) {
        // One read of the whole body, not a wasm<->JS round per chunk.
        // TODO-security(issue 18): this trusts the runtime to deliver the declared length (HTTP
        // framing); a FixedLengthStream in front would not, at two more wasm<->JS calls.
        let body = req
            .bytes()
            .await
            .map_err(|e| ApiError::bad_request("The request body could not be read.").with_internal(e.to_string()))?;
        check_body_len(body.len(), limit)?;
        return Ok(body);
    }
    let Ok(mut stream) = req.stream() else { return Ok(Vec::new()) }; // no body
    let mut body = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk
            .map_err(|e| ApiError::bad_request("The request body could not be read.").with_internal(e.to_string()))?;
        if let Err(e) = check_body_len(body.len() + chunk.len(), limit) {
            // Nothing more is kept. The rest is read and dropped, up to DRAIN_MAX bytes, before
            // the answer goes: a client (or wrangler dev's proxy) whose upload is cut off by an
            // early answer loses its connection, and with it the next request.
            drop(body);
            let mut seen = 0usize;
            while seen < DRAIN_MAX {
                match stream.next().await {
                    Some(Ok(c)) => seen += c.len(),
                    _ => break,
                }
            }
            return Err(e);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The body limit of an API path, known before reading: document uploads take the document
/// limit, every other route the JSON one.
fn api_body_limit(path: &str) -> usize {
    if path.ends_with("/imports") {
        limits::DOCUMENT
    } else if path.starts_with(api::git::WEBHOOK_PREFIX) {
        // A push delivery lists up to 20 commits with their files: larger than API bodies.
        api::git::MAX_DELIVERY
    } else {
        limits::API_JSON
    }
}

/// Reads a Worker request into a core request (body bounded by its path's limit as it streams).
async fn to_core_request(req: &mut Request, url: &worker::Url) -> Result<CoreRequest, ApiError> {
    let headers: Vec<(String, String)> = req.headers().entries().map(|(k, v)| (k.to_ascii_lowercase(), v)).collect();
    let body = match req.method() {
        Method::Get | Method::Head => Vec::new(),
        _ => read_body(req, api_body_limit(url.path())).await?,
    };
    let client_addr = headers.iter().find(|(k, _)| k == "cf-connecting-ip").map(|(_, v)| v.clone());
    Ok(CoreRequest {
        method: req.method().to_string(),
        path: url.path().to_string(),
        query: url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect(),
        headers,
        body,
        client_addr,
    })
}

fn from_core_response(resp: CoreResponse) -> Result<Response, ApiError> {
    // A page (the OAuth consent and error pages): a string body sent as HTML.
    let html = resp.headers.iter().any(|(k, v)| k == "content-type" && v.starts_with("text/html"));
    let mut out = match &resp.body {
        Some(serde_json::Value::String(page)) if html => {
            Response::from_html(page).map_err(|e| ApiError::internal(format!("response: {e}")))?
        }
        Some(body) => Response::from_json(body).map_err(|e| ApiError::internal(format!("serialise: {e}")))?,
        None => Response::empty().map_err(|e| ApiError::internal(format!("response: {e}")))?,
    }
    .with_status(resp.status);
    let h = out.headers_mut();
    for (k, v) in resp.headers.iter().filter(|(k, _)| !(html && k == "content-type")) {
        h.append(k, v).map_err(|e| ApiError::internal(format!("header: {e}")))?;
    }
    Ok(with_common_headers(out))
}

/// Secrets and vars, read and parsed once per isolate (bindings do not change within one).
struct Settings {
    secrets: Secrets,
    /// The deployment's secrets (session secret, encryption keys, ...) in every spelling, for
    /// log lines: built once per isolate, since spelling them out costs more than a request.
    redactor: std::rc::Rc<Redactor>,
    allow_local_fetch: bool,
    allowed_hosts: Vec<String>,
    upstream_timeout_ms: u32,
    log_requests: bool,
    /// `FLOWCP_ENV=development`: the local demo API under `/demo/` is served.
    development: bool,
    /// `FLOWCP_OPERATOR_TOKEN`: opens the deep `/healthz` check.
    operator_token: Option<String>,
    /// How email leaves (`FLOWCP_EMAIL_*`).
    mailer: crate::mail::Mailer,
    /// `FLOWCP_RATE_LIMITS` is not `off`: the `/mcp` rate limiters apply (the benchmarks turn
    /// them off to measure the runtime itself).
    rate_limits: bool,
    /// `FLOWCP_SECURITY_CONTACT`: the `Contact` of `/.well-known/security.txt`.
    security_contact: Option<String>,
    /// `FLOWCP_DEFAULT_PLAN`: the plan of workspaces without one of their own (`None`: unmetered).
    default_plan: Option<crate::vocab::Plan>,
    /// `FLOWCP_GITHUB_*`: the Git integration (`None`: off).
    git: Option<crate::git::GitSettings>,
}

thread_local! {
    static SETTINGS: std::cell::RefCell<Option<std::rc::Rc<Settings>>> = const { std::cell::RefCell::new(None) };
}

/// The isolate's settings, or a refusal to serve (503) with a log line naming what is missing.
/// Only a complete configuration is cached, so fixing a secret takes effect on the next request.
fn settings(env: &Env) -> Result<std::rc::Rc<Settings>, ApiError> {
    if let Some(s) = SETTINGS.with(|c| c.borrow().clone()) {
        return Ok(s);
    }
    let secrets = config::load_secrets(|name| env.secret(name).ok().map(|s| s.to_string())).map_err(|e| {
        ApiError::unavailable(
            ErrorCode::NotConfigured,
            "FlowCP is not configured: a required secret is missing or invalid. The operator log names it.",
        )
        .with_internal(e.to_string())
    })?;
    let bad_setting = |e: config::ConfigError| {
        ApiError::unavailable(
            ErrorCode::NotConfigured,
            "FlowCP is not configured: a required setting is missing or invalid. The operator log names it.",
        )
        .with_internal(e.to_string())
    };
    let allowed_hosts = config::allowed_hosts(env.var(config::ALLOWED_HOSTS).ok().map(|v| v.to_string()).as_deref())
        .map_err(bad_setting)?;
    let redaction_values = config::redaction_values(|name| env.secret(name).ok().map(|s| s.to_string()));
    let default_plan = config::default_plan(env.var(config::DEFAULT_PLAN).ok().map(|v| v.to_string()).as_deref())
        .map_err(bad_setting)?;
    let development = env.var("FLOWCP_ENV").map(|v| v.to_string() == "development").unwrap_or(false);
    let mailer = config::mailer(
        |name| env.var(name).ok().map(|v| v.to_string()),
        |name| env.secret(name).ok().map(|s| s.to_string()),
        development,
    )
    .map_err(bad_setting)?;
    let git = config::github(
        |name| env.var(name).ok().map(|v| v.to_string()),
        |name| env.secret(name).ok().map(|s| s.to_string()),
        development,
    )
    .map_err(bad_setting)?;
    let s = std::rc::Rc::new(Settings {
        secrets,
        redactor: std::rc::Rc::new(Redactor::of_values(redaction_values)),
        allow_local_fetch: var_is_on(env, "FLOWCP_ALLOW_LOCAL_FETCH"),
        allowed_hosts,
        upstream_timeout_ms: env
            .var("FLOWCP_UPSTREAM_TIMEOUT_MS")
            .ok()
            .and_then(|v| v.to_string().parse().ok())
            .filter(|ms| (100..=60_000).contains(ms))
            .unwrap_or(mcp_server::UPSTREAM_TIMEOUT_MS),
        log_requests: var_is_on(env, "FLOWCP_LOG_REQUESTS"),
        development,
        operator_token: config::operator_token(|name| env.secret(name).ok().map(|s| s.to_string())),
        mailer,
        rate_limits: env.var("FLOWCP_RATE_LIMITS").map(|v| v.to_string() != "off").unwrap_or(true),
        security_contact: env.var("FLOWCP_SECURITY_CONTACT").ok().map(|v| v.to_string()).filter(|v| !v.is_empty()),
        default_plan,
        git,
    });
    SETTINGS.with(|c| *c.borrow_mut() = Some(s.clone()));
    Ok(s)
}

fn json_response(resp: &JsonResponse) -> Result<Response, ApiError> {
    let r = Response::from_json(&resp.body).map_err(|e| ApiError::internal(format!("serialise: {e}")))?;
    Ok(with_common_headers(r.with_status(resp.status)))
}

fn error_response(e: &ApiError) -> Response {
    match Response::from_json(&e.body()) {
        Ok(mut r) => {
            if let Some(s) = e.retry_after_s {
                let _ = r.headers_mut().set("retry-after", &s.to_string());
            }
            with_common_headers(r.with_status(e.status))
        }
        Err(_) => Response::empty().map(|r| r.with_status(e.status)).unwrap_or_else(|_| unreachable_response()),
    }
}

fn unreachable_response() -> Response {
    // Response::empty only fails if the JS runtime is broken; there is nothing better to return.
    Response::error("internal", 500).unwrap_or_else(|_| panic!("cannot build a response"))
}

fn with_common_headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    let _ = h.set("cache-control", "no-store");
    let _ = h.set("x-content-type-options", "nosniff");
    r
}

/// The cron of the store tools' refresh (wrangler.toml; the other one is retention's).
const STORE_CRON: &str = "*/5 * * * *";

/// Every five minutes: store tools' entries due for their hourly refresh, a few per run (each
/// run stays inside the Free plan's 50 subrequests; docs/operations.md).
async fn refresh_store(env: &Env) {
    let (settings, db, kv) = match (settings(env), D1Db::new(env, D1_BINDING), KvStorePort::new(env, KV_BINDING)) {
        (Ok(s), Ok(d), Ok(k)) => (s, d, k),
        _ => {
            console_error!("store refresh: not configured (settings, D1 or KV missing)");
            return;
        }
    };
    let clock = now_ms;
    let cache = crate::oauth::keys::GateCache::default();
    let gate = crate::oauth::keys::Gate {
        db: &db,
        kv: &kv,
        http: &FetchHttp,
        keyring: &settings.secrets.keyring,
        secrets: settings.secrets.token_secrets.as_ref(),
        fetch_policy: FetchPolicy { allow_loopback: settings.allow_local_fetch },
        origin: "",
        clock: &clock,
        cache: &cache,
        admitted: Default::default(),
        user: Default::default(),
        default_plan: settings.default_plan,
    };
    let r = crate::oauth::store_refresh::refresh_due(&gate, now_ms()).await;
    if r.refreshed + r.kept + r.dropped > 0 {
        console_log!("store refresh: {} refreshed, {} kept, {} dropped", r.refreshed, r.kept, r.dropped);
    }
}

/// The cron of the Git poll (wrangler.toml), in its own invocation: its own subrequest budget.
const GIT_CRON: &str = "2-59/5 * * * *";

/// Every five minutes: apps following a document in Git whose source was not checked for five
/// minutes (issue 17, docs/git.md). Webhooks and the callback use the first allow-listed host
/// as the public origin.
async fn poll_git(env: &Env) {
    let (settings, db, kv) = match (settings(env), D1Db::new(env, D1_BINDING), KvStorePort::new(env, KV_BINDING)) {
        (Ok(s), Ok(d), Ok(k)) => (s, d, k),
        _ => {
            console_error!("git poll: not configured (settings, D1 or KV missing)");
            return;
        }
    };
    if settings.git.is_none() {
        return;
    }
    let scheme = if settings.development { "http" } else { "https" };
    let origin = settings.allowed_hosts.first().map(|h| format!("{scheme}://{h}")).unwrap_or_default();
    let svc = services(&db, &kv, &settings, origin.clone(), Some(origin));
    match crate::api::git_sync::poll_due(&svc).await {
        Ok(p) if p.checked > 0 => {
            console_log!("git poll: {} checked, {} imported, {} failed", p.checked, p.imported, p.failed)
        }
        Ok(_) => {}
        Err(e) => {
            let redactor = &settings.redactor;
            console_error!("git poll failed: {}", redactor.text(&e.internal.unwrap_or(e.message)))
        }
    }
}

#[event(scheduled)]
async fn scheduled(event: ScheduledEvent, env: Env, _ctx: ScheduleContext) {
    console_error_panic_hook::set_once();
    let redactor = Redactor::of_values(config::redaction_values(|name| env.secret(name).ok().map(|s| s.to_string())));
    if event.cron() == STORE_CRON {
        return refresh_store(&env).await;
    }
    if event.cron() == GIT_CRON {
        return poll_git(&env).await;
    }
    let db = match D1Db::new(&env, D1_BINDING) {
        Ok(db) => db,
        Err(e) => {
            console_error!("scheduled {}: no database binding: {}", event.cron(), redactor.text(&e.to_string()));
            return;
        }
    };
    match retention::run(&db, now_ms(), RetentionPolicy::default()).await {
        Ok(r) => console_log!(
            "retention: deleted {} audit events older than {} ms in {} batches (complete: {}), {} sessions, {} throttle rows, {} links, {} invitations, {} OAuth clients, {} rows of deleted workspaces, {} usage counters, {} store entries, {} Git rows",
            r.deleted,
            r.cutoff_ms,
            r.batches,
            r.complete,
            r.sessions_deleted,
            r.throttle_deleted,
            r.tokens_deleted,
            r.invitations_deleted,
            r.oauth_clients_deleted,
            r.deleted_workspace_rows,
            r.usage_counters_deleted,
            r.store_entries_deleted,
            r.git_rows_deleted
        ),
        Err(e) => console_error!("retention failed: {}", redactor.text(&e.to_string())),
    }
}
