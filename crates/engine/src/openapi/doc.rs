//! Document-level facts: info, servers (with variable defaults) and security schemes.
//!
//! Invariant: every accessor tolerates wrong types (a list where an object belongs, ...) by
//! skipping the bad node; it never panics.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::pointer::Resolver;

/// `info` of the document.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DocumentInfo {
    pub title: String,
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

pub fn document_info(doc: &Value) -> DocumentInfo {
    let info = doc.get("info");
    let text = |k: &str| {
        info.and_then(|i| i.get(k)).and_then(|v| match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        })
    };
    DocumentInfo {
        title: text("title").unwrap_or_default(),
        version: text("version").unwrap_or_default(),
        description: text("description"),
    }
}

/// Server URLs kept per node (each tool carries its list).
pub const MAX_SERVERS: usize = 16;
/// Longest server URL kept, after variables are replaced (longer ones are ignored).
pub const MAX_SERVER_URL_CHARS: usize = 2_048;
/// Security schemes read from a document.
pub const MAX_SECURITY_SCHEMES: usize = 64;

/// Server URLs of a node that may carry `servers` (document, path item, operation), with
/// `{variables}` replaced by their defaults. Trailing `/` removed. At most [`MAX_SERVERS`]
/// of at most [`MAX_SERVER_URL_CHARS`] each: they are copied into every tool.
pub fn servers_of(node: &Value) -> Vec<String> {
    let Some(Value::Array(list)) = node.get("servers") else {
        return Vec::new();
    };
    list.iter().take(4 * MAX_SERVERS).filter_map(server_url).take(MAX_SERVERS).collect()
}

fn server_url(server: &Value) -> Option<String> {
    let url = server.get("url")?.as_str()?;
    let vars = server.get("variables").and_then(Value::as_object);
    let mut out = String::with_capacity(url.len());
    let mut rest = url;
    while let Some(start) = rest.find('{') {
        out.push_str(rest.get(..start)?);
        let after = rest.get(start + 1..)?;
        let end = after.find('}')?;
        let name = after.get(..end)?;
        let value = vars
            .and_then(|v| v.get(name))
            .and_then(|v| v.get("default"))
            .and_then(|d| match d {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
            .unwrap_or_default();
        if out.len() + value.len() > MAX_SERVER_URL_CHARS {
            return None;
        }
        out.push_str(&value);
        rest = after.get(end + 1..)?;
    }
    if out.len() + rest.len() > MAX_SERVER_URL_CHARS {
        return None;
    }
    out.push_str(rest);
    while out.ends_with('/') {
        out.pop();
    }
    Some(out)
}

/// Where an API key goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum ApiKeyLocation {
    Header,
    Query,
    Cookie,
}

/// One OAuth 2 flow of a scheme.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct OAuthFlowInfo {
    /// `authorizationCode`, `clientCredentials`, `implicit`, `password`, `deviceAuthorization`.
    pub flow: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_url: Option<String>,
    pub scopes: Vec<String>,
}

/// What kind of credential a security scheme wants.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum SecuritySchemeKind {
    /// Serialised as `{"type":"apiKey","in":"header","paramName":"X-API-Key"}`: the scheme's
    /// own `name` is the header/query/cookie name, renamed so it cannot collide with the
    /// flattened scheme name of [`SecuritySchemeInfo`].
    ApiKey {
        #[serde(rename = "in")]
        location: ApiKeyLocation,
        #[serde(rename = "paramName")]
        name: String,
    },
    Http {
        scheme: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bearer_format: Option<String>,
    },
    #[serde(rename = "oauth2")]
    OAuth2 {
        flows: Vec<OAuthFlowInfo>,
    },
    OpenIdConnect {
        url: String,
    },
    MutualTls,
    Unsupported {
        raw_type: String,
    },
}

/// A named security scheme of the document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct SecuritySchemeInfo {
    pub name: String,
    #[serde(flatten)]
    pub kind: SecuritySchemeKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// Security schemes from `components.securitySchemes` (2.0 is upgraded before this runs).
pub fn security_schemes(doc: &Value) -> Vec<SecuritySchemeInfo> {
    security_schemes_with(doc, Resolver::new(doc))
}

/// [`security_schemes`] of `doc`, whose `$ref`s `resolver` follows.
pub fn security_schemes_with<'a>(doc: &'a Value, resolver: Resolver<'a>) -> Vec<SecuritySchemeInfo> {
    let Some(Value::Object(schemes)) = doc.get("components").and_then(|c| c.get("securitySchemes")) else {
        return Vec::new();
    };
    schemes
        .iter()
        .take(MAX_SECURITY_SCHEMES)
        .filter_map(|(name, s)| {
            let s = resolver.deref_chain(s, 8).ok()?.0;
            Some(SecuritySchemeInfo {
                name: clip_chars(name, MAX_SCHEME_TEXT),
                kind: scheme_kind(s)?,
                description: s.get("description").and_then(Value::as_str).map(|d| clip_chars(d, 600)),
            })
        })
        .collect()
}

/// Longest name, URL or scope kept from a security scheme (schemes can be shared by `$ref`,
/// so their text is bounded, not copied whole).
const MAX_SCHEME_TEXT: usize = 2_048;
/// Scopes kept per OAuth flow.
const MAX_SCOPES: usize = 256;

fn clip_chars(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

fn str_of(v: &Value, k: &str) -> Option<String> {
    v.get(k).and_then(Value::as_str).map(|s| clip_chars(s, MAX_SCHEME_TEXT))
}

fn scheme_kind(s: &Value) -> Option<SecuritySchemeKind> {
    let t = s.get("type")?.as_str()?;
    Some(match t {
        "apiKey" => {
            let location = match s.get("in").and_then(Value::as_str) {
                Some("query") => ApiKeyLocation::Query,
                Some("cookie") => ApiKeyLocation::Cookie,
                _ => ApiKeyLocation::Header,
            };
            SecuritySchemeKind::ApiKey { location, name: str_of(s, "name").unwrap_or_default() }
        }
        "http" => SecuritySchemeKind::Http {
            scheme: str_of(s, "scheme").unwrap_or_default().to_ascii_lowercase(),
            bearer_format: str_of(s, "bearerFormat"),
        },
        "oauth2" => {
            let flows = s
                .get("flows")
                .and_then(Value::as_object)
                .map(|flows| {
                    flows
                        .iter()
                        .map(|(flow, f)| OAuthFlowInfo {
                            flow: flow.clone(),
                            authorization_url: str_of(f, "authorizationUrl"),
                            token_url: str_of(f, "tokenUrl"),
                            refresh_url: str_of(f, "refreshUrl"),
                            scopes: f
                                .get("scopes")
                                .and_then(Value::as_object)
                                .map(|m| m.keys().filter(|k| k.len() <= 256).take(MAX_SCOPES).cloned().collect())
                                .unwrap_or_default(),
                        })
                        .collect()
                })
                .unwrap_or_default();
            SecuritySchemeKind::OAuth2 { flows }
        }
        "openIdConnect" => SecuritySchemeKind::OpenIdConnect { url: str_of(s, "openIdConnectUrl").unwrap_or_default() },
        "mutualTLS" => SecuritySchemeKind::MutualTls,
        other => SecuritySchemeKind::Unsupported { raw_type: other.chars().take(40).collect() },
    })
}
