//! Worker configuration: required secrets and plain vars.
//!
//! The Worker refuses to serve (503 `not_configured`) when a required secret is absent or
//! malformed; the log line names the secret, never its value. Secrets come from Worker secrets
//! in production and from `.dev.vars` locally (`make dev` creates it with fresh random values).

use crate::crypto::Keyring;

/// AES-256-GCM key ring: `kid:hex64[,kid:hex64...]`, first key seals (DESIGN §7).
pub const ENCRYPTION_KEYS: &str = "FLOWCP_ENCRYPTION_KEYS";
/// HMAC key for session cookies and other signed ids: at least 32 bytes of hex or text.
pub const SESSION_SECRET: &str = "FLOWCP_SESSION_SECRET";
/// The session secret being rotated out: sessions signed with it keep working until it is
/// removed (optional; see docs/operations.md, "Key rotation").
pub const SESSION_SECRET_PREVIOUS: &str = "FLOWCP_SESSION_SECRET_PREVIOUS";

/// Hosts the MCP endpoints answer for (a var, not a secret).
/// Signs the per-user API keys of `user_key` servers (issue 16): `kid:hex[,kid:hex]`, 32-byte
/// secrets, the first signs and all verify. Optional: without it `user_key` servers cannot be
/// published and answer 503.
pub const TOKEN_SECRET: &str = "FLOWCP_TOKEN_SECRET";
pub const ALLOWED_HOSTS: &str = "FLOWCP_ALLOWED_HOSTS";
/// Optional secret: `Authorization: Bearer <it>` on `/healthz` asks for the deep check.
pub const OPERATOR_TOKEN: &str = "FLOWCP_OPERATOR_TOKEN";
/// A shorter operator token is ignored (the deep check stays off): it could be guessed.
pub const MIN_OPERATOR_TOKEN_LEN: usize = 32;

/// The operator token, when one of at least [`MIN_OPERATOR_TOKEN_LEN`] characters is set.
pub fn operator_token(get: impl Fn(&str) -> Option<String>) -> Option<String> {
    get(OPERATOR_TOKEN).map(|t| t.trim().to_string()).filter(|t| t.len() >= MIN_OPERATOR_TOKEN_LEN)
}

/// Email (`crate::mail`): `outbox` (development only) or `http` (an HTTP email API).
pub const EMAIL_PROVIDER: &str = "FLOWCP_EMAIL_PROVIDER";
/// The sender address of every message (`http`).
pub const EMAIL_FROM: &str = "FLOWCP_EMAIL_FROM";
/// The HTTP email API's URL (`http`; Resend's by default).
pub const EMAIL_ENDPOINT: &str = "FLOWCP_EMAIL_ENDPOINT";
/// Secret: the HTTP email API's key (`http`).
pub const EMAIL_API_KEY: &str = "FLOWCP_EMAIL_API_KEY";
pub const DEFAULT_EMAIL_ENDPOINT: &str = "https://api.resend.com/emails";

/// The mailer this deployment uses. `var` reads plain vars, `secret` reads secrets. Without a
/// provider, development uses the outbox and production sends nothing (`Mailer::Off`: the
/// calls that must send answer 503). The outbox outside development, or an `http` provider
/// without its sender, key or an https endpoint, is a configuration error.
pub fn mailer(
    var: impl Fn(&str) -> Option<String>,
    secret: impl Fn(&str) -> Option<String>,
    development: bool,
) -> Result<crate::mail::Mailer, ConfigError> {
    use crate::mail::Mailer;
    let provider = var(EMAIL_PROVIDER).map(|p| p.trim().to_ascii_lowercase()).filter(|p| !p.is_empty());
    match provider.as_deref() {
        None if development => Ok(Mailer::Outbox),
        None => Ok(Mailer::Off),
        Some("outbox") if development => Ok(Mailer::Outbox),
        Some("outbox") => Err(ConfigError::Invalid {
            name: EMAIL_PROVIDER,
            reason: "the outbox is for development only (FLOWCP_ENV=development)".into(),
        }),
        Some("http") => {
            let from = var(EMAIL_FROM).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
            let from = from.ok_or(ConfigError::Missing(EMAIL_FROM))?;
            let api_key = secret(EMAIL_API_KEY).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
            let api_key = api_key.ok_or(ConfigError::Missing(EMAIL_API_KEY))?;
            let endpoint = var(EMAIL_ENDPOINT)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| DEFAULT_EMAIL_ENDPOINT.to_string());
            if !endpoint.starts_with("https://") && !development {
                return Err(ConfigError::Invalid { name: EMAIL_ENDPOINT, reason: "must be an https URL".into() });
            }
            Ok(Mailer::Http { endpoint, from, api_key })
        }
        Some(_) => Err(ConfigError::Invalid { name: EMAIL_PROVIDER, reason: "must be \"outbox\" or \"http\"".into() }),
    }
}

pub const REQUIRED_SECRETS: [&str; 2] = [ENCRYPTION_KEYS, SESSION_SECRET];

const MIN_SESSION_SECRET_LEN: usize = 32;

/// The secrets, parsed. `Debug` never prints their values.
pub struct Secrets {
    pub keyring: Keyring,
    /// Signs new sessions and their CSRF tokens.
    pub session_secret: Vec<u8>,
    /// Still verifies sessions signed before a rotation.
    pub previous_session_secret: Option<Vec<u8>>,
    /// [`TOKEN_SECRET`], when set.
    pub token_secrets: Option<crate::auth::user_key::TokenSecrets>,
}

impl Secrets {
    /// The session secrets a presented session may be signed with: current first.
    pub fn session_secrets(&self) -> impl Iterator<Item = &[u8]> {
        std::iter::once(self.session_secret.as_slice()).chain(self.previous_session_secret.as_deref())
    }
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secrets").field("keyring", &self.keyring).finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    Missing(&'static str),
    Invalid { name: &'static str, reason: String },
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfigError::Missing(name) => write!(f, "required secret {name} is not set"),
            ConfigError::Invalid { name, reason } => write!(f, "setting {name} is invalid: {reason}"),
        }
    }
}

impl std::error::Error for ConfigError {}

/// Reads the required secrets through `get` (an empty value counts as absent).
pub fn load_secrets(get: impl Fn(&str) -> Option<String>) -> Result<Secrets, ConfigError> {
    let read = |name: &'static str| get(name).filter(|v| !v.trim().is_empty()).ok_or(ConfigError::Missing(name));
    let keys = read(ENCRYPTION_KEYS)?;
    let session = read(SESSION_SECRET)?;
    let keyring =
        Keyring::parse(&keys).map_err(|e| ConfigError::Invalid { name: ENCRYPTION_KEYS, reason: e.to_string() })?;
    if session.trim().len() < MIN_SESSION_SECRET_LEN {
        return Err(ConfigError::Invalid {
            name: SESSION_SECRET,
            reason: format!("must be at least {MIN_SESSION_SECRET_LEN} characters"),
        });
    }
    let previous = match get(SESSION_SECRET_PREVIOUS).filter(|v| !v.trim().is_empty()) {
        None => None,
        Some(p) if p.trim().len() < MIN_SESSION_SECRET_LEN => {
            return Err(ConfigError::Invalid {
                name: SESSION_SECRET_PREVIOUS,
                reason: format!("must be at least {MIN_SESSION_SECRET_LEN} characters"),
            })
        }
        Some(p) => Some(p.trim().as_bytes().to_vec()),
    };
    let token_secrets = match get(TOKEN_SECRET).filter(|v| !v.trim().is_empty()) {
        None => None,
        Some(spec) => Some(
            crate::auth::user_key::TokenSecrets::parse(&spec)
                .map_err(|e| ConfigError::Invalid { name: TOKEN_SECRET, reason: format!("{e:?}") })?,
        ),
    };
    Ok(Secrets {
        keyring,
        session_secret: session.trim().as_bytes().to_vec(),
        previous_session_secret: previous,
        token_secrets,
    })
}

/// The deployment's secret texts as a log redactor must know them: the session secret, the
/// whole key ring specification and each key's hex. Nothing formats these on purpose; this is
/// the net under an accidental echo (a backend error quoting its input, say).
pub fn redaction_values(get: impl Fn(&str) -> Option<String>) -> Vec<String> {
    let mut out = Vec::new();
    for name in [SESSION_SECRET, SESSION_SECRET_PREVIOUS] {
        if let Some(s) = get(name) {
            out.push(s.trim().to_string());
        }
    }
    for name in [OPERATOR_TOKEN, EMAIL_API_KEY, GITHUB_CLIENT_SECRET] {
        if let Some(t) = get(name) {
            out.push(t.trim().to_string());
        }
    }
    for name in [ENCRYPTION_KEYS, TOKEN_SECRET] {
        let Some(keys) = get(name) else { continue };
        out.push(keys.trim().to_string());
        for part in keys.split(',') {
            out.push(part.trim().to_string());
            if let Some((_, hex)) = part.split_once(':') {
                out.push(hex.trim().to_string());
            }
        }
    }
    out.retain(|v| v.len() >= 8);
    out
}

/// Hosts the MCP endpoints answer for (`FLOWCP_ALLOWED_HOSTS`, comma-separated). An empty or
/// missing list is a configuration error: the DNS-rebinding defence fails closed, it is never
/// silently off.
pub fn allowed_hosts(raw: Option<&str>) -> Result<Vec<String>, ConfigError> {
    let hosts: Vec<String> =
        raw.unwrap_or("").split(',').map(|h| h.trim().to_ascii_lowercase()).filter(|h| !h.is_empty()).collect();
    if hosts.is_empty() {
        return Err(ConfigError::Invalid { name: ALLOWED_HOSTS, reason: "must list at least one host".into() });
    }
    Ok(hosts)
}

/// The setting naming the plan of workspaces without one of their own (issue 16).
/// The deployment's GitHub App (or OAuth app), for the Git integration (issue 17; docs/git.md):
/// its client id (a var) and secret (a secret), and for GitHub Enterprise Server its web and
/// API origins. Without a client id, the integration is off.
pub const GITHUB_CLIENT_ID: &str = "FLOWCP_GITHUB_CLIENT_ID";
pub const GITHUB_CLIENT_SECRET: &str = "FLOWCP_GITHUB_CLIENT_SECRET";
pub const GITHUB_URL: &str = "FLOWCP_GITHUB_URL";
pub const GITHUB_API_URL: &str = "FLOWCP_GITHUB_API_URL";

/// The GitHub settings, `None` when no client id is set. A client id without its secret, or an
/// origin that is not https outside development, is a configuration error.
pub fn github(
    var: impl Fn(&str) -> Option<String>,
    secret: impl Fn(&str) -> Option<String>,
    development: bool,
) -> Result<Option<crate::git::GitSettings>, ConfigError> {
    let given = |v: Option<String>| v.map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
    let Some(client_id) = given(var(GITHUB_CLIENT_ID)) else { return Ok(None) };
    let client_secret = given(secret(GITHUB_CLIENT_SECRET)).ok_or(ConfigError::Missing(GITHUB_CLIENT_SECRET))?;
    let origin = |name: &'static str, default: &str| -> Result<String, ConfigError> {
        let v = given(var(name)).unwrap_or_else(|| default.to_string());
        let ok = v.starts_with("https://") || (development && v.starts_with("http://"));
        if !ok || url::Url::parse(&v).is_err() {
            return Err(ConfigError::Invalid { name, reason: "must be an https URL".into() });
        }
        Ok(v.trim_end_matches('/').to_string())
    };
    Ok(Some(crate::git::GitSettings {
        client_id,
        client_secret,
        web_url: origin(GITHUB_URL, "https://github.com")?,
        api_url: origin(GITHUB_API_URL, "https://api.github.com")?,
    }))
}

pub const DEFAULT_PLAN: &str = "FLOWCP_DEFAULT_PLAN";

/// `FLOWCP_DEFAULT_PLAN`: `free`, `pro` or `team`; unset, empty or `none`: such workspaces are
/// unmetered (a self-hosted deployment). Anything else is a configuration error.
pub fn default_plan(raw: Option<&str>) -> Result<Option<crate::vocab::Plan>, ConfigError> {
    match raw.map(str::trim).unwrap_or("") {
        "" | "none" => Ok(None),
        p => crate::vocab::Plan::parse(p).map(Some).ok_or_else(|| ConfigError::Invalid {
            name: DEFAULT_PLAN,
            reason: "must be free, pro, team or none".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEYS: &str = "k1:1111111111111111111111111111111111111111111111111111111111111111";
    const SESSION: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn the_github_settings_are_off_complete_or_refused() {
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
        };
        let none = |_: &str| None;
        assert!(matches!(github(none, none, false), Ok(None)), "no client id: the integration is off");
        let id = vars(&[(GITHUB_CLIENT_ID, "Iv1.x")]);
        assert_eq!(github(id, none, false).err(), Some(ConfigError::Missing(GITHUB_CLIENT_SECRET)));
        let secret = vars(&[(GITHUB_CLIENT_SECRET, "s3cret")]);
        let gh = github(id, secret, false).unwrap().unwrap();
        assert_eq!((gh.web_url.as_str(), gh.api_url.as_str()), ("https://github.com", "https://api.github.com"));
        let plain = vars(&[(GITHUB_CLIENT_ID, "Iv1.x"), (GITHUB_API_URL, "http://127.0.0.1:9/api/v3")]);
        assert!(matches!(github(plain, secret, false), Err(ConfigError::Invalid { name: GITHUB_API_URL, .. })));
        assert!(github(plain, secret, true).unwrap().is_some(), "http only in development");
        assert!(format!("{gh:?}").find("s3cret").is_none(), "Debug never prints the secret");
    }

    #[test]
    fn the_default_plan_is_a_plan_or_none() {
        use crate::vocab::Plan;
        assert_eq!(default_plan(None), Ok(None));
        assert_eq!(default_plan(Some(" none ")), Ok(None));
        assert_eq!(default_plan(Some("free")), Ok(Some(Plan::Free)));
        assert!(default_plan(Some("enterprise")).is_err());
    }

    #[test]
    fn the_outbox_is_for_development_only_and_http_mail_needs_its_sender_and_key() {
        use crate::mail::Mailer;
        let none = |_: &str| None;
        assert_eq!(mailer(none, none, true), Ok(Mailer::Outbox));
        assert_eq!(mailer(none, none, false), Ok(Mailer::Off));
        let outbox = env(&[(EMAIL_PROVIDER, "outbox")]);
        assert!(matches!(mailer(&outbox, none, false), Err(ConfigError::Invalid { .. })));
        let http = env(&[(EMAIL_PROVIDER, "http"), (EMAIL_FROM, "FlowCP <no-reply@example.com>")]);
        assert_eq!(mailer(&http, none, false), Err(ConfigError::Missing(EMAIL_API_KEY)));
        let key = env(&[(EMAIL_API_KEY, "re_0123456789")]);
        let Ok(Mailer::Http { endpoint, .. }) = mailer(&http, &key, false) else { panic!("http mailer") };
        assert_eq!(endpoint, DEFAULT_EMAIL_ENDPOINT);
        let plain = env(&[(EMAIL_PROVIDER, "http"), (EMAIL_FROM, "a@b.c"), (EMAIL_ENDPOINT, "http://mail.example")]);
        assert!(matches!(mailer(&plain, &key, false), Err(ConfigError::Invalid { .. })));
        assert!(matches!(mailer(env(&[(EMAIL_PROVIDER, "smtp")]), none, true), Err(ConfigError::Invalid { .. })));
        assert!(redaction_values(key).contains(&"re_0123456789".to_string()));
    }

    #[test]
    fn a_previous_session_secret_is_optional_checked_and_redacted() {
        let s = load_secrets(env(&[(ENCRYPTION_KEYS, KEYS), (SESSION_SECRET, SESSION)])).unwrap();
        assert_eq!(s.session_secrets().count(), 1);
        let old = "an-old-session-secret-0123456789abcdef";
        let both = [(ENCRYPTION_KEYS, KEYS), (SESSION_SECRET, SESSION), (SESSION_SECRET_PREVIOUS, old)];
        let s = load_secrets(env(&both)).unwrap();
        let secrets: Vec<&[u8]> = s.session_secrets().collect();
        assert_eq!(secrets, [SESSION.as_bytes(), old.as_bytes()], "current first");
        assert!(redaction_values(env(&both)).contains(&old.to_string()));
        let short = [(ENCRYPTION_KEYS, KEYS), (SESSION_SECRET, SESSION), (SESSION_SECRET_PREVIOUS, "short")];
        assert!(matches!(load_secrets(env(&short)), Err(ConfigError::Invalid { name: SESSION_SECRET_PREVIOUS, .. })));
    }

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |n| pairs.iter().find(|(k, _)| *k == n).map(|(_, v)| v.to_string())
    }

    #[test]
    fn complete_configuration_loads() {
        let s = load_secrets(env(&[(ENCRYPTION_KEYS, KEYS), (SESSION_SECRET, SESSION)])).unwrap();
        assert_eq!(s.keyring.primary_id(), "k1");
        assert!(!format!("{s:?}").contains(SESSION));
    }

    #[test]
    fn each_missing_or_empty_secret_is_named() {
        assert_eq!(load_secrets(env(&[(SESSION_SECRET, SESSION)])).unwrap_err(), ConfigError::Missing(ENCRYPTION_KEYS));
        assert_eq!(
            load_secrets(env(&[(ENCRYPTION_KEYS, KEYS), (SESSION_SECRET, "  ")])).unwrap_err(),
            ConfigError::Missing(SESSION_SECRET)
        );
    }

    #[test]
    fn invalid_secrets_are_reported_without_their_values() {
        let err = load_secrets(env(&[(ENCRYPTION_KEYS, "k1:abcd"), (SESSION_SECRET, SESSION)])).unwrap_err();
        assert!(matches!(err, ConfigError::Invalid { name: ENCRYPTION_KEYS, .. }));
        let err = load_secrets(env(&[(ENCRYPTION_KEYS, KEYS), (SESSION_SECRET, "short-secret")])).unwrap_err();
        assert!(!err.to_string().contains("short-secret"), "{err}");
    }

    #[test]
    fn redaction_values_cover_the_session_secret_and_each_key() {
        let two = format!("{KEYS},k2:{}", "2".repeat(64));
        let v = redaction_values(env(&[(ENCRYPTION_KEYS, &two), (SESSION_SECRET, SESSION)]));
        assert!(v.contains(&SESSION.to_string()));
        assert!(v.contains(&"1".repeat(64)) && v.contains(&"2".repeat(64)), "{}", v.len());
        assert!(v.contains(&two));
    }

    #[test]
    fn the_token_secret_is_optional_checked_and_redacted() {
        let base = [(ENCRYPTION_KEYS, KEYS), (SESSION_SECRET, SESSION)];
        assert!(load_secrets(env(&base)).unwrap().token_secrets.is_none());
        let hex = "ab".repeat(32);
        let spec = format!("t1:{hex}");
        let with = [(ENCRYPTION_KEYS, KEYS), (SESSION_SECRET, SESSION), (TOKEN_SECRET, spec.as_str())];
        assert!(load_secrets(env(&with)).unwrap().token_secrets.is_some());
        assert!(redaction_values(env(&with)).contains(&hex));
        let short = [(ENCRYPTION_KEYS, KEYS), (SESSION_SECRET, SESSION), (TOKEN_SECRET, "t1:abcd")];
        let err = load_secrets(env(&short)).unwrap_err();
        assert!(matches!(err, ConfigError::Invalid { name: TOKEN_SECRET, .. }) && !err.to_string().contains("abcd"));
    }

    #[test]
    fn the_host_allow_list_fails_closed_when_empty() {
        for raw in [None, Some(""), Some(" , ")] {
            assert!(matches!(allowed_hosts(raw), Err(ConfigError::Invalid { name: ALLOWED_HOSTS, .. })), "{raw:?}");
        }
        assert_eq!(allowed_hosts(Some("MCP.example.com, localhost")).unwrap(), ["mcp.example.com", "localhost"]);
    }
}
