//! Apps, imports and tool curation.
//!
//! An import stores the raw document in KV (`doc:<import id>`), converts it with the OpenAPI
//! engine, and merges the generated tools into the app's tools by operation key: the generated
//! part is replaced, the owner's curation (name, description, enabled) is kept, tools the new
//! document no longer has are marked removed (their curation survives if they come back).

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use super::context::Member;
use super::input::{clean_name, cursor_int, page_cursor, page_limit};
use super::views::{BulkUpdated, Items, Page, ToolView};
use super::{Request, Response, Services};
use crate::crypto::{random_id, sha256_hex};
use crate::error::{check_body_len, limits, ApiError, ErrorCode};
use crate::net::{fetch_guarded, FetchError, Http};
use crate::openapi::{Problem, Severity};
use crate::service::curation;
use crate::store::apps::{self as store, App, CommitInfo, ImportRecord, ImportSummary, ToolFilter};
use crate::store::servers as servers_store;
use crate::store::{Db, Kv};
use crate::tools::names::is_valid_tool_name;
use crate::tools::{Importer, IMPORT_BATCH_TOOLS};

pub fn doc_key(import_id: &str) -> String {
    format!("doc:{import_id}")
}

async fn load_app<D: Db, K: Kv, H: Http>(
    svc: &Services<'_, D, K, H>,
    m: &Member,
    app_id: &str,
) -> Result<App, ApiError> {
    store::get_app(svc.db, &m.workspace_id, app_id).await?.ok_or_else(ApiError::not_found)
}

pub async fn list<D: Db, K: Kv, H: Http>(
    svc: &Services<'_, D, K, H>,
    req: &Request,
    m: &Member,
) -> Result<Response, ApiError> {
    let limit = page_limit(req)?;
    let after = match page_cursor(req, 2)? {
        Some(p) => Some((cursor_int(&p[0])?, p[1].clone())),
        None => None,
    };
    let mut items = store::list_apps(svc.db, &m.workspace_id, after, limit + 1).await?;
    let next = if items.len() > limit as usize {
        items.truncate(limit as usize);
        items.last().map(|a| crate::cursor::encode(&[&a.created_at.to_string(), &a.id]))
    } else {
        None
    };
    Response::ok(&Page { items, next_cursor: next })
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAppBody {
    name: String,
}

pub async fn create<D: Db, K: Kv, H: Http>(
    svc: &Services<'_, D, K, H>,
    req: &Request,
    m: &Member,
) -> Result<Response, ApiError> {
    let body: CreateAppBody = req.json(limits::API_JSON)?;
    let app = App {
        id: random_id("app_")?,
        workspace_id: m.workspace_id.clone(),
        name: clean_name(&body.name, "app name")?,
        source_url: None,
        current_import_id: None,
        created_at: svc.now_ms,
        updated_at: svc.now_ms,
    };
    store::create_app(svc.db, &app).await?;
    Response::created(&app)
}

pub async fn get<D: Db, K: Kv, H: Http>(
    svc: &Services<'_, D, K, H>,
    m: &Member,
    app_id: &str,
) -> Result<Response, ApiError> {
    Response::ok(&load_app(svc, m, app_id).await?)
}

pub async fn update<D: Db, K: Kv, H: Http>(
    svc: &Services<'_, D, K, H>,
    req: &Request,
    m: &Member,
    app_id: &str,
) -> Result<Response, ApiError> {
    let body: CreateAppBody = req.json(limits::API_JSON)?;
    let name = clean_name(&body.name, "app name")?;
    load_app(svc, m, app_id).await?;
    store::rename_app(svc.db, &m.workspace_id, app_id, &name, svc.now_ms).await?;
    get(svc, m, app_id).await
}

// TODO(issue 17): the webhook FlowCP created for the app's Git source stays at GitHub (its
// deliveries get 404); remove it here as `api::git::delete_source` does.
pub async fn delete<D: Db, K: Kv, H: Http>(
    svc: &Services<'_, D, K, H>,
    m: &Member,
    app_id: &str,
) -> Result<Response, ApiError> {
    m.require_admin()?;
    load_app(svc, m, app_id).await?;
    let keys = store::document_keys(svc.db, &m.workspace_id, app_id).await?;
    // The app's servers go with it (ON DELETE CASCADE): take them off the air first, or their
    // KV manifests, credentials and access keys would keep answering with no row to revoke.
    let mut seen = Vec::new();
    for srv in servers_store::list(svc.db, &m.workspace_id).await?.into_iter().filter(|s| s.app_id == app_id) {
        let v = crate::service::lifecycle::delete_all(svc.db, svc.kv, &srv).await?;
        seen.push((srv, v));
    }
    // The stored documents go before the rows that name them: a failure in between leaves an
    // app whose documents are gone (sending the delete again finishes), never a document that
    // no row names and nothing would ever delete.
    for k in keys {
        svc.kv.delete(&k).await?;
    }
    store::delete_app(svc.db, &m.workspace_id, app_id).await?;
    // Versions a racing publish staged after `delete_all` looked (`lifecycle::sweep_after_delete`).
    for (srv, v) in &seen {
        crate::service::lifecycle::sweep_after_delete(svc.kv, srv, *v).await;
    }
    Ok(Response::no_content())
}

const DOCUMENT_TYPES: &[&str] = &[
    "application/json",
    "application/yaml",
    "application/x-yaml",
    "text/yaml",
    "text/x-yaml",
    "text/plain",
    "application/octet-stream",
    "application/vnd.oai.openapi",
    "application/vnd.oai.openapi+json",
];

/// `POST .../imports`: the body is the document (JSON or YAML).
pub async fn import<D: Db, K: Kv, H: Http>(
    svc: &Services<'_, D, K, H>,
    req: &Request,
    m: &Member,
    app_id: &str,
) -> Result<Response, ApiError> {
    let app = load_app(svc, m, app_id).await?;
    check_body_len(req.body.len(), limits::DOCUMENT)?;
    match req.media_type() {
        Some(t) if DOCUMENT_TYPES.contains(&t.as_str()) => {}
        _ => {
            return Err(ApiError::unsupported_media_type("application/json or application/yaml (an OpenAPI document)"))
        }
    }
    if req.body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::new(ErrorCode::EmptyDocument, "The request body is empty; send an OpenAPI document."));
    }
    if let Some(url) = url_import_request(req)? {
        return import_url(svc, &app, &url).await;
    }
    let record = import_bytes(svc, &app, &req.body, Origin::kind("upload")).await?;
    Response::created(&record)
}

/// `POST .../imports` with a URL instead of a document.
#[derive(JsonSchema)]
#[allow(dead_code)]
#[schemars(example = serde_json::json!({ "url": "https://api.example.com/openapi.json" }))]
pub struct ImportUrlBody {
    /// An http(s) URL serving the document (JSON or YAML); fetched once, redirects followed.
    url: String,
}

/// A JSON body `{"url": "..."}` (no `openapi`/`swagger` key) asks FlowCP to fetch the document.
fn url_import_request(req: &Request) -> Result<Option<String>, ApiError> {
    if req.media_type().as_deref() != Some("application/json") || req.body.len() > limits::API_JSON {
        return Ok(None);
    }
    let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(&req.body) else { return Ok(None) };
    if map.contains_key("openapi") || map.contains_key("swagger") || !map.contains_key("url") {
        return Ok(None);
    }
    match (map.len(), map.get("url")) {
        (1, Some(Value::String(u))) => Ok(Some(u.clone())),
        _ => Err(ApiError::new(ErrorCode::InvalidImport, "Send {\"url\": \"https://...\"} or an OpenAPI document.")),
    }
}

/// Time and size bounds of a document fetch.
const FETCH_TIMEOUT_MS: u32 = 15_000;
const FETCH_MAX_REDIRECTS: u8 = 5;

async fn import_url<D: Db, K: Kv, H: Http>(
    svc: &Services<'_, D, K, H>,
    app: &App,
    url: &str,
) -> Result<Response, ApiError> {
    let headers = [("accept".to_string(), "application/json, application/yaml;q=0.9, */*;q=0.5".to_string())];
    let fetched = fetch_guarded(
        svc.http,
        url,
        svc.fetch_policy,
        &headers,
        limits::DOCUMENT,
        FETCH_TIMEOUT_MS,
        FETCH_MAX_REDIRECTS,
    )
    .await;
    let (final_url, resp) = match fetched {
        Ok(ok) => ok,
        Err(FetchError::Blocked(why)) => {
            return Err(ApiError::new(ErrorCode::UrlNotAllowed, format!("The URL is not allowed: {why}.")))
        }
        Err(FetchError::TooLarge(n)) => {
            return Err(ApiError::new(ErrorCode::DocumentTooLarge, format!("The document is larger than {n} bytes.")))
        }
        Err(e) => {
            let why = e.to_string();
            return Err(ApiError::new(
                ErrorCode::FetchFailed,
                format!("The document could not be fetched: {}.", why.trim_end_matches('.')),
            ));
        }
    };
    if !(200..300).contains(&resp.status) {
        return Err(ApiError::new(ErrorCode::FetchFailed, format!("The URL answered HTTP {}.", resp.status)));
    }
    let record =
        import_bytes(svc, app, &resp.body, Origin { url: Some(final_url.as_str()), ..Origin::kind("url") }).await?;
    store::set_source_url(svc.db, &app.workspace_id, &app.id, final_url.as_str()).await?;
    Response::created(&record)
}

/// Where an import's document came from.
pub struct Origin<'a> {
    /// `upload`, `url`, `git` or `rollback`.
    pub kind: &'static str,
    pub url: Option<&'a str>,
    pub commit: Option<CommitInfo>,
    pub restored_from: Option<&'a str>,
}

impl Origin<'_> {
    pub fn kind(kind: &'static str) -> Self {
        Origin { kind, url: None, commit: None, restored_from: None }
    }
}

/// Converts a document and merges its tools into the app. Shared by upload, URL import, Git
/// syncs and rollbacks. A document that cannot be imported changes nothing.
// TODO-perf: the whole document, its parsed tree and the ToolDefs are in memory at once (wasm
// high-water 75 MB for GitHub, 87 MB for Stripe, measured via /healthz); documents much larger
// than Stripe need a streaming import to stay inside the Worker's 128 MB.
pub async fn import_bytes<D: Db, K: Kv, H: Http>(
    svc: &Services<'_, D, K, H>,
    app: &App,
    bytes: &[u8],
    origin: Origin<'_>,
) -> Result<ImportRecord, ApiError> {
    let unreadable = |e: crate::openapi::LoadError| {
        // A document whose generated tools would pass the engine's output budget (F3) is too
        // large, not unreadable; the message names the operations that took the most.
        let code = match e {
            crate::openapi::LoadError::OutputTooLarge { .. }
            | crate::openapi::LoadError::TooManyValues { .. }
            | crate::openapi::LoadError::TooMuchParsing { .. } => ErrorCode::DocumentTooLarge,
            _ => ErrorCode::UnreadableDocument,
        };
        ApiError::new(code, format!("The document cannot be imported: {e}"))
    };
    // Tools come in batches and are kept only as the rows they will be stored as, so memory
    // holds the document, its member index, one batch and the rows' JSON (issue 18). Nothing
    // is written before the whole document has been read.
    let ledger = crate::openapi::Ledger::default();
    let mut importer = Importer::new(bytes, &ledger).map_err(unreadable)?;
    let head = importer.head().clone();
    let (mut generated, mut oversized, mut tool_count, mut json_bytes) = (Vec::new(), Vec::new(), 0, 0);
    while let Some(batch) = importer.next_batch(IMPORT_BATCH_TOOLS).map_err(unreadable)? {
        tool_count += batch.len();
        for def in &batch {
            match curation::generated_row(def, svc.now_ms) {
                Ok(row) => {
                    json_bytes += row.def_json.len();
                    generated.push(row);
                }
                Err(named) => oversized.push(named),
            }
            if json_bytes > curation::MAX_IMPORT_JSON_BYTES {
                return Err(ApiError::new(
                    ErrorCode::DocumentTooLarge,
                    format!(
                        "The document cannot be imported: its tools take more than {} MB as JSON (the generated 10,000-operation document takes 30 MB). Import a smaller part of the API, or shrink the schemas its operations share.",
                        curation::MAX_IMPORT_JSON_BYTES >> 20
                    ),
                ));
            }
        }
    }
    let tail = importer.finish();
    let import_id = random_id("imp_")?;
    let mut problems = tail.problems;
    let warning_count = problems.iter().filter(|p| p.severity == Severity::Warning).count();
    for (name, path) in &oversized {
        problems.push(Problem::error(
            format!("/paths/{}", crate::openapi::escape_token(path)),
            format!("the tool {name} is larger than {} bytes once generated; skipped", curation::MAX_TOOL_DEF_BYTES),
        ));
    }
    let mut plan = merge_tools(svc, app, generated).await?;
    let (added, removed, changed) =
        (std::mem::take(&mut plan.added), std::mem::take(&mut plan.removed), std::mem::take(&mut plan.changed));
    let record = ImportRecord {
        id: import_id.clone(),
        app_id: app.id.clone(),
        workspace_id: app.workspace_id.clone(),
        source_kind: origin.kind.to_string(),
        source_url: origin.url.map(str::to_string),
        document_key: doc_key(&import_id),
        document_sha256: sha256_hex(bytes),
        document_bytes: bytes.len() as i64,
        spec_version: Some(head.spec_version_string.clone()),
        title: Some(head.title.clone()),
        api_version: Some(head.version.clone()),
        tool_count: tool_count as i64,
        warning_count: warning_count as i64,
        added_count: added.len() as i64,
        removed_count: removed.len() as i64,
        changed_count: changed.len() as i64,
        report: ImportSummary {
            title: head.title,
            version: head.version,
            spec_version: head.spec_version_string,
            servers: head.servers,
            security_schemes: head.security_schemes,
            operations_total: tail.operations_total as u64,
            problems,
            added,
            removed,
            changed,
        },
        commit: origin.commit,
        restored_from: origin.restored_from.map(str::to_string),
        created_at: svc.now_ms,
    };
    // The raw document first: an import row never points at a document that is not stored.
    if let Err(e) = svc.kv.put(&record.document_key, bytes, None).await {
        // The write may have gone through: no row will name it (best effort).
        let _ = svc.kv.delete(&record.document_key).await;
        return Err(e.into());
    }
    // The tools' writes and the record in one atomic batch when they fit (at most 4 MB
    // of new and changed definitions, 80 refreshes and retirements); a larger import writes
    // its tools first (`service::curation`).
    let written = if curation::fits_one_batch(&plan) {
        let mut all = curation::statements(&app.workspace_id, &app.id, &plan, svc.now_ms)?;
        drop(plan);
        all.extend(store::import_statements(&record));
        svc.db.batch(&all).await.map(|_| ())
    } else {
        match curation::write(svc.db, &app.workspace_id, &app.id, &plan, svc.now_ms).await {
            Ok(()) => store::insert_import(svc.db, &record).await,
            Err(e) => Err(e),
        }
    };
    if let Err(e) = written {
        // No row names the document: it goes, or nothing would ever delete it. Unless the write
        // went through after all (an error after the commit): it stays when the row is there
        // or that cannot be told.
        if let Ok(None) = store::get_import(svc.db, &app.workspace_id, &app.id, &record.id).await {
            let _ = svc.kv.delete(&record.document_key).await;
        }
        return Err(e.into());
    }
    Ok(record)
}

/// A new import's tools merged into the app's, keeping curation (`service::curation`): the
/// settled plan, not written yet.
async fn merge_tools<D: Db, K: Kv, H: Http>(
    svc: &Services<'_, D, K, H>,
    app: &App,
    generated: Vec<crate::store::apps::ToolRow>,
) -> Result<curation::MergePlan, ApiError> {
    let (existing, lengths) = store::all_tools_without_defs(svc.db, &app.workspace_id, &app.id).await?;
    let mut plan = curation::plan_merge(&existing, generated);
    for row in &mut plan.inserts {
        row.id = random_id("tool_")?;
    }
    curation::settle_all(svc.db, &app.workspace_id, &app.id, &mut plan, &lengths).await?;
    Ok(plan)
}

pub async fn imports<D: Db, K: Kv, H: Http>(
    svc: &Services<'_, D, K, H>,
    m: &Member,
    app_id: &str,
) -> Result<Response, ApiError> {
    load_app(svc, m, app_id).await?;
    Response::ok(&Items { items: store::list_imports(svc.db, &m.workspace_id, app_id).await? })
}

/// `POST .../imports/{import}/restore`: rollback. The earlier import's stored document is
/// imported again (curation kept, as any re-import), so the app's tools are those of that
/// import; its servers go to draft, to verify and publish as after any import.
pub async fn restore<D: Db, K: Kv, H: Http>(
    svc: &Services<'_, D, K, H>,
    m: &Member,
    app_id: &str,
    import_id: &str,
) -> Result<Response, ApiError> {
    let app = load_app(svc, m, app_id).await?;
    let earlier =
        store::get_import(svc.db, &m.workspace_id, app_id, import_id).await?.ok_or_else(ApiError::not_found)?;
    let bytes = svc.kv.get(&earlier.document_key).await?.ok_or_else(|| {
        ApiError::new(ErrorCode::DocumentMissing, "The document of that import is no longer stored; import it again.")
    })?;
    let origin = Origin {
        kind: "rollback",
        url: earlier.source_url.as_deref(),
        commit: earlier.commit.clone(),
        restored_from: Some(&earlier.id),
    };
    Response::created(&import_bytes(svc, &app, &bytes, origin).await?)
}

pub async fn tools<D: Db, K: Kv, H: Http>(
    svc: &Services<'_, D, K, H>,
    req: &Request,
    m: &Member,
    app_id: &str,
) -> Result<Response, ApiError> {
    load_app(svc, m, app_id).await?;
    let limit = page_limit(req)?;
    let enabled = match req.query_param("enabled") {
        None => None,
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(_) => return Err(ApiError::new(ErrorCode::InvalidFilter, "enabled must be true or false.")),
    };
    let filter = ToolFilter {
        tag: req.query_param("tag").map(str::to_string),
        text: req.query_param("q").filter(|q| !q.trim().is_empty()).map(|q| q.trim().to_string()),
        enabled,
        after: page_cursor(req, 2)?.map(|p| (p[0].clone(), p[1].clone())),
        limit: limit + 1,
    };
    let mut items = store::list_tools(svc.db, &m.workspace_id, app_id, &filter).await?;
    let next = if items.len() > limit as usize {
        items.truncate(limit as usize);
        items.last().map(|t| crate::cursor::encode(&[&t.name, &t.id]))
    } else {
        None
    };
    let with_schema = req.query_param("include") == Some("schema");
    Response::ok(&Page { items: items.iter().map(|t| ToolView::of(t, with_schema)).collect(), next_cursor: next })
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateToolBody {
    /// 1 to 64 letters, digits, `_` or `-`, unique in the app.
    name: Option<String>,
    /// `null` restores the generated description.
    #[serde(default, deserialize_with = "super::double_option")]
    description: Option<Option<String>>,
    enabled: Option<bool>,
}

const MAX_DESCRIPTION: usize = 4000;

pub async fn update_tool<D: Db, K: Kv, H: Http>(
    svc: &Services<'_, D, K, H>,
    req: &Request,
    m: &Member,
    app_id: &str,
    tool_id: &str,
) -> Result<Response, ApiError> {
    let body: UpdateToolBody = req.json(limits::API_JSON)?;
    load_app(svc, m, app_id).await?;
    let tool = store::get_tool(svc.db, &m.workspace_id, app_id, tool_id).await?.ok_or_else(ApiError::not_found)?;
    if let Some(name) = &body.name {
        if !is_valid_tool_name(name) {
            return Err(ApiError::new(
                ErrorCode::InvalidToolName,
                "A tool name must be 1 to 64 characters of letters, digits, '_' or '-'.",
            ));
        }
        if store::name_taken(svc.db, &m.workspace_id, app_id, name, &tool.id).await? {
            return Err(ApiError::new(ErrorCode::ToolNameTaken, "Another tool of this app already has this name."));
        }
    }
    if let Some(Some(d)) = &body.description {
        if d.trim().is_empty() || d.chars().count() > MAX_DESCRIPTION {
            return Err(ApiError::new(
                ErrorCode::InvalidDescription,
                format!(
                    "A description must be 1 to {MAX_DESCRIPTION} characters; send null to restore the generated one."
                ),
            ));
        }
    }
    let description = body.description.as_ref().map(|d| d.as_deref());
    let edit = store::Curation { name: body.name.as_deref(), description, enabled: body.enabled };
    if !store::curate(svc.db, (&m.workspace_id, app_id, &tool.id), edit, svc.now_ms).await? {
        return Err(ApiError::not_found());
    }
    servers_store::reset_for_app(svc.db, &m.workspace_id, app_id, svc.now_ms).await?;
    let tool = store::get_tool(svc.db, &m.workspace_id, app_id, tool_id).await?.ok_or_else(ApiError::not_found)?;
    Response::ok(&ToolView::of(&tool, false))
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkBody {
    /// 1 to 2000 ids of live tools of the app; all change or none.
    tool_ids: Vec<String>,
    enabled: bool,
}

pub async fn bulk_tools<D: Db, K: Kv, H: Http>(
    svc: &Services<'_, D, K, H>,
    req: &Request,
    m: &Member,
    app_id: &str,
) -> Result<Response, ApiError> {
    let body: BulkBody = req.json(limits::API_JSON)?;
    load_app(svc, m, app_id).await?;
    if body.tool_ids.is_empty() || body.tool_ids.len() > 2000 {
        return Err(ApiError::new(ErrorCode::InvalidToolIds, "Send 1 to 2000 tool ids."));
    }
    // Every id must be a live tool of this app, or nothing changes.
    if !store::set_enabled_many(svc.db, &m.workspace_id, app_id, &body.tool_ids, body.enabled, svc.now_ms).await? {
        return Err(ApiError::not_found());
    }
    servers_store::reset_for_app(svc.db, &m.workspace_id, app_id, svc.now_ms).await?;
    Response::ok(&BulkUpdated { updated: body.tool_ids.len() as u64, enabled: body.enabled })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_names_follow_mcp_rules() {
        assert!(is_valid_tool_name("list_pets-2"));
        assert!(!is_valid_tool_name(""));
        assert!(!is_valid_tool_name("has space"));
        assert!(!is_valid_tool_name(&"a".repeat(65)));
        assert!(!is_valid_tool_name("émoji"));
    }
}
