//! Verification before publishing: static checks over the curated tools and the server's
//! configuration ([`static_findings`], pure), one live probe of a safe operation ([`probe`]),
//! and the verdict. A failed check names what to fix; the probe never shows the credential.

use schemars::JsonSchema;
use serde::Serialize;
use serde_json::{json, Value};

use crate::invoke::{build_request, Credential};
use crate::net::{check_url, FetchPolicy, Http, HttpRequest};
use crate::redact::Redactor;
use crate::tools::names::is_valid_tool_name;
use crate::tools::ToolDef;
pub use crate::vocab::Finding;
use crate::vocab::{AuthMode, FindingStatus, VerificationState};

const PROBE_TIMEOUT_MS: u32 = 10_000;
const PROBE_MAX_BYTES: usize = 64 * 1024;

/// What the static checks and the probe need of a server's enabled tools, gathered one tool
/// at a time: a server's tools are read in batches (10,000 of them would not fit a Worker
/// parsed), never all at once.
#[derive(Debug, Default)]
pub struct Summary {
    pub count: usize,
    pub names: Vec<String>,
    /// Tools whose input schema is not an object schema.
    pub bad_schemas: Vec<String>,
    /// The tools' first servers, each once.
    pub servers: std::collections::BTreeSet<String>,
    /// What the live probe calls: the owner's pick, else the first safe GET ([`probes`]).
    pub probe: Option<ToolDef>,
    pick: Option<String>,
}

impl Summary {
    /// An empty summary; `pick` is the owner's probe tool.
    pub fn new(pick: Option<&str>) -> Self {
        Summary { pick: pick.map(str::to_string), ..Default::default() }
    }

    pub fn of(tools: &[ToolDef], pick: Option<&str>) -> Self {
        let mut s = Summary::new(pick);
        tools.iter().for_each(|t| s.add(t));
        s
    }

    /// Takes in the next enabled tool (in name order).
    pub fn add(&mut self, d: &ToolDef) {
        self.count += 1;
        self.names.push(d.name.clone());
        if d.input_schema.get("type").and_then(Value::as_str) != Some("object")
            || !d.input_schema.get("properties").is_none_or(Value::is_object)
        {
            self.bad_schemas.push(d.name.clone());
        }
        if let Some(server) = d.request.servers.first() {
            self.servers.insert(server.clone());
        }
        if self.probe.is_none() && probes(d, self.pick.as_deref()) {
            self.probe = Some(d.clone());
        }
    }
}

/// Above this many enabled tools, verification recommends discovery mode (issue 18).
pub const MANY_TOOLS: usize = 500;

/// What the static checks look at.
pub struct Subject<'a> {
    /// Enabled tools with curation applied.
    pub tools: &'a Summary,
    pub auth_mode: AuthMode,
    /// Discovery mode: clients see three tools and search the rest.
    pub discovery: bool,
    pub auth_config: &'a Value,
    pub base_url_override: Option<&'a str>,
    pub has_credential: bool,
    pub has_placement: bool,
    pub fetch_policy: FetchPolicy,
}

/// The checks that need no network: tools, names, schemas, base URL, auth configuration.
pub fn static_findings(s: &Subject<'_>) -> Vec<Finding> {
    let t = s.tools;
    let mut message = format!("{} enabled tools", t.count);
    if t.count > MANY_TOOLS && !s.discovery {
        message.push_str(&format!(
            "; with more than {MANY_TOOLS}, turn on discovery mode: clients then see three tools (search, describe, call) instead of loading every schema, which takes a client seconds"
        ));
    }
    let mut out = vec![Finding::new("tools_enabled", t.count > 0, message)];

    let mut names: Vec<&str> = t.names.iter().map(String::as_str).collect();
    let invalid: Vec<&str> = names.iter().copied().filter(|n| !is_valid_tool_name(n)).collect();
    names.sort_unstable();
    let dupes: Vec<&str> = names.windows(2).filter(|w| w[0] == w[1]).map(|w| w[0]).collect();
    let names_ok = invalid.is_empty() && dupes.is_empty();
    out.push(Finding::new(
        "tool_names",
        names_ok,
        if names_ok {
            "names are valid and unique".to_string()
        } else {
            format!("invalid: {invalid:?}; duplicated: {dupes:?}")
        },
    ));

    let bad_schemas = &t.bad_schemas;
    out.push(Finding::new(
        "schemas",
        bad_schemas.is_empty(),
        if bad_schemas.is_empty() {
            "input schemas are object schemas".into()
        } else {
            format!("not object schemas: {bad_schemas:?}")
        },
    ));

    // Base URL: the override, else every tool's first server, must be allowed.
    let bases: Vec<String> = match s.base_url_override {
        Some(b) => vec![b.to_string()],
        None => t.servers.iter().cloned().collect(),
    };
    let base_problems: Vec<String> = if bases.is_empty() {
        vec!["the document names no absolute server URL; set base_url".into()]
    } else {
        bases.iter().filter_map(|b| check_url(b, s.fetch_policy).err().map(|e| format!("{b}: {}", e.0))).collect()
    };
    out.push(Finding::new(
        "base_url",
        base_problems.is_empty(),
        if base_problems.is_empty() { format!("{bases:?}") } else { base_problems.join("; ") },
    ));

    let auth_problem = match s.auth_mode {
        AuthMode::None => None,
        AuthMode::Bearer if !s.has_credential => Some("bearer mode needs a token (PUT .../credential)".to_string()),
        AuthMode::ApiKey if !s.has_credential => Some("api_key mode needs a key (PUT .../credential)".to_string()),
        AuthMode::ApiKey if !s.has_placement => Some("api_key mode needs auth_config {in, name}".to_string()),
        AuthMode::Oauth | AuthMode::UserKey => {
            let missing: Vec<&str> = ["authorize_url", "token_url", "client_id"]
                .into_iter()
                .filter(|k| s.auth_config.get(*k).and_then(Value::as_str).is_none())
                .collect();
            if !missing.is_empty() {
                Some(format!("{} mode needs auth_config fields {missing:?}", s.auth_mode.as_str()))
            } else if !s.has_credential {
                Some(format!("{} mode needs the client secret (PUT .../credential)", s.auth_mode.as_str()))
            } else {
                None
            }
        }
        AuthMode::Bearer | AuthMode::ApiKey => None,
    };
    out.push(Finding::new(
        "auth",
        auth_problem.is_none(),
        auth_problem.unwrap_or_else(|| format!("{} configuration complete", s.auth_mode.as_str())),
    ));
    out
}

/// The tool the live probe calls: the owner's pick, else the first GET without required
/// arguments.
/// Whether the probe may call `d`: the owner's pick, or with none, a GET that needs no argument.
fn probes(d: &ToolDef, pick: Option<&str>) -> bool {
    match pick {
        Some(name) => d.name == name,
        None => {
            d.request.method == crate::tools::HttpMethod::Get
                && d.input_schema.get("required").and_then(Value::as_array).is_none_or(|r| r.is_empty())
        }
    }
}

/// Where the live probe goes and with what.
pub struct Probe<'a> {
    pub auth_mode: AuthMode,
    pub tool: Option<&'a ToolDef>,
    /// The placed credential (`Credential::None` when there is none).
    pub credential: &'a Credential,
    /// The origin the credential is bound to.
    pub credential_origin: Option<&'a str>,
    pub base_url_override: Option<&'a str>,
    pub fetch_policy: FetchPolicy,
}

/// `scheme://host[:port]` of a URL.
pub fn origin_of(url: &str) -> Option<String> {
    url::Url::parse(url).ok().map(|u| u.origin().ascii_serialization()).filter(|o| o != "null")
}

/// Calls the probe tool once without arguments. The credential goes only to its bound origin,
/// and never appears in the finding, in any spelling.
pub async fn probe(http: &impl Http, p: &Probe<'_>) -> Finding {
    let tool = match (p.tool, p.auth_mode) {
        (_, AuthMode::Oauth | AuthMode::UserKey) => {
            return Finding::skipped("probe", "servers that sign users in are probed by a signed-in user")
        }
        (None, _) => {
            return Finding::skipped("probe", "no GET tool without required arguments; pick one with probe_tool")
        }
        (Some(tool), AuthMode::None | AuthMode::ApiKey | AuthMode::Bearer) => tool,
    };
    let result = match build_request(tool, &json!({}), p.credential, p.base_url_override) {
        Err(e) => Err(format!("cannot build the request: {e}")),
        Ok(plan) => match check_url(&plan.url, p.fetch_policy) {
            Err(b) => Err(format!("the URL is not allowed: {}", b.0)),
            Ok(_) if *p.credential != Credential::None && origin_of(&plan.url).as_deref() != p.credential_origin => {
                Err(format!(
                    "the API address {} is not the one the credential was set for ({}); set the credential again",
                    origin_of(&plan.url).unwrap_or_default(),
                    p.credential_origin.unwrap_or("none")
                ))
            }
            Ok(_) => {
                let req = HttpRequest {
                    method: plan.method,
                    url: plan.url,
                    headers: plan.headers,
                    body: plan.body,
                    timeout_ms: PROBE_TIMEOUT_MS,
                };
                match http.send(&req, PROBE_MAX_BYTES).await {
                    Ok(r) if (200..300).contains(&r.status) => Ok(r.status),
                    Ok(r) => Err(format!("HTTP {}", r.status)),
                    Err(e) => Err(e.to_string()),
                }
            }
        },
    };
    let message = match &result {
        Ok(status) => format!("{} answered HTTP {status}", tool.name),
        Err(e) => format!("{}: {e}", tool.name),
    };
    // Never echo the credential, even if an upstream reflected it into an error.
    let message = match p.credential.secret() {
        Some(secret) => Redactor::of_values([secret]).text(&message),
        None => message,
    };
    let mut f = Finding::new("probe", result.is_ok(), message);
    f.tool = Some(tool.name.clone());
    f
}

/// The exact upstream request of one tool call, and, when it was run, the answer.
#[derive(Debug, Default, Serialize, JsonSchema)]
pub struct TryOutcome {
    /// Why the arguments would be refused (as the MCP client would be told); empty when valid.
    pub problems: Vec<String>,
    /// The request, with the credential shown as `[credential]`; `null` when it cannot be built.
    pub request: Option<PlannedRequest>,
    /// Why the request cannot be built or sent.
    pub error: Option<String>,
    /// The upstream's answer, when `run` was asked for and the request was sent.
    pub response: Option<TriedResponse>,
    /// The request left FlowCP (a run that got an answer or failed on the network).
    #[serde(skip)]
    pub sent: bool,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct PlannedRequest {
    pub method: String,
    pub url: String,
    /// Name and value pairs, in the order they are sent.
    pub headers: Vec<(String, String)>,
    /// The body as text (a binary body is described, not shown).
    pub body: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct TriedResponse {
    pub status: u16,
    pub content_type: Option<String>,
    /// At most 64 KiB of the body as text, with the credential redacted in every spelling.
    pub body: String,
    pub truncated: bool,
}

/// What the credential looks like in a shown request.
pub const SHOWN_CREDENTIAL: &str = "[credential]";

/// One "try it": the tool, its arguments, and the credential twice: placed with the
/// placeholder for the request shown, and with its value for the request sent (`None`: only
/// show it).
pub struct Trial<'a> {
    pub tool: &'a ToolDef,
    pub arguments: &'a Value,
    pub shown: &'a Credential,
    pub send: Option<&'a Credential>,
    pub credential_origin: Option<&'a str>,
    pub base_url_override: Option<&'a str>,
    pub fetch_policy: FetchPolicy,
}

/// Plans a tool call as the runtime would (the same argument validation and request builder)
/// and, when asked, sends it under the runtime's rules: the SSRF guard, and the credential only
/// to the origin it was set for. Redirects are not followed. The credential never appears in
/// the outcome: the shown request carries the placeholder, and the answer is redacted.
pub async fn try_call(http: &impl Http, t: &Trial<'_>) -> TryOutcome {
    let problems = crate::invoke::validate_tool_arguments(t.tool, t.arguments);
    if !problems.is_empty() {
        return TryOutcome { problems, ..Default::default() };
    }
    let shown = match build_request(t.tool, t.arguments, t.shown, t.base_url_override) {
        Ok(plan) => plan,
        Err(e) => {
            return TryOutcome { error: Some(format!("The request could not be built: {e}.")), ..Default::default() }
        }
    };
    let request = Some(PlannedRequest {
        method: shown.method.clone(),
        url: shown.url.replace("%5Bcredential%5D", SHOWN_CREDENTIAL),
        headers: shown.headers.clone(),
        body: shown.body.as_ref().map(|b| match std::str::from_utf8(b) {
            Ok(text) => text.to_string(),
            Err(_) => format!("({} bytes of binary data)", b.len()),
        }),
    });
    let Some(credential) = t.send else { return TryOutcome { request, ..Default::default() } };
    let redactor = Redactor::of_values(credential.secret());
    let sent = async {
        let plan = build_request(t.tool, t.arguments, credential, t.base_url_override)
            .map_err(|e| format!("The request could not be built: {e}."))?;
        let url = check_url(&plan.url, t.fetch_policy).map_err(|b| format!("The URL is not allowed: {}.", b.0))?;
        if *credential != Credential::None && origin_of(&plan.url).as_deref() != t.credential_origin {
            return Err(format!(
                "The API address {} is not the one the credential was set for ({}); set the credential again.",
                origin_of(&plan.url).unwrap_or_default(),
                t.credential_origin.unwrap_or("none")
            ));
        }
        let req = HttpRequest {
            method: plan.method,
            url: url.to_string(),
            headers: plan.headers,
            body: plan.body,
            timeout_ms: PROBE_TIMEOUT_MS,
        };
        Ok(http.send(&req, PROBE_MAX_BYTES).await)
    }
    .await;
    match sent {
        Ok(Ok(r)) => TryOutcome {
            request,
            sent: true,
            response: Some(TriedResponse {
                status: r.status,
                content_type: r
                    .headers
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
                    .map(|(_, v)| redactor.text(v)),
                body: shown_body(&redactor, r.body, r.truncated),
                truncated: r.truncated,
            }),
            ..Default::default()
        },
        Ok(Err(e)) => TryOutcome {
            request,
            sent: true,
            error: Some(redactor.text(&format!("The API could not be reached: {e}."))),
            ..Default::default()
        },
        Err(e) => TryOutcome { request, error: Some(redactor.text(&e)), ..Default::default() },
    }
}

/// An upstream body as text for the owner, with the credential redacted in every spelling: in
/// any encoding (a Latin-1 page is redacted as its lossy UTF-8 text, not passed through as
/// bytes), and at a cut by the byte cap that ends inside it.
fn shown_body(redactor: &Redactor, body: Vec<u8>, truncated: bool) -> String {
    let text = redactor.text(&String::from_utf8_lossy(&redactor.capped_body(body, truncated)));
    if truncated {
        redactor.tail(&text)
    } else {
        text
    }
}

/// An `oauth` server's provider, checked live: its authorize URL must be https (loopback http
/// in development), and its token endpoint must answer a made-up code as an OAuth endpoint
/// does. `invalid_grant` (or GitHub's `bad_verification_code`) means it knows the owner's
/// client id and secret; `invalid_client` means it does not. The secret never appears in the
/// finding.
pub async fn provider(
    http: &impl Http,
    oauth: &crate::manifest::ManifestOAuth,
    secret: Option<&str>,
    callback: &str,
    policy: FetchPolicy,
) -> Finding {
    let authorize_ok = url::Url::parse(&oauth.authorize_url).is_ok_and(|u| {
        u.scheme() == "https" || (u.scheme() == "http" && matches!(u.host_str(), Some("127.0.0.1" | "localhost")))
    });
    if !authorize_ok {
        return Finding::new("provider", false, "the provider's authorize URL must be an https URL");
    }
    let Some(secret) = secret else {
        return Finding::skipped("provider", "set the client secret (PUT .../credential) to check the provider");
    };
    let url = match check_url(&oauth.token_url, policy) {
        Ok(u) => u,
        Err(b) => return Finding::new("provider", false, format!("the token URL is not allowed: {}", b.0)),
    };
    let grant = [
        ("grant_type", "authorization_code"),
        ("code", "flowcp-verification-not-a-real-code"),
        ("redirect_uri", callback),
    ];
    let req = crate::oauth::providers::token_request(url.as_str(), &grant, &oauth.client_id, secret, PROBE_TIMEOUT_MS);
    let (ok, message) = match http.send(&req, PROBE_MAX_BYTES).await {
        Err(e) => (false, format!("the token URL could not be reached: {e}")),
        Ok(r) => {
            let error = serde_json::from_slice::<Value>(&r.body)
                .ok()
                .map(|v| v.get("error").and_then(Value::as_str).map(str::to_string));
            match error {
                None => (false, format!("the token URL answered HTTP {} without JSON: is it the token endpoint?", r.status)),
                Some(Some(e)) if matches!(e.as_str(), "invalid_client" | "incorrect_client_credentials" | "unauthorized_client") => {
                    (false, format!("the provider refused the client id or secret ({e}); check both"))
                }
                Some(Some(e)) => (true, format!("the provider knows the client (it answered {e} to a test code, as expected); register {callback} as its redirect URI")),
                Some(None) => (true, format!("the token endpoint answered HTTP {}; register {callback} as its redirect URI", r.status)),
            }
        }
    };
    Finding::new("provider", ok, Redactor::of_values([secret]).text(&message))
}

/// Failed when any check failed; skipped checks do not fail a server.
pub fn verdict(findings: &[Finding]) -> VerificationState {
    if findings.iter().any(|f| f.status == FindingStatus::Fail) {
        VerificationState::Failed
    } else {
        VerificationState::Verified
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tools(doc: Value) -> Vec<ToolDef> {
        crate::tools::import(&serde_json::to_vec(&doc).unwrap()).unwrap().tools
    }

    fn petstore() -> Vec<ToolDef> {
        tools(json!({ "openapi": "3.0.3", "info": { "title": "P", "version": "1" },
            "servers": [{ "url": "https://api.example.com" }],
            "paths": { "/pets": { "get": { "operationId": "listPets", "responses": { "200": { "description": "ok" } } } } } }))
    }

    fn subject<'a>(tools: &'a Summary, cfg: &'a Value) -> Subject<'a> {
        Subject {
            tools,
            auth_mode: AuthMode::None,
            discovery: false,
            auth_config: cfg,
            base_url_override: None,
            has_credential: false,
            has_placement: false,
            fetch_policy: FetchPolicy::default(),
        }
    }

    fn failed(f: &[Finding]) -> Vec<&str> {
        f.iter().filter(|f| f.status == FindingStatus::Fail).map(|f| f.check.as_ref()).collect()
    }

    #[test]
    fn static_checks_name_what_to_fix() {
        let cfg = json!({});
        let defs = petstore();
        let none = Summary::new(None);
        let pets = Summary::of(&defs, None);
        let ok = subject(&pets, &cfg);
        assert_eq!(failed(&static_findings(&ok)), Vec::<&str>::new());
        assert_eq!(verdict(&static_findings(&ok)), VerificationState::Verified);
        let cases: Vec<(Subject, Vec<&str>)> = vec![
            (Subject { tools: &none, ..subject(&pets, &cfg) }, vec!["tools_enabled", "base_url"]),
            (Subject { auth_mode: AuthMode::Bearer, ..subject(&pets, &cfg) }, vec!["auth"]),
            (Subject { auth_mode: AuthMode::ApiKey, has_credential: true, ..subject(&pets, &cfg) }, vec!["auth"]),
            (
                Subject {
                    auth_mode: AuthMode::ApiKey,
                    has_credential: true,
                    has_placement: true,
                    ..subject(&pets, &cfg)
                },
                vec![],
            ),
            (Subject { auth_mode: AuthMode::Oauth, has_credential: true, ..subject(&pets, &cfg) }, vec!["auth"]),
            (Subject { base_url_override: Some("http://10.0.0.1/api"), ..subject(&pets, &cfg) }, vec!["base_url"]),
        ];
        for (s, want) in cases {
            let f = static_findings(&s);
            assert_eq!(failed(&f), want, "{:?}", f);
            assert_eq!(verdict(&f) == VerificationState::Failed, !want.is_empty());
        }
        let mut dup = defs.clone();
        dup.extend(defs.clone());
        dup[1].name = "bad name".into();
        dup.push(defs[0].clone());
        let dup = Summary::of(&dup, None);
        assert_eq!(failed(&static_findings(&subject(&dup, &cfg))), ["tool_names"]);
        // Past MANY_TOOLS, discovery mode is recommended (not required), unless it is on.
        let many: Vec<ToolDef> =
            (0..=MANY_TOOLS).map(|i| ToolDef { name: format!("t{i:04}"), ..defs[0].clone() }).collect();
        let many = Summary::of(&many, None);
        let first = |s: &Subject| static_findings(s).remove(0);
        let advice = first(&subject(&many, &cfg));
        assert_eq!(advice.status, FindingStatus::Pass);
        assert!(advice.message.contains("turn on discovery mode"), "{advice:?}");
        assert!(!first(&Subject { discovery: true, ..subject(&many, &cfg) }).message.contains("discovery"));
        assert!(!first(&ok).message.contains("discovery"));
    }

    #[test]
    fn the_probe_target_is_the_owners_pick_or_a_safe_get() {
        let t = tools(json!({ "openapi": "3.0.3", "info": { "title": "P", "version": "1" },
            "servers": [{ "url": "https://api.example.com" }],
            "paths": {
                "/a/{id}": { "get": { "operationId": "getA", "parameters": [{ "name": "id", "in": "path", "required": true, "schema": { "type": "string" } }], "responses": { "200": { "description": "ok" } } } },
                "/b": { "post": { "operationId": "postB", "responses": { "200": { "description": "ok" } } } },
                "/c": { "get": { "operationId": "listC", "responses": { "200": { "description": "ok" } } } }
            } }));
        let probe = |pick| Summary::of(&t, pick).probe.map(|d| d.name);
        assert_eq!(probe(None).as_deref(), Some("listC"));
        assert_eq!(probe(Some("postB")).as_deref(), Some("postB"));
        assert!(probe(Some("nope")).is_none());
        let skipped = Finding::skipped("probe", "x");
        assert_eq!(
            serde_json::to_value(&skipped).unwrap(),
            json!({ "check": "probe", "status": "skipped", "message": "x" })
        );
        assert_eq!(verdict(&[skipped]), VerificationState::Verified);
    }
}
