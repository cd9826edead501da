//! How resources look in API answers: one type per answer, so the owner API's OpenAPI document
//! ([`super::contract`]) is derived from the same types the handlers serialise and the two
//! cannot drift. Stored rows that are shown as they are (`App`, `Workspace`, `AccessKey`...)
//! live in `store/`; the types here are the views that are more than a row.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Serialize;
use serde_json::Value;

use crate::store::apps::{App, ImportRecord, ToolRow};
use crate::store::audit::AuditRow;
use crate::store::secrets::SecretInfo;
use crate::store::servers::{AccessKey, Server};
use crate::store::sessions::SessionTimes;
use crate::store::workspaces::{Member, Workspace};
use crate::tools::{Annotations, ToolDef};
use crate::vocab::{AuthMode, Finding, Role, VerificationState};

/// A list.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "{T}List")]
pub struct Items<T> {
    pub items: Vec<T>,
}

/// One page of a list; pass `next_cursor` back as `cursor` for the next (null on the last).
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "{T}Page")]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// The signed-in user.
#[derive(Debug, Serialize, JsonSchema)]
pub struct UserView {
    pub id: String,
    pub email: String,
    pub display_name: String,
    /// Whether the account proved it owns `email`. Until it does, it cannot join workspaces,
    /// create access keys or publish.
    pub email_verified: bool,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct SignedUp {
    pub user: UserView,
    /// The workspace created with the account.
    pub workspace: Workspace,
    /// Send as `X-CSRF-Token` on every state-changing call.
    pub csrf_token: String,
    /// Whether the verification message went out (if not, `POST /me/verification` resends it).
    pub verification_email_sent: bool,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct LoggedIn {
    pub user: UserView,
    pub csrf_token: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct Me {
    pub user: UserView,
    pub workspaces: Vec<Workspace>,
    pub csrf_token: String,
}

/// The password is changed; every session ended, and this answer starts a new one (its cookie
/// is in `Set-Cookie`).
#[derive(Debug, Serialize, JsonSchema)]
pub struct PasswordChanged {
    pub csrf_token: String,
}

/// A message is on its way (or, for a password reset, is if an account uses the address: the
/// answer is the same either way).
#[derive(Debug, Serialize, JsonSchema)]
pub struct MailAccepted {
    pub message: String,
}

/// The address is verified.
#[derive(Debug, Serialize, JsonSchema)]
pub struct EmailVerified {
    pub email: String,
    pub email_verified: bool,
}

/// A member's role after a change.
#[derive(Debug, Serialize, JsonSchema)]
pub struct MemberRole {
    pub user_id: String,
    pub role: Role,
}

/// The tool as the dashboard shows it: curation over the generated definition.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ToolView {
    pub id: String,
    /// The name clients see (curated or generated).
    pub name: String,
    pub generated_name: String,
    /// `METHOD /path`: what ties the tool to its operation across re-imports.
    pub operation_key: String,
    pub method: String,
    pub path: String,
    pub tags: Vec<String>,
    pub enabled: bool,
    pub title: Option<String>,
    /// The description clients see (curated or generated).
    pub description: String,
    pub generated_description: String,
    pub description_curated: bool,
    pub annotations: Option<Annotations>,
    pub deprecated: bool,
    pub updated_at: i64,
    /// With `include=schema` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_schema: Option<Value>,
    /// With `include=schema` only; `null` when the operation declares no JSON answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_schema: Option<Value>,
}

impl ToolView {
    pub fn of(t: &ToolRow, with_schema: bool) -> Self {
        let def: Option<ToolDef> = serde_json::from_str(&t.def_json).ok();
        let generated_description = def.as_ref().map(|d| d.description.clone()).unwrap_or_default();
        let schemas = def.as_ref().filter(|_| with_schema);
        ToolView {
            id: t.id.clone(),
            name: t.name.clone(),
            generated_name: t.generated_name.clone(),
            operation_key: t.operation_key.clone(),
            method: t.method.clone(),
            path: t.path.clone(),
            tags: t.tags.clone(),
            enabled: t.enabled,
            title: def.as_ref().and_then(|d| d.title.clone()),
            description: t.description.clone().unwrap_or_else(|| generated_description.clone()),
            generated_description,
            description_curated: t.description.is_some(),
            annotations: def.as_ref().map(|d| d.annotations.clone()),
            deprecated: def.as_ref().is_some_and(|d| d.deprecated),
            updated_at: t.updated_at,
            input_schema: schemas.map(|d| d.input_schema.clone()),
            output_schema: schemas.map(|d| d.output_schema.clone().unwrap_or(Value::Null)),
        }
    }
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct BulkUpdated {
    pub updated: u64,
    pub enabled: bool,
}

/// A server's last verification.
#[derive(Debug, Serialize, JsonSchema)]
pub struct VerificationView {
    pub state: VerificationState,
    pub checked_at: Option<i64>,
    /// Empty until the first verification.
    pub findings: Vec<Finding>,
}

/// A remote MCP server entry of a client configuration (Cursor, VS Code).
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct RemoteEntry {
    #[serde(rename = "type")]
    pub kind: String,
    pub url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub headers: Option<BTreeMap<String, String>>,
}

/// A local bridge entry (Claude Desktop runs `mcp-remote`).
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct CommandEntry {
    pub command: String,
    pub args: Vec<String>,
}

/// `{"mcpServers": {...}}`, the shape Claude Desktop and Cursor read.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "{T}Servers")]
#[allow(non_snake_case)]
pub struct McpServersOf<T> {
    pub mcpServers: BTreeMap<String, T>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct VsCodeConfig {
    pub servers: BTreeMap<String, RemoteEntry>,
}

/// Ready-to-paste client configuration for the server.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ClientConfig {
    pub claude_desktop: McpServersOf<CommandEntry>,
    /// A `claude mcp add` command line.
    pub claude_code: String,
    pub cursor: McpServersOf<RemoteEntry>,
    pub vscode: VsCodeConfig,
}

/// The server as the dashboard shows it, with its MCP URL and client configuration.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ServerView {
    pub id: String,
    pub app_id: String,
    pub name: String,
    pub auth_mode: AuthMode,
    #[schemars(with = "crate::store::servers::AuthConfig")]
    pub auth_config: Value,
    /// Whether a credential is stored (its value is never shown).
    pub credential_set: bool,
    pub is_public: bool,
    pub discovery_mode: bool,
    pub base_url: Option<String>,
    pub probe_tool: Option<String>,
    /// Browser origins allowed to call the published server; `null`: any origin.
    pub allowed_origins: Option<Vec<String>>,
    /// Skills: `list_skills` and `tool_search` over named bundles (`null`: off).
    pub skills: Option<crate::manifest::SkillsConfig>,
    /// The argument whose value each call's usage row records as its target.
    pub usage_target: Option<String>,
    /// Synced tools: each user's answers are kept and served by `*_store_*` tools (team plan).
    pub store_tools: Option<Vec<String>>,
    pub verification: VerificationView,
    pub published: bool,
    pub published_version: Option<i64>,
    pub published_at: Option<i64>,
    /// Published, and changed since: the live manifest is older than this configuration.
    pub has_draft_changes: bool,
    pub mcp_url: String,
    /// `user_key` servers: the page where end users sign in and get their key.
    pub portal_url: Option<String>,
    pub client_config: ClientConfig,
    pub created_at: i64,
    pub updated_at: i64,
}

impl ServerView {
    pub fn of(origin: &str, s: &Server) -> Self {
        let url = format!("{origin}/mcp/{}", s.id);
        let portal = crate::oauth::keys::portal_url(origin, &s.id);
        let headers = match s.auth_mode {
            _ if s.is_public && s.auth_mode != AuthMode::UserKey => None,
            AuthMode::Oauth => None,
            // Each end user's own key, from the server's portal.
            AuthMode::UserKey => Some(BTreeMap::from([("X-API-Key".to_string(), format!("<your key from {portal}>"))])),
            AuthMode::None | AuthMode::ApiKey | AuthMode::Bearer => {
                Some(BTreeMap::from([("Authorization".to_string(), "Bearer <your server access key>".to_string())]))
            }
        };
        let slug: String =
            s.name.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect();
        let claude_code = match headers.as_ref().and_then(|h| h.iter().next()) {
            Some((name, value)) => format!("claude mcp add --transport http {slug} {url} --header \"{name}: {value}\""),
            None => format!("claude mcp add --transport http {slug} {url}"),
        };
        let remote = RemoteEntry { kind: "http".into(), url: url.clone(), headers };
        let bridge = CommandEntry { command: "npx".into(), args: vec!["-y".into(), "mcp-remote".into(), url.clone()] };
        let report = s.verification.as_ref();
        ServerView {
            id: s.id.clone(),
            app_id: s.app_id.clone(),
            name: s.name.clone(),
            auth_mode: s.auth_mode,
            auth_config: s.auth_config.clone(),
            credential_set: s.credential_key.is_some(),
            is_public: s.is_public,
            discovery_mode: s.discovery_mode,
            base_url: s.base_url_override.clone(),
            probe_tool: s.probe_tool.clone(),
            allowed_origins: s.allowed_origins.clone(),
            skills: s.skills.clone(),
            usage_target: s.usage_target.clone(),
            store_tools: s.store_tools.clone(),
            verification: VerificationView {
                state: s.verification_state,
                checked_at: s.verified_at,
                findings: report.map(|r| r.findings.clone()).unwrap_or_default(),
            },
            published: s.published_version.is_some(),
            published_version: s.published_version,
            published_at: s.published_at,
            has_draft_changes: s.published_version.is_some() && s.draft_changed_at > s.published_at,
            mcp_url: url,
            portal_url: (s.auth_mode == AuthMode::UserKey).then_some(portal),
            client_config: ClientConfig {
                claude_desktop: McpServersOf { mcpServers: BTreeMap::from([(slug.clone(), bridge)]) },
                claude_code,
                cursor: McpServersOf { mcpServers: BTreeMap::from([(slug.clone(), remote.clone())]) },
                vscode: VsCodeConfig { servers: BTreeMap::from([(slug, remote)]) },
            },
            created_at: s.created_at,
            updated_at: s.updated_at,
        }
    }
}

/// Whether a credential is stored, and the one origin it is sent to.
#[derive(Debug, Serialize, JsonSchema)]
pub struct CredentialState {
    pub credential_set: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential_origin: Option<String>,
}

/// A new access key: the only answer that carries the secret.
#[derive(Debug, Serialize, JsonSchema)]
pub struct CreatedKey {
    #[serde(flatten)]
    pub info: AccessKey,
    /// The secret: shown once, stored only as a hash.
    pub key: String,
    pub note: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct Verified {
    pub state: VerificationState,
    pub findings: Vec<Finding>,
    pub checked_at: i64,
}

/// What was put on the air.
#[derive(Debug, Serialize, JsonSchema)]
pub struct PublishedManifest {
    pub version: i64,
    pub tools: u64,
    pub bytes: u64,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct Published {
    pub server: ServerView,
    pub manifest: PublishedManifest,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct SecretSet {
    pub name: String,
    pub set: bool,
    pub updated_at: i64,
}

/// The data export: everything FlowCP holds about the account and its workspaces, never a
/// secret value, password hash, key hash or token.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Export {
    pub exported_at: i64,
    pub user: ExportedUser,
    pub sessions: Vec<SessionTimes>,
    pub workspaces: Vec<ExportedWorkspace>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ExportedUser {
    pub id: String,
    pub email: String,
    pub display_name: String,
    pub terms_accepted_at: i64,
    pub privacy_accepted_at: i64,
    pub created_at: i64,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ExportedWorkspace {
    pub workspace: Workspace,
    pub members: Vec<Member>,
    pub apps: Vec<ExportedApp>,
    pub servers: Vec<ExportedServer>,
    pub secrets: Vec<SecretInfo>,
    pub audit_events: Vec<AuditRow>,
    /// Connections to GitHub (never their tokens) and what the apps follow (never the webhook
    /// secrets).
    pub git_connections: Vec<crate::store::git::Connection>,
    pub git_sources: Vec<crate::store::git::Source>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ExportedApp {
    pub app: App,
    pub imports: Vec<ImportRecord>,
    pub tools: Vec<ToolView>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ExportedServer {
    pub server: Server,
    pub credential_set: bool,
    pub access_keys: Vec<AccessKey>,
}

/// A server's published versions, and what publishing the draft now would change.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Versions {
    /// The version on the air (`null` when unpublished).
    pub live_version: Option<i64>,
    /// Newest first (versions published before the history was kept are not listed).
    pub versions: Vec<crate::store::servers::VersionRow>,
    /// The draft against the live version; `null` when nothing is live.
    pub draft: Option<DraftDiff>,
}

/// The draft (enabled tools with curation applied, and settings) against the live manifest.
#[derive(Debug, Default, Serialize, JsonSchema)]
pub struct DraftDiff {
    /// Tool names the draft adds, removes, and changes (description, schemas or request).
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
    /// Server settings that differ, by name (`auth_mode`, `public`, `base_url`, ...).
    pub settings: Vec<String>,
}

pub use crate::service::verify::{PlannedRequest, TriedResponse, TryOutcome};

/// Activity over time, filtered like the audit log.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ActivitySeries {
    pub since: i64,
    pub until: i64,
    pub bucket_ms: i64,
    /// Buckets with at least one call, oldest first.
    pub buckets: Vec<crate::store::audit::Bucket>,
    /// The whole window.
    pub total: crate::store::audit::Stats,
    /// The 20 busiest tools of the window.
    pub tools: Vec<crate::store::audit::ToolStats>,
    /// The window held more events than one answer reads (the newest 100,000 were counted):
    /// narrow it for exact figures.
    pub capped: bool,
}
