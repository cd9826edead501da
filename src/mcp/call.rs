//! One upstream call of a tool: the credential opened and placed, the request built and
//! checked (SSRF guard, the credential's origin binding), same-origin redirects followed, the
//! answer mapped to a tool result with every spelling of the credential redacted, and one audit
//! event.

use serde_json::Value;

use super::runtime::{CallCtx, CallToolResult, Runtime};
use crate::invoke::{
    build_request, invalid_arguments_result, map_response_with, validate_tool_arguments, Credential, ResponseBudget,
    ResponseOutcome,
};
use crate::manifest::{self, Manifest};
use crate::net::{check_url, Http, HttpRequest};
use crate::redact::Redactor;
use crate::store::audit::{AuditEvent, Outcome};
use crate::store::Kv;
use crate::tools::ToolDef;
use crate::vocab::AuthMode;

/// Bytes of an upstream body read at most (the result is cut further by the response budget).
pub const UPSTREAM_MAX_BYTES: usize = 4 * 1024 * 1024;

pub(crate) const MAX_REDIRECTS: u8 = 3;

/// Opens the server's sealed credential and places it as the mode says. `Err` means the call
/// must be denied (fail closed), with a message safe to show.
pub(crate) async fn credential<K: Kv, H: Http>(
    rt: &Runtime<'_, K, H>,
    m: &Manifest,
    upstream_token: Option<&str>,
) -> Result<Credential, &'static str> {
    const MISSING: &str = "The server's upstream credential is not available; the owner must set it and publish again.";
    let value = match (m.auth.mode, m.auth.credential_ref.as_deref()) {
        (AuthMode::None, _) => None,
        (AuthMode::ApiKey | AuthMode::Bearer, Some(key)) => {
            manifest::open_credential(rt.kv, rt.keyring, &m.server_id, key).await.map_err(|_| MISSING)?
        }
        (AuthMode::ApiKey | AuthMode::Bearer, None) => return Err(MISSING),
        // The end user's own token, opened from their FlowCP access token (`oauth`) or given by
        // the key gate (`user_key`) in `authorize`.
        (AuthMode::Oauth | AuthMode::UserKey, _) => {
            return upstream_token
                .map(|t| Credential::Bearer(t.to_string()))
                .ok_or("This server calls the API as the signed-in user; no user token came with the request.")
        }
    };
    manifest::place_credential(m.auth.mode, m.auth.placement.as_ref(), value).ok_or(MISSING)
}

/// A usage row's target: the named argument's value when it is a string, number or boolean,
/// cut to 128 characters.
fn target_of(v: &Value) -> Option<String> {
    let text = match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => return None,
    };
    Some(text.chars().filter(|c| !c.is_control()).take(128).collect())
}

/// Replaces the credential's value, in every form it can take on the wire or in an echo
/// (see [`Redactor::text`]), in text shown to the model.
pub(crate) fn redact_credential(text: &str, cred: &Credential) -> String {
    match cred.secret() {
        Some(value) => Redactor::of_values([value]).text(text),
        None => text.to_string(),
    }
}

pub(crate) fn same_authority(a: &url::Url, b: &url::Url) -> bool {
    a.scheme() == b.scheme() && a.host_str() == b.host_str() && a.port_or_known_default() == b.port_or_known_default()
}

pub(crate) async fn call_upstream<K: Kv, H: Http>(
    ctx: &CallCtx<'_, '_, K, H>,
    tool: &ToolDef,
    args: &Value,
    audit: &mut Vec<AuditEvent>,
) -> CallToolResult {
    let rt = ctx.rt;
    let m = &ctx.loaded.manifest;
    let started = (rt.clock)();
    let mut event = AuditEvent {
        id: crate::store::audit::event_id(started),
        ts_ms: started,
        workspace_id: m.workspace_id.clone(),
        server_id: m.server_id.clone(),
        tool_name: tool.name.clone(),
        outcome: Outcome::Ok,
        upstream_status: None,
        latency_ms: 0,
        request_bytes: 0,
        response_bytes: 0,
        connection_hash: ctx.connection.map(str::to_string),
        target: m.usage_target.as_deref().and_then(|name| target_of(args.get(name)?)),
        plan: None,
        metered: false,
    };
    let result = call_upstream_inner(ctx, m, tool, args, &mut event).await;
    event.latency_ms = (rt.clock)() - started;
    audit.push(event);
    result
}

pub(crate) async fn call_upstream_inner<K: Kv, H: Http>(
    ctx: &CallCtx<'_, '_, K, H>,
    m: &Manifest,
    tool: &ToolDef,
    args: &Value,
    event: &mut AuditEvent,
) -> CallToolResult {
    let problems = validate_tool_arguments(tool, args);
    if !problems.is_empty() {
        event.outcome = Outcome::Invalid;
        return invalid_arguments_result(&problems);
    }
    if let Some(problem) = ctx.upstream_problem {
        event.outcome = Outcome::Denied;
        return CallToolResult::error(problem.to_string());
    }
    let rt = ctx.rt;
    let t0 = (rt.clock)();
    let cred = credential(rt, m, ctx.upstream_token).await;
    ctx.timings.borrow_mut().push(("credential", (rt.clock)() - t0));
    let cred = match cred {
        Ok(c) => c,
        Err(msg) => {
            event.outcome = Outcome::Denied;
            return CallToolResult::error(msg);
        }
    };
    let plan = match build_request(tool, args, &cred, m.base_url.as_deref()) {
        Ok(p) => p,
        Err(e) => {
            event.outcome = Outcome::Invalid;
            return CallToolResult::error(format!("The request could not be built: {e}."));
        }
    };
    let Ok(mut url) = check_url(&plan.url, rt.fetch_policy) else {
        event.outcome = Outcome::Denied;
        return CallToolResult::error(
            "The API's address is not allowed (private or non-https); the owner must fix the base URL.",
        );
    };
    // The credential only goes to the origin it was entered for (fail closed otherwise).
    if cred != Credential::None && Some(url.origin().ascii_serialization()) != m.auth.credential_origin {
        event.outcome = Outcome::Denied;
        return CallToolResult::error(
            "The API's address is not the one this server's credential was set for; the owner must set the credential again and publish.",
        );
    }
    // The plan's quotas, last before the call leaves: only a call sent upstream counts.
    if let Some(quota) = rt.quota {
        let t0 = (rt.clock)();
        let reserved = quota.reserve(m, ctx.connection).await;
        ctx.timings.borrow_mut().push(("quota", (rt.clock)() - t0));
        match reserved {
            Ok(p) => (event.plan, event.metered) = (p, true),
            Err(over) => {
                (event.outcome, event.plan) = (Outcome::Denied, Some(over.plan));
                return CallToolResult::error(over.message);
            }
        }
    }
    event.request_bytes = plan.body.as_ref().map_or(0, |b| b.len() as i64);
    let mut req = HttpRequest {
        method: plan.method.clone(),
        url: url.to_string(),
        headers: plan.headers.clone(),
        body: plan.body.clone(),
        timeout_ms: rt.upstream_timeout_ms,
    };
    let mut redirects = 0;
    let resp = loop {
        let t0 = (rt.clock)();
        let sent = rt.http.send(&req, UPSTREAM_MAX_BYTES).await;
        ctx.timings.borrow_mut().push(("upstream", (rt.clock)() - t0));
        let resp = match sent {
            Ok(r) => r,
            Err(e) => {
                event.outcome = Outcome::UpstreamError;
                return CallToolResult::error(redact_credential(&format!("The API could not be reached: {e}."), &cred));
            }
        };
        let redirect = matches!(resp.status, 301 | 302 | 303 | 307 | 308);
        if !redirect || redirects >= MAX_REDIRECTS {
            break resp;
        }
        let next = resp.header("location").and_then(|l| url.join(l).ok());
        match next {
            Some(n) if same_authority(&url, &n) => {
                redirects += 1;
                if resp.status == 303 {
                    req.method = "GET".into();
                    req.body = None;
                }
                req.url = n.to_string();
                url = n;
            }
            _ => {
                event.outcome = Outcome::UpstreamError;
                event.upstream_status = Some(resp.status);
                return CallToolResult::error(format!(
                    "The API answered HTTP {} with a redirect to another host, which is not followed.",
                    resp.status
                ));
            }
        }
    };
    event.upstream_status = Some(resp.status);
    event.response_bytes = resp.body.len() as i64;
    if m.auth.mode == AuthMode::Oauth {
        if let Some(refused) = super::runtime::Refused::of(resp.status, &resp.headers) {
            ctx.upstream_refused.set(Some(refused));
        }
    }
    // A `user_key` user's cached access token refused before its expiry (revoked at the
    // provider, rotated keys): the gate drops it, so the next call refreshes.
    if let (AuthMode::UserKey, 401, Some(gate)) = (m.auth.mode, resp.status, rt.key_gate) {
        gate.upstream_refused(m).await;
    }
    // Never hand an upstream's echo of the credential back to the model, in any spelling: the
    // body is redacted whole (and on its decoded JSON strings, see `Redactor::body`) before the
    // result budget cuts it, so a cut cannot leave a prefix of the secret that no pattern
    // matches. The result shows only that body and the upstream's Content-Type, redacted too.
    let content_type = resp.header("content-type").map(str::to_string);
    let (content_type, body) = match cred.secret() {
        Some(v) => {
            let r = Redactor::of_values([v]);
            (content_type.map(|ct| r.text(&ct)), r.capped_body(resp.body, resp.truncated))
        }
        None => (content_type, resp.body),
    };
    // A synced tool's good answer is kept for the user's store tool (issue 16).
    let synced = m.store.as_ref().is_some_and(|s| s.contains(&tool.name));
    if let (true, AuthMode::UserKey, Some(gate), 200..=299) = (synced, m.auth.mode, rt.key_gate, resp.status) {
        if !resp.truncated && body.len() <= super::store::MAX_BODY_BYTES {
            gate.store_write(m, &tool.name, &super::store::declared(tool, args), &body).await;
        }
    }
    let (result, outcome) = map_response_with(
        tool,
        resp.status,
        content_type.as_deref(),
        &body,
        resp.truncated.then_some(UPSTREAM_MAX_BYTES),
        &ResponseBudget::default(),
    );
    event.outcome = match outcome {
        ResponseOutcome::Ok => Outcome::Ok,
        ResponseOutcome::UpstreamError => Outcome::UpstreamError,
        ResponseOutcome::Unexpected => Outcome::UnexpectedResponse,
    };
    result
}
