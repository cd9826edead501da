//! Which published server a grant is for.
//!
//! Clients send the RFC 8707 `resource` as they understood the protected-resource metadata:
//! with a trailing slash, upper-case scheme or host, a query string, or not at all. FlowCP
//! normalises it (scheme and host lower-cased, default port dropped, one trailing slash and
//! any query removed; a fragment is refused) and accepts exactly `<origin>/mcp/<server id>`
//! (or `<origin>/mcp`, FlowCP's own management server). The server id is the whole path
//! segment, so `/mcp/A` never matches `/mcp/AB` or `/mcp/A/x`. When `resource` is absent, the
//! server-scoped scope `mcp:<server id>` that FlowCP puts in its challenges names the server.

/// What a grant is for.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// A published server (its id).
    Server(String),
    /// FlowCP's own management MCP server at `<origin>/mcp`.
    Management,
}

impl Target {
    /// The canonical resource URI (the token audience and the PRM `resource`).
    pub fn canonical(&self, origin: &str) -> String {
        match self {
            Target::Server(id) => format!("{origin}/mcp/{id}"),
            Target::Management => format!("{origin}/mcp"),
        }
    }
}

/// Why a `resource` (or scope) names no server here: answered as `invalid_target`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidTarget(pub &'static str);

/// Longest `resource` read.
const MAX_RESOURCE_CHARS: usize = 2_048;
/// The scope prefix that names a server when `resource` is absent.
pub const SERVER_SCOPE_PREFIX: &str = "mcp:";

/// `origin`: this deployment's `scheme://host[:port]`.
pub fn target_of_resource(resource: &str, origin: &str) -> Result<Target, InvalidTarget> {
    if resource.len() > MAX_RESOURCE_CHARS {
        return Err(InvalidTarget("resource is too long"));
    }
    let url = url::Url::parse(resource.trim()).map_err(|_| InvalidTarget("resource is not an absolute URL"))?;
    if url.fragment().is_some() {
        return Err(InvalidTarget("resource must not have a fragment"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(InvalidTarget("resource must not carry credentials"));
    }
    // `Url` lower-cases scheme and host and drops a default port.
    if !url.origin().ascii_serialization().eq_ignore_ascii_case(origin) {
        return Err(InvalidTarget("resource is not on this authorization server's origin"));
    }
    let path = url.path();
    let path = path.strip_suffix('/').unwrap_or(path);
    match path.strip_prefix("/mcp") {
        Some("") => Ok(Target::Management),
        Some(rest) => {
            let id = rest.strip_prefix('/').ok_or(InvalidTarget("resource is not an MCP server URL"))?;
            if crate::vocab::is_plain_id(id, 64) {
                Ok(Target::Server(id.to_string()))
            } else {
                Err(InvalidTarget("resource is not an MCP server URL"))
            }
        }
        None => Err(InvalidTarget("resource is not an MCP server URL")),
    }
}

/// The server a space-separated scope list names with `mcp:<server id>` (exactly one).
pub fn target_of_scopes(scope: &str) -> Result<Target, InvalidTarget> {
    let mut named = scope.split_ascii_whitespace().filter_map(|s| s.strip_prefix(SERVER_SCOPE_PREFIX));
    match (named.next(), named.next()) {
        (Some(id), None) if crate::vocab::is_plain_id(id, 64) => Ok(Target::Server(id.to_string())),
        (Some(_), None) => Err(InvalidTarget("the server scope names no server")),
        (Some(_), Some(_)) => Err(InvalidTarget("the scopes name more than one server")),
        (None, _) => Err(InvalidTarget("neither resource nor a server scope names the server")),
    }
}

/// The target of a request: `resource` when present (and then a server scope, if any, must
/// agree), else the server scope.
pub fn target_of(resource: Option<&str>, scope: Option<&str>, origin: &str) -> Result<Target, InvalidTarget> {
    let from_scope = scope.map(target_of_scopes);
    match resource.map(str::trim).filter(|r| !r.is_empty()) {
        Some(r) => {
            let t = target_of_resource(r, origin)?;
            // Every server scope present must name the same server (a grant's scope text never
            // names another one).
            let others = scope
                .into_iter()
                .flat_map(str::split_ascii_whitespace)
                .filter_map(|s| s.strip_prefix(SERVER_SCOPE_PREFIX))
                .any(|id| Target::Server(id.to_string()) != t);
            if others {
                return Err(InvalidTarget("resource and the server scope name different servers"));
            }
            Ok(t)
        }
        None => from_scope.unwrap_or(Err(InvalidTarget("neither resource nor a server scope names the server"))),
    }
}

/// The scope that names `server_id` (in 401 challenges and the PRM `scopes_supported`).
pub fn server_scope(server_id: &str) -> String {
    format!("{SERVER_SCOPE_PREFIX}{server_id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const O: &str = "https://flowcp.example";

    #[test]
    fn spellings_clients_send_name_the_same_server() {
        for r in [
            "https://flowcp.example/mcp/srv_A1",
            "https://flowcp.example/mcp/srv_A1/",
            "HTTPS://FLOWCP.EXAMPLE/mcp/srv_A1",
            "https://flowcp.example:443/mcp/srv_A1",
            "https://flowcp.example/mcp/srv_A1?x=1",
            " https://flowcp.example/mcp/srv_A1 ",
        ] {
            assert_eq!(target_of_resource(r, O), Ok(Target::Server("srv_A1".into())), "{r}");
        }
        assert_eq!(target_of_resource("https://flowcp.example/mcp", O), Ok(Target::Management));
        assert_eq!(target_of_resource("https://flowcp.example/mcp/", O), Ok(Target::Management));
        assert_eq!(Target::Server("srv_A1".into()).canonical(O), "https://flowcp.example/mcp/srv_A1");
    }

    #[test]
    fn other_servers_paths_and_origins_are_invalid_targets() {
        for r in [
            "https://flowcp.example/mcp/srv_A1/tools",
            "https://flowcp.example/mcp/srv_A1#frag",
            "https://flowcp.example/mcpx/srv_A1",
            "https://flowcp.example/mcp/../mcp/srv_A1/x",
            "https://flowcp.example/mcp/srv%20A1",
            "https://evil.example/mcp/srv_A1",
            "http://flowcp.example/mcp/srv_A1",
            "https://flowcp.example:8443/mcp/srv_A1",
            "https://user:pw@flowcp.example/mcp/srv_A1",
            "https://flowcp.example/",
            "/mcp/srv_A1",
            "",
        ] {
            assert!(target_of_resource(r, O).is_err(), "{r}");
        }
        assert!(target_of_resource(&format!("https://flowcp.example/mcp/{}", "a".repeat(65)), O).is_err());
        assert!(target_of_resource(&"x".repeat(3_000), O).is_err());
    }

    #[test]
    fn without_resource_the_server_scope_decides_and_both_must_agree() {
        assert_eq!(target_of(None, Some("repo mcp:srv_A1"), O), Ok(Target::Server("srv_A1".into())));
        assert_eq!(target_of(Some(""), Some("mcp:srv_A1"), O), Ok(Target::Server("srv_A1".into())));
        assert!(target_of(None, Some("repo"), O).is_err());
        assert!(target_of(None, None, O).is_err());
        assert!(target_of(None, Some("mcp:srv_A1 mcp:srv_B2"), O).is_err());
        assert!(target_of(None, Some("mcp:srv/A1"), O).is_err());
        assert!(target_of(Some("https://flowcp.example/mcp/srv_A1"), Some("mcp:srv_B2"), O).is_err());
        assert!(target_of(Some("https://flowcp.example/mcp/srv_A1"), Some("mcp:srv_A1 mcp:srv_B2"), O).is_err());
        assert!(target_of(Some("https://flowcp.example/mcp"), Some("mcp:srv_A1"), O).is_err());
        assert_eq!(
            target_of(Some("https://flowcp.example/mcp/srv_A1"), Some("mcp:srv_A1 read"), O),
            Ok(Target::Server("srv_A1".into()))
        );
        assert_eq!(server_scope("srv_A1"), "mcp:srv_A1");
    }
}
