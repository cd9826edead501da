//! The product's vocabulary as types: auth modes, roles, verification states and finding
//! statuses. Each serialises to the string already stored in D1 and KV (`snake_case`), so no
//! migration is needed, and every match over one is exhaustive: adding a variant fails the
//! build at every site that must handle it.
//!
//! Credential placement reuses the engine's [`crate::openapi::ApiKeyLocation`].

use std::borrow::Cow;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// How a published server authenticates to the upstream API.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuthMode {
    /// No credential.
    None,
    /// An API key in a header, query parameter or cookie (`Placement`).
    ApiKey,
    /// `Authorization: Bearer <token>`.
    Bearer,
    /// Per-user OAuth (the end user's own upstream token).
    Oauth,
    /// Per-user API keys (issue 16): the end user signs in once at the server's portal, FlowCP
    /// keeps their upstream refresh token sealed and calls as them for the holder of their key.
    UserKey,
}

impl AuthMode {
    pub const ALL: [AuthMode; 5] =
        [AuthMode::None, AuthMode::ApiKey, AuthMode::Bearer, AuthMode::Oauth, AuthMode::UserKey];

    pub fn as_str(self) -> &'static str {
        match self {
            AuthMode::None => "none",
            AuthMode::ApiKey => "api_key",
            AuthMode::Bearer => "bearer",
            AuthMode::Oauth => "oauth",
            AuthMode::UserKey => "user_key",
        }
    }

    /// Does the server call the API as each end user, signed in at its OAuth provider (`oauth`,
    /// `user_key`)? Such a server has a provider configuration and no shared credential.
    pub fn signs_in_users(self) -> bool {
        matches!(self, AuthMode::Oauth | AuthMode::UserKey)
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == s)
    }
}

/// A workspace's plan (issue 16): what it may publish and how many calls its servers may make
/// a month (`crate::plans`). Billing is out of scope; the operator sets it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Plan {
    Free,
    Pro,
    Team,
}

impl Plan {
    pub const ALL: [Plan; 3] = [Plan::Free, Plan::Pro, Plan::Team];

    pub fn as_str(self) -> &'static str {
        match self {
            Plan::Free => "free",
            Plan::Pro => "pro",
            Plan::Team => "team",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

/// A member's role in a workspace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Owner,
    Admin,
    Member,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Owner, Role::Admin, Role::Member];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Member => "member",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// Owners and admins manage what touches credentials and what is on the air.
    pub fn can_admin(self) -> bool {
        match self {
            Role::Owner | Role::Admin => true,
            Role::Member => false,
        }
    }
}

/// Where a server's verification stands. Any configuration or curation change resets it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum VerificationState {
    Unverified,
    Verified,
    Failed,
}

impl VerificationState {
    pub const ALL: [VerificationState; 3] =
        [VerificationState::Unverified, VerificationState::Verified, VerificationState::Failed];

    pub fn as_str(self) -> &'static str {
        match self {
            VerificationState::Unverified => "unverified",
            VerificationState::Verified => "verified",
            VerificationState::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// The outcome of one verification check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FindingStatus {
    Pass,
    Fail,
    Skipped,
}

/// One verification check's outcome, as stored and shown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Finding {
    /// The check's name: `tools`, `tool_names`, `schemas`, `base_url`, `auth`, `probe`.
    pub check: Cow<'static, str>,
    pub status: FindingStatus,
    /// What was found, and what to fix when it failed.
    pub message: String,
    /// The probed tool (probe only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
}

impl Finding {
    pub fn new(check: &'static str, ok: bool, message: impl Into<String>) -> Self {
        let status = if ok { FindingStatus::Pass } else { FindingStatus::Fail };
        Finding { check: Cow::Borrowed(check), status, message: message.into(), tool: None }
    }

    pub fn skipped(check: &'static str, message: &str) -> Self {
        Finding { check: Cow::Borrowed(check), status: FindingStatus::Skipped, message: message.into(), tool: None }
    }
}

/// The last verification of a server, as stored with it.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct VerificationReport {
    pub findings: Vec<Finding>,
    /// Enabled tools when it ran.
    #[serde(default)]
    pub tool_count: u64,
}

/// A plain identifier: 1 to `max` ASCII letters, digits, `_` or `-` (ids in paths, key ids,
/// secret names). Anything else cannot name a resource and is refused before any lookup.
pub fn is_plain_id(s: &str, max: usize) -> bool {
    !s.is_empty() && s.len() <= max && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Compile-time guards: a new variant fails the build here until `ALL` (and so `parse`) names it.
#[allow(dead_code)]
fn all_lists_are_complete(m: AuthMode, r: Role, v: VerificationState) {
    match m {
        AuthMode::None | AuthMode::ApiKey | AuthMode::Bearer | AuthMode::Oauth | AuthMode::UserKey => {}
    }
    match r {
        Role::Owner | Role::Admin | Role::Member => {}
    }
    match v {
        VerificationState::Unverified | VerificationState::Verified | VerificationState::Failed => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_round_trips_through_the_stored_string() {
        for m in AuthMode::ALL {
            assert_eq!(AuthMode::parse(m.as_str()), Some(m));
            assert_eq!(serde_json::to_value(m).unwrap(), m.as_str());
        }
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(r));
            assert_eq!(serde_json::to_value(r).unwrap(), r.as_str());
        }
        for v in VerificationState::ALL {
            assert_eq!(VerificationState::parse(v.as_str()), Some(v));
            assert_eq!(serde_json::to_value(v).unwrap(), v.as_str());
        }
        assert_eq!(serde_json::to_value(FindingStatus::Skipped).unwrap(), "skipped");
        assert_eq!(AuthMode::parse("OAuth"), None, "stored strings are exact");
    }

    #[test]
    fn only_owners_and_admins_administer() {
        assert_eq!(Role::ALL.map(Role::can_admin), [true, true, false]);
    }
}
