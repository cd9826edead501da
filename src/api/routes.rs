//! The route table of `/api/v1` and path matching (the dispatcher is `api::handle`).
//!
//! The table is data: the isolation tests and the API's OpenAPI document are generated from it,
//! so a new route cannot be forgotten by either. `Access::Workspace` routes have `{ws}` as their
//! first parameter; the dispatcher checks membership before any handler runs.

use crate::error::ApiError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No session needed.
    Public,
    /// A valid session.
    Session,
    /// A valid session and membership of the `{ws}` workspace (non-members get 404).
    Workspace,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteId {
    Signup,
    Login,
    Logout,
    VerifyEmail,
    RequestPasswordReset,
    ConfirmPasswordReset,
    Me,
    UpdateMe,
    ChangePassword,
    ChangeEmail,
    ConfirmEmail,
    ListAgentConnections,
    RevokeAgentConnection,
    ResendVerification,
    AcceptInvitation,
    ListWorkspaces,
    CreateWorkspace,
    GetWorkspace,
    UpdateWorkspace,
    GetPlan,
    ListTemplates,
    CreateFromTemplate,
    ListMembers,
    Invite,
    ListInvitations,
    WithdrawInvitation,
    UpdateMember,
    RemoveMember,
    ListApps,
    CreateApp,
    GetApp,
    UpdateApp,
    DeleteApp,
    CreateImport,
    ListImports,
    RestoreImport,
    ListGitConnections,
    ConnectGit,
    DisconnectGit,
    TestGitSource,
    GetAppSource,
    PutAppSource,
    UpdateAppSource,
    DeleteAppSource,
    SyncAppSource,
    ListTools,
    UpdateTool,
    BulkUpdateTools,
    ListServers,
    CreateServer,
    GetServer,
    UpdateServer,
    DeleteServer,
    PutCredential,
    DeleteCredential,
    CreateKey,
    ListKeys,
    RevokeKey,
    ListConnections,
    RevokeConnection,
    ListKeyUsers,
    RevokeKeyUser,
    Verify,
    Publish,
    Unpublish,
    ListVersions,
    TryTool,
    Onboard,
    ListSecrets,
    PutSecret,
    DeleteSecret,
    ListAudit,
    Activity,
    DeleteWorkspace,
    DeleteAccount,
    Export,
    ApiDocument,
}

#[derive(Debug, Clone, Copy)]
pub struct Route {
    pub method: &'static str,
    pub pattern: &'static str,
    pub id: RouteId,
    pub access: Access,
    pub summary: &'static str,
}

const fn r(method: &'static str, pattern: &'static str, id: RouteId, access: Access, summary: &'static str) -> Route {
    Route { method, pattern, id, access, summary }
}

use Access::{Public, Session, Workspace};
use RouteId::*;

pub const ROUTES: &[Route] = &[
    r("POST", "/api/v1/auth/signup", Signup, Public, "Create an account and its first workspace"),
    r("POST", "/api/v1/auth/login", Login, Public, "Log in; sets the session cookie"),
    r("POST", "/api/v1/auth/logout", Logout, Session, "Log out; revokes the session"),
    r(
        "POST",
        "/api/v1/auth/verify-email",
        VerifyEmail,
        Session,
        "Redeem an emailed address-verification link (signed in as its account)",
    ),
    r(
        "POST",
        "/api/v1/auth/password-reset",
        RequestPasswordReset,
        Public,
        "Email a password-reset link (same answer for any address)",
    ),
    r(
        "POST",
        "/api/v1/auth/password-reset/confirm",
        ConfirmPasswordReset,
        Public,
        "Set a new password with a reset link (ends every session)",
    ),
    r("GET", "/api/v1/me", Me, Session, "The signed-in user, workspaces and CSRF token"),
    r(
        "POST",
        "/api/v1/me/password",
        ChangePassword,
        Session,
        "Change the password (ends every session; answers a new one)",
    ),
    r("PATCH", "/api/v1/me", UpdateMe, Session, "Change the display name"),
    r(
        "POST",
        "/api/v1/me/email",
        ChangeEmail,
        Session,
        "Ask to change the address: a link goes to the new one, which takes effect when redeemed",
    ),
    r(
        "POST",
        "/api/v1/auth/confirm-email",
        ConfirmEmail,
        Session,
        "Redeem an emailed address-change link (signed in as its account)",
    ),
    r(
        "GET",
        "/api/v1/me/connections",
        ListAgentConnections,
        Session,
        "Agents connected to FlowCP's own MCP server as this account (no tokens)",
    ),
    r(
        "DELETE",
        "/api/v1/me/connections/{conn}",
        RevokeAgentConnection,
        Session,
        "Disconnect an agent: its tokens stop working at once",
    ),
    r("POST", "/api/v1/me/verification", ResendVerification, Session, "Email a new address-verification link"),
    r("POST", "/api/v1/invitations/accept", AcceptInvitation, Session, "Accept an invitation (verified invitee)"),
    r("GET", "/api/v1/templates", ListTemplates, Session, "App templates: a document and server settings in one click"),
    r("GET", "/api/v1/workspaces", ListWorkspaces, Session, "Workspaces the user is a member of"),
    r("POST", "/api/v1/workspaces", CreateWorkspace, Session, "Create a workspace"),
    r("GET", "/api/v1/workspaces/{ws}", GetWorkspace, Workspace, "One workspace"),
    r(
        "PATCH",
        "/api/v1/workspaces/{ws}",
        UpdateWorkspace,
        Workspace,
        "Rename the workspace or set its audit retention (owners, admins)",
    ),
    r(
        "GET",
        "/api/v1/workspaces/{ws}/plan",
        GetPlan,
        Workspace,
        "The plan, its limits and this month's calls per server",
    ),
    r("GET", "/api/v1/workspaces/{ws}/members", ListMembers, Workspace, "Members and roles"),
    r("POST", "/api/v1/workspaces/{ws}/invitations", Invite, Workspace, "Invite an address (owners, admins)"),
    r("GET", "/api/v1/workspaces/{ws}/invitations", ListInvitations, Workspace, "Pending invitations (admins)"),
    r("DELETE", "/api/v1/workspaces/{ws}/invitations/{inv}", WithdrawInvitation, Workspace, "Withdraw an invitation"),
    r("PATCH", "/api/v1/workspaces/{ws}/members/{user}", UpdateMember, Workspace, "Change a member's role (owners)"),
    r("DELETE", "/api/v1/workspaces/{ws}/members/{user}", RemoveMember, Workspace, "Remove a member, or leave"),
    r("GET", "/api/v1/workspaces/{ws}/apps", ListApps, Workspace, "Apps, cursor paged"),
    r("POST", "/api/v1/workspaces/{ws}/apps", CreateApp, Workspace, "Create an app"),
    r("GET", "/api/v1/workspaces/{ws}/apps/{app}", GetApp, Workspace, "One app"),
    r("PATCH", "/api/v1/workspaces/{ws}/apps/{app}", UpdateApp, Workspace, "Rename an app"),
    r("DELETE", "/api/v1/workspaces/{ws}/apps/{app}", DeleteApp, Workspace, "Delete an app and its data"),
    r("POST", "/api/v1/workspaces/{ws}/apps/{app}/imports", CreateImport, Workspace, "Import a document (upload)"),
    r("GET", "/api/v1/workspaces/{ws}/apps/{app}/imports", ListImports, Workspace, "Import history"),
    r(
        "POST",
        "/api/v1/workspaces/{ws}/apps/{app}/imports/{import}/restore",
        RestoreImport,
        Workspace,
        "Rollback: import an earlier import's document again (curation kept; servers to draft)",
    ),
    r("GET", "/api/v1/workspaces/{ws}/git/connections", ListGitConnections, Workspace, "Git connections (no tokens)"),
    r(
        "POST",
        "/api/v1/workspaces/{ws}/git/connections",
        ConnectGit,
        Workspace,
        "Connect GitHub: a pending connection and the consent URL to open (admins)",
    ),
    r(
        "DELETE",
        "/api/v1/workspaces/{ws}/git/connections/{conn}",
        DisconnectGit,
        Workspace,
        "Disconnect: tokens deleted, its apps stop syncing (admins)",
    ),
    r(
        "POST",
        "/api/v1/workspaces/{ws}/git/test",
        TestGitSource,
        Workspace,
        "Test a connection: a repository's branches and whether a document there imports",
    ),
    r(
        "GET",
        "/api/v1/workspaces/{ws}/apps/{app}/source",
        GetAppSource,
        Workspace,
        "What the app follows in Git, and its last sync",
    ),
    r(
        "PUT",
        "/api/v1/workspaces/{ws}/apps/{app}/source",
        PutAppSource,
        Workspace,
        "Follow a document on a branch (webhook created when allowed; first sync run) (admins)",
    ),
    r(
        "PATCH",
        "/api/v1/workspaces/{ws}/apps/{app}/source",
        UpdateAppSource,
        Workspace,
        "Turn auto-publish on or off (admins)",
    ),
    r("DELETE", "/api/v1/workspaces/{ws}/apps/{app}/source", DeleteAppSource, Workspace, "Stop following Git (admins)"),
    r(
        "POST",
        "/api/v1/workspaces/{ws}/apps/{app}/source/sync",
        SyncAppSource,
        Workspace,
        "Sync now: import the branch head, re-verify, auto-publish (admins)",
    ),
    r("GET", "/api/v1/workspaces/{ws}/apps/{app}/tools", ListTools, Workspace, "Tools, paged, filtered"),
    r("PATCH", "/api/v1/workspaces/{ws}/apps/{app}/tools/{tool}", UpdateTool, Workspace, "Curate one tool"),
    r("POST", "/api/v1/workspaces/{ws}/apps/{app}/tools/bulk", BulkUpdateTools, Workspace, "Enable/disable many"),
    r("GET", "/api/v1/workspaces/{ws}/servers", ListServers, Workspace, "Servers"),
    r("POST", "/api/v1/workspaces/{ws}/servers", CreateServer, Workspace, "Create a server for an app"),
    r("GET", "/api/v1/workspaces/{ws}/servers/{srv}", GetServer, Workspace, "One server, MCP URL, client config"),
    r("PATCH", "/api/v1/workspaces/{ws}/servers/{srv}", UpdateServer, Workspace, "Configure a server"),
    r("DELETE", "/api/v1/workspaces/{ws}/servers/{srv}", DeleteServer, Workspace, "Delete a server"),
    r("PUT", "/api/v1/workspaces/{ws}/servers/{srv}/credential", PutCredential, Workspace, "Set the credential"),
    r("DELETE", "/api/v1/workspaces/{ws}/servers/{srv}/credential", DeleteCredential, Workspace, "Clear it"),
    r("POST", "/api/v1/workspaces/{ws}/servers/{srv}/keys", CreateKey, Workspace, "Create an access key"),
    r("GET", "/api/v1/workspaces/{ws}/servers/{srv}/keys", ListKeys, Workspace, "Access keys (no secrets)"),
    r("DELETE", "/api/v1/workspaces/{ws}/servers/{srv}/keys/{key}", RevokeKey, Workspace, "Revoke a key"),
    r(
        "GET",
        "/api/v1/workspaces/{ws}/servers/{srv}/connections",
        ListConnections,
        Workspace,
        "End users' OAuth connections (no tokens)",
    ),
    r(
        "DELETE",
        "/api/v1/workspaces/{ws}/servers/{srv}/connections/{conn}",
        RevokeConnection,
        Workspace,
        "Revoke a connection",
    ),
    r(
        "GET",
        "/api/v1/workspaces/{ws}/servers/{srv}/key-users",
        ListKeyUsers,
        Workspace,
        "End users of a per-user-key server (hashes, no tokens)",
    ),
    r(
        "DELETE",
        "/api/v1/workspaces/{ws}/servers/{srv}/key-users/{user}",
        RevokeKeyUser,
        Workspace,
        "Revoke an end user: their tokens deleted, every key ended",
    ),
    r(
        "POST",
        "/api/v1/workspaces/{ws}/templates/{template}",
        CreateFromTemplate,
        Workspace,
        "An app and a draft server from a template (owners, admins)",
    ),
    r(
        "POST",
        "/api/v1/workspaces/{ws}/onboard",
        Onboard,
        Workspace,
        "From a document URL to a verified, published server in one call, with a report of every step (admins)",
    ),
    r("POST", "/api/v1/workspaces/{ws}/servers/{srv}/verify", Verify, Workspace, "Run verification"),
    r("POST", "/api/v1/workspaces/{ws}/servers/{srv}/publish", Publish, Workspace, "Publish the manifest"),
    r("POST", "/api/v1/workspaces/{ws}/servers/{srv}/unpublish", Unpublish, Workspace, "Take it off the air"),
    r(
        "GET",
        "/api/v1/workspaces/{ws}/servers/{srv}/versions",
        ListVersions,
        Workspace,
        "Published versions, and what the draft changes against the live one",
    ),
    r(
        "POST",
        "/api/v1/workspaces/{ws}/servers/{srv}/try",
        TryTool,
        Workspace,
        "The exact request a tool call would send (credential redacted); with run, send it (admins)",
    ),
    r("GET", "/api/v1/workspaces/{ws}/secrets", ListSecrets, Workspace, "Secret names (never values)"),
    r("PUT", "/api/v1/workspaces/{ws}/secrets/{name}", PutSecret, Workspace, "Set a secret (write-only)"),
    r("DELETE", "/api/v1/workspaces/{ws}/secrets/{name}", DeleteSecret, Workspace, "Delete a secret"),
    r("GET", "/api/v1/workspaces/{ws}/audit", ListAudit, Workspace, "Audit events, newest first, cursor paged"),
    r(
        "GET",
        "/api/v1/workspaces/{ws}/activity",
        Activity,
        Workspace,
        "Calls, errors and p50/p95 latency per time bucket, filtered like the audit log",
    ),
    r("DELETE", "/api/v1/workspaces/{ws}", DeleteWorkspace, Workspace, "Delete a workspace and all its data"),
    r("DELETE", "/api/v1/me", DeleteAccount, Session, "Delete the account"),
    r("GET", "/api/v1/me/export", Export, Session, "Export all of the account's data"),
    r("GET", "/api/v1/openapi.json", ApiDocument, Public, "This API's OpenAPI 3.1 document"),
];

/// Path parameters captured by a route pattern, in order.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Params(pub Vec<(&'static str, String)>);

impl Params {
    pub fn get(&self, name: &str) -> &str {
        self.0.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_str()).unwrap_or("")
    }
}

fn match_pattern(pattern: &'static str, path: &str) -> Option<Params> {
    let mut params = Params::default();
    let mut pat = pattern.split('/');
    let mut segs = path.split('/');
    loop {
        match (pat.next(), segs.next()) {
            (None, None) => return Some(params),
            (Some(p), Some(s)) if p.starts_with('{') && p.ends_with('}') => {
                // Ids are short and url-safe; anything else cannot name a resource.
                if !crate::vocab::is_plain_id(s, 64) {
                    return None;
                }
                params.0.push((&p[1..p.len() - 1], s.to_string()));
            }
            (Some(p), Some(s)) if p == s => {}
            _ => return None,
        }
    }
}

/// Finds the route: 404 when no pattern matches the path, 405 when only the method is wrong.
pub fn find(method: &str, path: &str) -> Result<(&'static Route, Params), ApiError> {
    let path = path.strip_suffix('/').filter(|p| !p.is_empty()).unwrap_or(path);
    let mut path_matched = false;
    for route in ROUTES {
        if let Some(params) = match_pattern(route.pattern, path) {
            if route.method == method {
                return Ok((route, params));
            }
            path_matched = true;
        }
    }
    Err(if path_matched { ApiError::method_not_allowed() } else { ApiError::not_found() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_capture_ids_and_refuse_odd_segments() {
        let (route, params) = find("GET", "/api/v1/workspaces/ws_abc/apps/app_1").unwrap();
        assert_eq!(route.id, GetApp);
        assert_eq!(params.get("ws"), "ws_abc");
        assert_eq!(params.get("app"), "app_1");
        assert_eq!(find("GET", "/api/v1/workspaces/ws%20x/apps").unwrap_err().status, 404);
        assert_eq!(find("GET", "/api/v1/workspaces//apps").unwrap_err().status, 404);
        assert_eq!(find("PUT", "/api/v1/workspaces/ws_1/apps").unwrap_err().status, 405);
        assert_eq!(find("GET", "/api/v1/me/").unwrap().0.id, Me);
    }

    #[test]
    fn every_workspace_route_starts_with_the_workspace_parameter() {
        for r in ROUTES.iter().filter(|r| r.access == Access::Workspace) {
            assert!(r.pattern.starts_with("/api/v1/workspaces/{ws}"), "{}", r.pattern);
        }
    }

    #[test]
    fn route_patterns_are_unique() {
        let mut seen = std::collections::BTreeSet::new();
        for r in ROUTES {
            assert!(seen.insert((r.method, r.pattern)), "duplicate route {} {}", r.method, r.pattern);
        }
    }
}
