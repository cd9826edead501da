//! Syncing an app with the document it follows in Git (issue 17): read the branch head (one
//! conditional request when nothing moved), fetch the document at that commit with the files its
//! `$ref`s name, import it with curation kept, then re-verify the app's servers and, with
//! auto-publish, publish those on the air whose verification passes.
//!
//! Invariants: a document that cannot be imported changes nothing (the import fails before any
//! write) and the sync's report says why; a webhook delivery only triggers a sync, whose content
//! always comes from the provider's API at the branch head, never from the delivery; a sync acts
//! as the admin who set the source up, read again each time (no longer an admin: it stops).

use std::collections::BTreeMap;
use std::future::Future;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::apps::{import_bytes, Origin};
use super::context::Member;
use super::{servers, Services};
use crate::crypto::sha256_hex;
use crate::error::{limits, ApiError};
use crate::git::github::GitHub;
use crate::git::tokens::{TokenFailure, Tokens, REFUSED};
use crate::git::{GitError, GitProvider, HeadCheck};
use crate::net::Http;
use crate::store::apps::{self as apps_store, CommitInfo};
use crate::store::git::{self as store, Connection, Source, SyncStatus};
use crate::store::{servers as servers_store, users, workspaces, Db, Kv};

/// Files a document may span (its root and the files its `$ref`s name).
pub const MAX_FILES: usize = 50;

/// What started a sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[schemars(rename = "SyncTrigger")]
pub enum Trigger {
    /// A signed push delivery.
    Webhook,
    /// The cron's poll.
    Poll,
    /// "Sync now".
    Manual,
    /// The source was just set.
    Setup,
}

/// How a sync ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[schemars(rename = "SyncOutcome")]
pub enum Outcome {
    /// The branch or the document did not change.
    Unchanged,
    /// A new import was made from the commit.
    Imported,
    /// The document at the commit could not be imported: the tools are unchanged.
    Failed,
    /// The provider could not be reached: the next poll tries again.
    Unavailable,
    /// Syncing cannot continue until the owner acts.
    Broken,
}

/// One server of the app after a sync.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ServerSync {
    pub server_id: String,
    pub name: String,
    /// `verified`, `failed` or `unverified` (verification could not run).
    pub verification: String,
    /// The version auto-publish put on the air.
    pub published_version: Option<i64>,
    /// Why it was not verified or published.
    pub detail: Option<String>,
}

/// A sync's report: what changed and what happened to the servers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SyncReport {
    pub trigger: Trigger,
    pub at: i64,
    pub outcome: Outcome,
    /// One line for the owner.
    pub message: String,
    pub commit: Option<CommitInfo>,
    pub import_id: Option<String>,
    /// Tool names the import added, removed and changed.
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
    pub servers: Vec<ServerSync>,
}

/// Why a sync stopped early: its status, outcome and message, and the commit to record as
/// dealt with (imported, unchanged, or found unimportable).
// TODO(issue 17): a source whose document failed is fetched again by every poll until a push
// fixes it (its status is not `ok`); skipping an unmoved branch in that state would save it.
pub(crate) struct Stop {
    status: SyncStatus,
    pub(crate) outcome: Outcome,
    pub(crate) message: String,
    sha: Option<String>,
}

impl Stop {
    fn broken(message: impl Into<String>) -> Self {
        Stop { status: SyncStatus::Broken, outcome: Outcome::Broken, message: message.into(), sha: None }
    }
    fn token(f: TokenFailure) -> Self {
        match f {
            TokenFailure::Broken(m) => Stop::broken(m),
            TokenFailure::Unavailable(m) => Stop::unavailable(m),
        }
    }
    fn unavailable(message: impl Into<String>) -> Self {
        Stop { status: SyncStatus::Failed, outcome: Outcome::Unavailable, message: message.into(), sha: None }
    }
    fn git(e: GitError) -> Self {
        match e {
            GitError::Unauthorized => Stop::broken(REFUSED),
            GitError::Unavailable(m) | GitError::Refused(m) => Stop::unavailable(capitalised(&m)),
            GitError::NotFound(m) => {
                Stop { status: SyncStatus::Failed, outcome: Outcome::Failed, message: capitalised(&m), sha: None }
            }
        }
    }
    fn at(mut self, sha: &str) -> Self {
        self.sha = Some(sha.to_string());
        self
    }
}

fn capitalised(m: &str) -> String {
    let mut c = m.chars();
    match c.next() {
        Some(f) => format!("{}{}.", f.to_uppercase(), c.as_str().trim_end_matches('.')),
        None => String::new(),
    }
}

/// `user_id` as a member of `ws` when they are still an admin there (their membership and
/// verified state read now).
pub async fn admin<D: Db, K: Kv, H: Http>(
    svc: &Services<'_, D, K, H>,
    ws: &str,
    user_id: &str,
) -> Result<Option<Member>, ApiError> {
    let Some(user) = users::find_by_id(svc.db, user_id).await? else { return Ok(None) };
    let verified = user.email_verified();
    let membership = workspaces::get_for_user(svc.db, &user.id, ws, verified).await?;
    Ok(membership.filter(|w| w.role.can_admin()).map(|w| Member {
        user_id: user.id,
        workspace_id: ws.to_string(),
        role: w.role,
        email_verified: verified,
    }))
}

/// Why a connection cannot be used once the member who connected it is no longer an admin: its
/// tokens act as their GitHub account, which the workspace may no longer use.
pub const CREATOR_GONE: &str =
    "The member who connected this GitHub account is no longer an admin of the workspace; connect GitHub again.";

/// The connection-token lookup of a request's services, through `provider`.
pub(crate) fn tokens<'a, D: Db, K: Kv, H: Http, P: GitProvider>(
    svc: &'a Services<'_, D, K, H>,
    provider: &'a P,
) -> Tokens<'a, D, H, P> {
    Tokens { db: svc.db, keyring: &svc.secrets.keyring, http: svc.http, provider, clock: &svc.clock }
}

/// A provider call with the connection's token; a 401 refreshes it once (a second 401 breaks
/// the connection).
pub(crate) async fn call<D, H, P, T, F, Fut>(tk: &Tokens<'_, D, H, P>, conn: &Connection, f: F) -> Result<T, Stop>
where
    D: Db,
    H: Http,
    P: GitProvider,
    F: Fn(String) -> Fut,
    Fut: Future<Output = Result<T, GitError>>,
{
    let token = tk.access(conn, None).await.map_err(Stop::token)?;
    match f(token.clone()).await {
        Err(GitError::Unauthorized) => {
            let fresh = tk.access(conn, Some(&token)).await.map_err(Stop::token)?;
            match f(fresh).await {
                Err(GitError::Unauthorized) => {
                    if let Ok(Some(now)) = store::get_connection(tk.db, &conn.workspace_id, &conn.id).await {
                        let _ = store::mark_broken(tk.db, &now.id, now.generation, REFUSED, (tk.clock)()).await;
                    }
                    Err(Stop::broken(REFUSED))
                }
                other => other.map_err(Stop::git),
            }
        }
        other => other.map_err(Stop::git),
    }
}

/// The connection a source uses, if it is usable.
pub(crate) async fn connection_of<D: Db>(db: &D, src: &Source) -> Result<Connection, Stop> {
    let removed = || Stop::broken("The Git connection was removed; choose another connection or connect again.");
    let id = src.connection_id.as_deref().ok_or_else(removed)?;
    let conn = store::get_connection(db, &src.workspace_id, id)
        .await
        .map_err(|_| Stop::unavailable("FlowCP's storage could not be read; the next sync tries again."))?
        .ok_or_else(removed)?;
    Ok(conn)
}

/// The document at `sha`: the root file's bytes, or when its `$ref`s name other files of the
/// repository, one bundled JSON document with every reference local.
pub(crate) async fn document<D: Db, H: Http, P: GitProvider>(
    tk: &Tokens<'_, D, H, P>,
    conn: &Connection,
    src: &Source,
    sha: &str,
) -> Result<Vec<u8>, Stop> {
    use crate::openapi::bundle;
    let (http, gh) = (tk.http, tk.provider);
    let fetch = |path: String| async move {
        call(tk, conn, |t| {
            let path = path.clone();
            async move { gh.file(http, &t, &src.repo, &path, sha, limits::DOCUMENT).await }
        })
        .await
    };
    let root = fetch(src.path.clone()).await.map_err(|s| s.at(sha))?;
    // A root that does not parse goes to the import as it is: its error names line and column.
    let Ok(parsed) = crate::openapi::load::parse_bytes(&root) else { return Ok(root) };
    let mut queue = bundle::referenced_files(&src.path, &parsed);
    if queue.is_empty() {
        return Ok(root);
    }
    let mut total = root.len();
    let mut files = BTreeMap::from([(src.path.clone(), parsed)]);
    while let Some(path) = queue.pop() {
        if files.contains_key(&path) {
            continue;
        }
        if files.len() >= MAX_FILES {
            let m = format!("The document spans more than {MAX_FILES} files; bundle it into fewer.");
            return Err(Stop {
                status: SyncStatus::Failed,
                outcome: Outcome::Failed,
                message: m,
                sha: Some(sha.into()),
            });
        }
        let bytes = fetch(path.clone()).await.map_err(|s| s.at(sha))?;
        total += bytes.len();
        if total > limits::DOCUMENT {
            let m = format!("The document's files are larger than {} bytes together.", limits::DOCUMENT);
            return Err(Stop {
                status: SyncStatus::Failed,
                outcome: Outcome::Failed,
                message: m,
                sha: Some(sha.into()),
            });
        }
        let value = crate::openapi::load::parse_bytes(&bytes).map_err(|e| Stop {
            status: SyncStatus::Failed,
            outcome: Outcome::Failed,
            message: format!("The file {path}, referenced by a $ref, cannot be read: {e}."),
            sha: Some(sha.into()),
        })?;
        queue.extend(bundle::referenced_files(&path, &value).into_iter().filter(|p| !files.contains_key(p)));
        files.insert(path, value);
    }
    let bundled = bundle::bundle(&src.path, &files).map_err(|e| Stop {
        status: SyncStatus::Failed,
        outcome: Outcome::Failed,
        message: capitalised(&e.to_string()),
        sha: Some(sha.into()),
    })?;
    serde_json::to_vec(&bundled).map_err(|e| Stop::unavailable(format!("Bundling: {e}")))
}

// TODO(issue 17): no per-source lease: a webhook during a poll can import twice (the second
// finds the document unchanged).
/// Syncs the app with its source now; the report is stored on the source and returned. Only a
/// storage failure is an error.
pub async fn sync<D: Db, K: Kv, H: Http>(
    svc: &Services<'_, D, K, H>,
    src: &Source,
    trigger: Trigger,
) -> Result<SyncReport, ApiError> {
    let mut report = SyncReport {
        trigger,
        at: svc.now_ms,
        outcome: Outcome::Unchanged,
        message: String::new(),
        commit: None,
        import_id: None,
        added: Vec::new(),
        removed: Vec::new(),
        changed: Vec::new(),
        servers: Vec::new(),
    };
    match run(svc, src, trigger, &mut report).await? {
        Ok((sha, etag)) => {
            let json = serde_json::to_string(&report).ok();
            // An unchanged branch keeps the last report (what the owner wants to see is the last
            // change), only the check time moves.
            let keep = report.outcome == Outcome::Unchanged && sha.is_none();
            let json = if keep { None } else { json };
            let status = if keep { src.status } else { SyncStatus::Ok };
            let message = if keep { src.message.clone() } else { Some(report.message.clone()) };
            store::set_outcome(
                svc.db,
                &src.id,
                status,
                message.as_deref(),
                sha.as_deref(),
                etag.as_deref(),
                json.as_deref(),
                svc.now_ms,
            )
            .await?;
        }
        Err(stop) => {
            report.outcome = stop.outcome;
            report.message = stop.message.clone();
            let json = serde_json::to_string(&report).ok();
            store::set_outcome(
                svc.db,
                &src.id,
                stop.status,
                Some(&stop.message),
                stop.sha.as_deref(),
                None,
                json.as_deref(),
                svc.now_ms,
            )
            .await?;
        }
    }
    Ok(report)
}

/// The sync itself: `Ok(Ok((sha, etag)))` when it ran to its end (sha `None`: nothing moved).
async fn run<D: Db, K: Kv, H: Http>(
    svc: &Services<'_, D, K, H>,
    src: &Source,
    trigger: Trigger,
    report: &mut SyncReport,
) -> Result<Result<(Option<String>, Option<String>), Stop>, ApiError> {
    let Some(settings) = svc.git else {
        return Ok(Err(Stop::broken("The Git integration is not set up on this deployment.")));
    };
    let Some(member) = admin(svc, &src.workspace_id, &src.created_by).await? else {
        return Ok(Err(Stop::broken(
            "The member who set up this source is no longer an admin of the workspace; an admin must set it up again.",
        )));
    };
    let conn = match connection_of(svc.db, src).await {
        Ok(c) => c,
        Err(stop) => return Ok(Err(stop)),
    };
    // The connection's creator must be an admin too (read once when it is the same member).
    if conn.created_by != member.user_id && admin(svc, &src.workspace_id, &conn.created_by).await?.is_none() {
        return Ok(Err(Stop::broken(CREATOR_GONE)));
    }
    let gh = GitHub { settings };
    let tk = tokens(svc, &gh);
    // A poll asks "has it moved?" with the ETag; a push or the owner asks for the head itself.
    let etag = if trigger == Trigger::Poll { src.etag.clone() } else { None };
    let head = call(&tk, &conn, |t| {
        let etag = etag.clone();
        let gh = &gh;
        async move { gh.head(svc.http, &t, &src.repo, &src.branch, etag.as_deref()).await }
    })
    .await;
    let head = match head {
        Ok(HeadCheck::Unchanged) => {
            report.message = "The branch has not moved.".into();
            return Ok(Ok((None, None)));
        }
        Ok(HeadCheck::Now(h)) => h,
        Err(stop) => return Ok(Err(stop)),
    };
    report.commit = Some(CommitInfo {
        sha: head.sha.clone(),
        author: head.author.clone(),
        message: head.message.clone(),
        url: Some(gh.file_url(&src.repo, &head.sha, &src.path)),
    });
    if src.last_sha.as_deref() == Some(head.sha.as_str()) && src.status == SyncStatus::Ok && trigger != Trigger::Manual
    {
        report.message = "The branch has not moved.".into();
        return Ok(Ok((Some(head.sha), head.etag)));
    }
    let bytes = match document(&tk, &conn, src, &head.sha).await {
        Ok(b) => b,
        Err(stop) => return Ok(Err(stop)),
    };
    // The source as it is now: one replaced or removed while the document was fetched (a
    // webhook's sync runs after its answer) is not imported from.
    let now = store::source_by_id(svc.db, &src.id).await?;
    if now.as_ref().is_none_or(|n| {
        (&n.repo, &n.branch, &n.path, &n.connection_id) != (&src.repo, &src.branch, &src.path, &src.connection_id)
    }) {
        return Ok(Err(Stop::unavailable("The source changed during the sync; the next sync uses the new settings.")));
    }
    let Some(app) = apps_store::get_app(svc.db, &src.workspace_id, &src.app_id).await? else {
        return Ok(Err(Stop::broken("The app is gone.")));
    };
    let current = match &app.current_import_id {
        Some(id) => apps_store::get_import(svc.db, &app.workspace_id, &app.id, id).await?,
        None => None,
    };
    if current.is_some_and(|c| c.document_sha256 == sha256_hex(&bytes)) {
        report.message = format!("The commit {} did not change the document.", short(&head.sha));
        return Ok(Ok((Some(head.sha), head.etag)));
    }
    let origin = Origin {
        kind: "git",
        url: report.commit.as_ref().and_then(|c| c.url.as_deref()),
        commit: report.commit.clone(),
        restored_from: None,
    };
    let record = match import_bytes(svc, &app, &bytes, origin).await {
        Ok(r) => r,
        Err(e) if e.status >= 500 => return Err(e),
        Err(e) => {
            let m = format!(
                "The document at {} was not imported; the tools are unchanged. {}",
                short(&head.sha),
                e.message
            );
            return Ok(Err(
                Stop { status: SyncStatus::Failed, outcome: Outcome::Failed, message: m, sha: None }.at(&head.sha)
            ));
        }
    };
    report.outcome = Outcome::Imported;
    report.import_id = Some(record.id.clone());
    report.added = record.report.added.clone();
    report.removed = record.report.removed.clone();
    report.changed = record.report.changed.clone();
    report.message = format!(
        "Imported {} from {}: {} added, {} removed, {} changed.",
        short(&head.sha),
        src.branch,
        report.added.len(),
        report.removed.len(),
        report.changed.len()
    );
    report.servers = reverify(svc, &member, src).await?;
    Ok(Ok((Some(head.sha), head.etag)))
}

/// Verifies each server of the app again (an import put them back to draft) and, with
/// auto-publish, publishes those already on the air whose verification passed. A server never
/// published waits for the owner's first publish.
async fn reverify<D: Db, K: Kv, H: Http>(
    svc: &Services<'_, D, K, H>,
    member: &Member,
    src: &Source,
) -> Result<Vec<ServerSync>, ApiError> {
    let mut out = Vec::new();
    for s in servers_store::list(svc.db, &src.workspace_id).await?.into_iter().filter(|s| s.app_id == src.app_id) {
        let mut row = ServerSync {
            server_id: s.id.clone(),
            name: s.name.clone(),
            verification: "unverified".into(),
            published_version: None,
            detail: None,
        };
        match servers::verify(svc, member, &s.id).await {
            Ok(r) => {
                let state =
                    r.body.as_ref().and_then(|b| b.get("state")).and_then(Value::as_str).unwrap_or("unverified");
                row.verification = state.to_string();
            }
            Err(e) if e.status >= 500 => return Err(e),
            Err(e) => row.detail = Some(e.message),
        }
        if row.verification == "verified" && src.auto_publish && s.published_version.is_some() {
            match servers::publish(svc, member, &s.id).await {
                Ok(r) => {
                    row.published_version =
                        r.body.as_ref().and_then(|b| b.pointer("/manifest/version")).and_then(Value::as_i64)
                }
                Err(e) if e.status >= 500 => return Err(e),
                Err(e) => row.detail = Some(e.message),
            }
        } else if row.verification == "verified" && src.auto_publish {
            row.detail = Some("Not on the air yet: publish it once and auto-publish keeps it up to date.".into());
        } else if row.verification == "failed" {
            row.detail = Some("Verification failed: the live version is unchanged; see the server's findings.".into());
        }
        out.push(row);
    }
    Ok(out)
}

fn short(sha: &str) -> &str {
    sha.get(..7).unwrap_or(sha)
}

/// How often the cron polls a source (webhooks make pushes immediate; the poll catches what
/// they miss and serves setups without them).
pub const POLL_EVERY_MS: i64 = 5 * 60 * 1000;
/// Sources checked per cron run. An unchanged one costs six subrequests (the claim, the
/// creator's account and membership, the connection, one conditional GitHub request, the
/// outcome; two more when another member made the connection); a run stops after its first
/// import, which with re-verification and publishing costs about thirty: a run of 6 (at most 48)
/// stays within the Free plan's 50 subrequests per invocation.
pub const POLLS_PER_RUN: u32 = 6;

/// What one cron run of the poll did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Polled {
    pub checked: u32,
    pub imported: u32,
    pub failed: u32,
}

/// The cron's poll: sources not checked for [`POLL_EVERY_MS`] (less 30 s of cron jitter), least
/// recently checked first, one per workspace per run, until one imports. Each source's check
/// time is claimed before its sync, so one that fails or crashes goes to the back of the queue
/// instead of blocking the others; a sync's failure is counted and the run goes on.
pub async fn poll_due<D: Db, K: Kv, H: Http>(svc: &Services<'_, D, K, H>) -> Result<Polled, ApiError> {
    let mut out = Polled::default();
    let mut seen = std::collections::BTreeSet::new();
    for src in store::due_sources(svc.db, svc.now_ms - POLL_EVERY_MS + 30_000, 4 * POLLS_PER_RUN).await? {
        if out.checked >= POLLS_PER_RUN || !seen.insert(src.workspace_id.clone()) {
            continue;
        }
        store::set_checked(svc.db, &src.id, None, None, svc.now_ms).await?;
        out.checked += 1;
        match sync(svc, &src, Trigger::Poll).await.map(|r| r.outcome) {
            Ok(Outcome::Imported) => {
                out.imported += 1;
                break;
            }
            Ok(Outcome::Unchanged) => {}
            Ok(_) | Err(_) => out.failed += 1,
        }
    }
    Ok(out)
}
