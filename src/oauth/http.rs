//! The authorization server's HTTP endpoints (one issuer for the whole origin).
//!
//! Live: `GET /.well-known/oauth-authorization-server` (RFC 8414) and `POST /oauth/register`
//! (RFC 7591), with CORS for browser-based clients (no cookies: `*` is safe). Not yet:
//! `/oauth/authorize`, `/oauth/token`, `/oauth/revoke` answer 503 `temporarily_unavailable`.
// TODO-correctness(issue 13): authorize + consent, callback, token (code and refresh with the
// generation compare-and-set), revocation, CIMD, OIDC discovery; then advertise CIMD.

use serde_json::{json, Value};

use super::{register, OAuthError};
use crate::api::{Request, Response, Services};
use crate::crypto::random_id;
use crate::net::Http;
use crate::store::oauth_clients::{self, OAuthClient};
use crate::store::{Db, Kv};

pub const METADATA_PATH: &str = "/.well-known/oauth-authorization-server";

/// RFC 8414 metadata: `issuer` is the origin exactly (no trailing slash).
pub fn metadata(origin: &str) -> Value {
    json!({
        "issuer": origin,
        "authorization_endpoint": format!("{origin}/oauth/authorize"),
        "token_endpoint": format!("{origin}/oauth/token"),
        "registration_endpoint": format!("{origin}/oauth/register"),
        "revocation_endpoint": format!("{origin}/oauth/revoke"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["none"],
        "revocation_endpoint_auth_methods_supported": ["none"],
        "authorization_response_iss_parameter_supported": true,
    })
}

fn cors(r: Response) -> Response {
    r.with_header("access-control-allow-origin", "*").with_header("access-control-expose-headers", "WWW-Authenticate")
}

/// Answers the authorization server's paths; `None` for any other path.
pub async fn handle<D: Db, K: Kv, H: Http>(svc: &Services<'_, D, K, H>, req: &Request) -> Option<Response> {
    let path = req.path.as_str();
    let known =
        matches!(path, METADATA_PATH | "/oauth/register" | "/oauth/authorize" | "/oauth/token" | "/oauth/revoke");
    if !known {
        return None;
    }
    let method = req.method.as_str();
    if method == "OPTIONS" {
        return Some(cors(
            Response::no_content()
                .with_header("access-control-allow-methods", "GET, POST, OPTIONS")
                .with_header("access-control-allow-headers", "Content-Type, Authorization, MCP-Protocol-Version")
                .with_header("access-control-max-age", "86400"),
        ));
    }
    let not_allowed = |allow: &str| {
        Some(cors(
            OAuthError::new(405, "invalid_request", format!("use {allow}")).to_response().with_header("allow", allow),
        ))
    };
    Some(match path {
        METADATA_PATH => match method {
            "GET" | "HEAD" => {
                cors(Response::json(200, metadata(&svc.origin)).with_header("cache-control", "max-age=300"))
            }
            _ => return not_allowed("GET"),
        },
        "/oauth/register" => match method {
            "POST" => cors(register_client(svc, req).await.unwrap_or_else(|e| e.to_response())),
            _ => return not_allowed("POST"),
        },
        _ => cors(
            OAuthError::new(
                503,
                "temporarily_unavailable",
                "FlowCP's OAuth flow for published servers is not live yet; OAuth-mode servers cannot grant tokens.",
            )
            .to_response(),
        ),
    })
}

async fn register_client<D: Db, K: Kv, H: Http>(
    svc: &Services<'_, D, K, H>,
    req: &Request,
) -> Result<Response, OAuthError> {
    if req.media_type().as_deref() != Some("application/json") {
        return Err(OAuthError::new(400, "invalid_client_metadata", "send the registration as application/json"));
    }
    let reg = register::parse(&req.body)?;
    let server_error = |_| OAuthError::new(500, "server_error", "the client could not be registered; try again");
    let id = random_id("fcp_cl_").map_err(|_| OAuthError::new(500, "server_error", "no randomness"))?;
    let client = OAuthClient {
        id: id.clone(),
        client_name: reg.client_name.clone(),
        redirect_uris: reg.redirect_uris.clone(),
        application_type: reg.application_type.clone(),
        created_at: svc.now_ms,
        last_used_at: None,
    };
    oauth_clients::insert(svc.db, &client).await.map_err(server_error)?;
    Ok(Response::json(201, register::response(&id, svc.now_ms, &reg)).with_header("cache-control", "no-store"))
}
