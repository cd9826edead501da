//! The `apps`, `imports` and `tools` tables.
//!
//! Tools carry the generated definition (`def_json`) and the owner's curation (name,
//! description, enabled) side by side; a re-import replaces the generated part and keeps the
//! curation, matched by `operation_key`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{opt_text, row_i64, text, Db, Row, SqlValue, Statement, StoreError};
use crate::openapi::{Problem, SecuritySchemeInfo};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct App {
    pub id: String,
    pub workspace_id: String,
    pub name: String,
    pub source_url: Option<String>,
    pub current_import_id: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

fn app(row: &Row) -> Result<App, StoreError> {
    Ok(App {
        id: text(row, "id")?,
        workspace_id: text(row, "workspace_id")?,
        name: text(row, "name")?,
        source_url: opt_text(row, "source_url"),
        current_import_id: opt_text(row, "current_import_id"),
        created_at: row_i64(row, "created_at")?,
        updated_at: row_i64(row, "updated_at")?,
    })
}

const APP_COLS: &str = "id, workspace_id, name, source_url, current_import_id, created_at, updated_at";

pub async fn create_app(db: &impl Db, a: &App) -> Result<(), StoreError> {
    let sql = "INSERT INTO apps (id, workspace_id, name, source_url, current_import_id, created_at, updated_at) \
               VALUES (?1, ?2, ?3, ?4, NULL, ?5, ?5)";
    db.execute(
        sql,
        &[
            a.id.as_str().into(),
            a.workspace_id.as_str().into(),
            a.name.as_str().into(),
            a.source_url.clone().into(),
            a.created_at.into(),
        ],
    )
    .await
    .map(|_| ())
}

/// Apps of a workspace after the `(created_at, id)` cursor, at most `limit`.
pub async fn list_apps(
    db: &impl Db,
    ws: &str,
    after: Option<(i64, String)>,
    limit: u32,
) -> Result<Vec<App>, StoreError> {
    let (ts, id) = after.unwrap_or((i64::MIN, String::new()));
    let sql = format!(
        "SELECT {APP_COLS} FROM apps WHERE workspace_id = ?1 AND (created_at > ?2 OR (created_at = ?2 AND id > ?3)) \
         ORDER BY created_at, id LIMIT ?4"
    );
    db.query(&sql, &[ws.into(), ts.into(), id.into(), i64::from(limit).into()]).await?.iter().map(app).collect()
}

/// One app of the workspace (`None` also when it belongs to another workspace).
pub async fn get_app(db: &impl Db, ws: &str, app_id: &str) -> Result<Option<App>, StoreError> {
    let sql = format!("SELECT {APP_COLS} FROM apps WHERE workspace_id = ?1 AND id = ?2");
    db.query(&sql, &[ws.into(), app_id.into()]).await?.first().map(app).transpose()
}

pub async fn rename_app(db: &impl Db, ws: &str, app_id: &str, name: &str, now: i64) -> Result<bool, StoreError> {
    let sql = "UPDATE apps SET name = ?3, updated_at = ?4 WHERE workspace_id = ?1 AND id = ?2";
    Ok(db.execute(sql, &[ws.into(), app_id.into(), name.into(), now.into()]).await? == 1)
}

pub async fn set_source_url(db: &impl Db, ws: &str, app_id: &str, url: &str) -> Result<(), StoreError> {
    let sql = "UPDATE apps SET source_url = ?3 WHERE workspace_id = ?1 AND id = ?2";
    db.execute(sql, &[ws.into(), app_id.into(), url.into()]).await.map(|_| ())
}

/// KV keys of the raw documents of an app's imports (to delete with the app).
pub async fn document_keys(db: &impl Db, ws: &str, app_id: &str) -> Result<Vec<String>, StoreError> {
    let sql = "SELECT document_key FROM imports WHERE workspace_id = ?1 AND app_id = ?2";
    db.query(sql, &[ws.into(), app_id.into()]).await?.iter().map(|r| text(r, "document_key")).collect()
}

/// KV keys of the raw documents of every import of a workspace (to delete with it).
pub async fn workspace_document_keys(db: &impl Db, ws: &str) -> Result<Vec<String>, StoreError> {
    let sql = "SELECT document_key FROM imports WHERE workspace_id = ?1";
    db.query(sql, &[ws.into()]).await?.iter().map(|r| text(r, "document_key")).collect()
}

/// Deletes an app; imports and tools go with it (ON DELETE CASCADE).
pub async fn delete_app(db: &impl Db, ws: &str, app_id: &str) -> Result<bool, StoreError> {
    Ok(db.execute("DELETE FROM apps WHERE workspace_id = ?1 AND id = ?2", &[ws.into(), app_id.into()]).await? == 1)
}

/// What an import found: the document's facts, its problems and the change to the app's tools.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct ImportSummary {
    pub title: String,
    pub version: String,
    /// As written: `2.0`, `3.0.3`, `3.1.0`.
    pub spec_version: String,
    pub servers: Vec<String>,
    pub security_schemes: Vec<SecuritySchemeInfo>,
    /// Operations found, including skipped ones.
    pub operations_total: u64,
    /// Warnings and errors, each located by a JSON pointer into the document.
    pub problems: Vec<Problem>,
    /// Tool names added, removed and changed by this import.
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
}

/// The commit an import came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CommitInfo {
    pub sha: String,
    /// The commit's author (their name as the commit records it).
    pub author: String,
    /// The commit message's first line.
    pub message: String,
    /// The document at that commit on the provider's site.
    pub url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct ImportRecord {
    pub id: String,
    pub app_id: String,
    pub source_kind: String,
    pub source_url: Option<String>,
    pub document_sha256: String,
    pub document_bytes: i64,
    pub spec_version: Option<String>,
    pub title: Option<String>,
    pub api_version: Option<String>,
    pub tool_count: i64,
    pub warning_count: i64,
    pub added_count: i64,
    pub removed_count: i64,
    pub changed_count: i64,
    pub report: ImportSummary,
    /// The commit a Git sync imported (`git`), or the one the restored import came from.
    pub commit: Option<CommitInfo>,
    /// The earlier import whose document a rollback restored (`rollback`).
    pub restored_from: Option<String>,
    pub created_at: i64,
    #[serde(skip)]
    pub document_key: String,
    #[serde(skip)]
    pub workspace_id: String,
}

/// Records an import in one atomic write: its row, the app's current import, and the app's
/// servers back to unverified (their tools changed).
pub async fn insert_import(db: &impl Db, i: &ImportRecord) -> Result<(), StoreError> {
    db.batch(&import_statements(i)).await.map(|_| ())
}

/// The statements of [`insert_import`] (also the tail of an import written in one batch).
pub fn import_statements(i: &ImportRecord) -> Vec<Statement<'static>> {
    let sql = "INSERT INTO imports (id, app_id, workspace_id, source_kind, source_url, document_key, document_sha256, \
               document_bytes, spec_version, title, api_version, tool_count, warning_count, added_count, removed_count, \
               changed_count, report_json, created_at, commit_json, restored_from) \
               VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20)";
    let row = vec![
        i.id.as_str().into(),
        i.app_id.as_str().into(),
        i.workspace_id.as_str().into(),
        i.source_kind.as_str().into(),
        i.source_url.clone().into(),
        i.document_key.as_str().into(),
        i.document_sha256.as_str().into(),
        i.document_bytes.into(),
        i.spec_version.clone().into(),
        i.title.clone().into(),
        i.api_version.clone().into(),
        i.tool_count.into(),
        i.warning_count.into(),
        i.added_count.into(),
        i.removed_count.into(),
        i.changed_count.into(),
        serde_json::to_string(&i.report).unwrap_or_default().into(),
        i.created_at.into(),
        i.commit.as_ref().and_then(|c| serde_json::to_string(c).ok()).into(),
        i.restored_from.clone().into(),
    ];
    let current = "UPDATE apps SET current_import_id = ?3, updated_at = ?4 WHERE workspace_id = ?1 AND id = ?2";
    let (ws, app) = (SqlValue::from(i.workspace_id.as_str()), SqlValue::from(i.app_id.as_str()));
    vec![
        (sql, row),
        (current, vec![ws.clone(), app.clone(), i.id.as_str().into(), i.created_at.into()]),
        (super::servers::RESET_FOR_APP, vec![ws, app, i.created_at.into()]),
    ]
}

pub async fn list_imports(db: &impl Db, ws: &str, app_id: &str) -> Result<Vec<ImportRecord>, StoreError> {
    let sql =
        "SELECT * FROM imports WHERE workspace_id = ?1 AND app_id = ?2 ORDER BY created_at DESC, id DESC LIMIT 100";
    db.query(sql, &[ws.into(), app_id.into()]).await?.iter().map(import_record).collect()
}

/// One import of an app of the workspace.
pub async fn get_import(db: &impl Db, ws: &str, app_id: &str, id: &str) -> Result<Option<ImportRecord>, StoreError> {
    let sql = "SELECT * FROM imports WHERE workspace_id = ?1 AND app_id = ?2 AND id = ?3";
    db.query(sql, &[ws.into(), app_id.into(), id.into()]).await?.first().map(import_record).transpose()
}

fn import_record(r: &Row) -> Result<ImportRecord, StoreError> {
    Ok(ImportRecord {
        id: text(r, "id")?,
        app_id: text(r, "app_id")?,
        workspace_id: text(r, "workspace_id")?,
        source_kind: text(r, "source_kind")?,
        source_url: opt_text(r, "source_url"),
        document_key: text(r, "document_key")?,
        document_sha256: text(r, "document_sha256")?,
        document_bytes: row_i64(r, "document_bytes")?,
        spec_version: opt_text(r, "spec_version"),
        title: opt_text(r, "title"),
        api_version: opt_text(r, "api_version"),
        tool_count: row_i64(r, "tool_count")?,
        warning_count: row_i64(r, "warning_count")?,
        added_count: row_i64(r, "added_count")?,
        removed_count: row_i64(r, "removed_count")?,
        changed_count: row_i64(r, "changed_count")?,
        // Display-only: a report of an older or damaged shape shows as empty rather than
        // breaking the import history, server creation and the data export.
        report: serde_json::from_str(&text(r, "report_json")?).unwrap_or_default(),
        commit: opt_text(r, "commit_json").and_then(|c| serde_json::from_str(&c).ok()),
        restored_from: opt_text(r, "restored_from"),
        created_at: row_i64(r, "created_at")?,
    })
}

/// A tool row: the generated definition and the owner's curation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToolRow {
    pub id: String,
    pub operation_key: String,
    pub generated_name: String,
    pub name: String,
    /// The curated description, `None` when the generated one is used.
    pub description: Option<String>,
    pub enabled: bool,
    pub method: String,
    pub path: String,
    pub tags: Vec<String>,
    pub removed_at: Option<i64>,
    pub updated_at: i64,
    #[serde(skip)]
    pub def_json: String,
}

fn tool_row(r: &Row) -> Result<ToolRow, StoreError> {
    Ok(ToolRow {
        id: text(r, "id")?,
        operation_key: text(r, "operation_key")?,
        generated_name: text(r, "generated_name")?,
        name: text(r, "name")?,
        description: opt_text(r, "description"),
        enabled: row_i64(r, "enabled")? != 0,
        method: text(r, "method")?,
        path: text(r, "path")?,
        tags: serde_json::from_str(&text(r, "tags_json")?)
            .map_err(|_| StoreError::Corrupt("tools.tags_json".into()))?,
        removed_at: r.get("removed_at").and_then(Value::as_i64),
        updated_at: row_i64(r, "updated_at")?,
        def_json: text(r, "def_json")?,
    })
}

const TOOL_COLS: &str =
    "id, operation_key, generated_name, name, description, enabled, method, path, tags_json, removed_at, updated_at, def_json";

/// Every tool of an app, removed ones included, without their definitions (`def_json` is
/// empty), and each definition's length in bytes by id: what a re-import plans its merge
/// from, whatever the app's size.
pub async fn all_tools_without_defs(
    db: &impl Db,
    ws: &str,
    app_id: &str,
) -> Result<(Vec<ToolRow>, std::collections::HashMap<String, usize>), StoreError> {
    let cols = TOOL_COLS.replace("def_json", "'' AS def_json, LENGTH(CAST(def_json AS BLOB)) AS def_len");
    let sql = format!("SELECT {cols} FROM tools WHERE workspace_id = ?1 AND app_id = ?2 ORDER BY name, id");
    let rows = db.query(&sql, &[ws.into(), app_id.into()]).await?;
    let mut lengths = std::collections::HashMap::with_capacity(rows.len());
    let mut tools = Vec::with_capacity(rows.len());
    for r in &rows {
        let t = tool_row(r)?;
        lengths.insert(t.id.clone(), usize::try_from(row_i64(r, "def_len")?).unwrap_or(0));
        tools.push(t);
    }
    Ok((tools, lengths))
}

/// (id, def_json) of the given tools of an app (ids given as one JSON list).
pub async fn tool_defs(
    db: &impl Db,
    ws: &str,
    app_id: &str,
    ids: &[&str],
) -> Result<std::collections::HashMap<String, String>, StoreError> {
    let list = serde_json::to_string(ids).map_err(|e| StoreError::Corrupt(format!("ids: {e}")))?;
    let sql = "SELECT id, def_json FROM tools WHERE workspace_id = ?1 AND app_id = ?2 \
               AND id IN (SELECT value FROM json_each(?3))";
    db.query(sql, &[ws.into(), app_id.into(), list.into()])
        .await?
        .iter()
        .map(|r| Ok((text(r, "id")?, text(r, "def_json")?)))
        .collect()
}

/// Every tool of an app, removed ones included (for re-import diffs).
pub async fn all_tools(db: &impl Db, ws: &str, app_id: &str) -> Result<Vec<ToolRow>, StoreError> {
    let sql = format!("SELECT {TOOL_COLS} FROM tools WHERE workspace_id = ?1 AND app_id = ?2 ORDER BY name, id");
    db.query(&sql, &[ws.into(), app_id.into()]).await?.iter().map(tool_row).collect()
}

#[derive(Debug, Clone, Default)]
pub struct ToolFilter {
    pub tag: Option<String>,
    pub text: Option<String>,
    pub enabled: Option<bool>,
    /// Cursor: the `(name, id)` of the last tool of the previous page.
    pub after: Option<(String, String)>,
    pub limit: u32,
}

fn like_pattern(text: &str) -> String {
    let escaped = text.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
    format!("%{escaped}%")
}

/// Live (not removed) tools of an app, filtered, ordered by (name, id).
pub async fn list_tools(db: &impl Db, ws: &str, app_id: &str, f: &ToolFilter) -> Result<Vec<ToolRow>, StoreError> {
    let (after_name, after_id) = f.after.clone().unwrap_or_default();
    let sql = format!(
        "SELECT {TOOL_COLS} FROM tools WHERE workspace_id = ?1 AND app_id = ?2 AND removed_at IS NULL \
         AND (name > ?3 OR (name = ?3 AND id > ?4)) \
         AND (?5 IS NULL OR EXISTS (SELECT 1 FROM json_each(tools.tags_json) WHERE json_each.value = ?5)) \
         AND (?6 IS NULL OR name LIKE ?6 ESCAPE '\\' OR COALESCE(description, '') LIKE ?6 ESCAPE '\\' \
              OR path LIKE ?6 ESCAPE '\\' OR def_json LIKE ?6 ESCAPE '\\') \
         AND (?7 IS NULL OR enabled = ?7) \
         ORDER BY name, id LIMIT ?8"
    );
    let params = [
        ws.into(),
        app_id.into(),
        after_name.into(),
        after_id.into(),
        f.tag.clone().into(),
        f.text.as_deref().map(like_pattern).into(),
        f.enabled.map(i64::from).into(),
        i64::from(f.limit).into(),
    ];
    db.query(&sql, &params).await?.iter().map(tool_row).collect()
}

/// The next enabled live tools of an app after `after` (name, id) in name order: at most
/// `limit`, and no more than fit `max_bytes` of definitions (at least one), so a reader holds a
/// bounded amount whatever the definitions' sizes.
pub async fn enabled_tools_after(
    db: &impl Db,
    ws: &str,
    app_id: &str,
    after: Option<&(String, String)>,
    limit: u32,
    max_bytes: usize,
) -> Result<Vec<ToolRow>, StoreError> {
    let (after_name, after_id) = after.cloned().unwrap_or_default();
    let sql = format!(
        "SELECT {TOOL_COLS} FROM (SELECT *, SUM(LENGTH(CAST(def_json AS BLOB))) OVER (ORDER BY name, id ROWS UNBOUNDED PRECEDING) \
           - LENGTH(CAST(def_json AS BLOB)) AS before FROM tools \
           WHERE workspace_id = ?1 AND app_id = ?2 AND removed_at IS NULL AND enabled = 1 \
           AND (name > ?3 OR (name = ?3 AND id > ?4)) ORDER BY name, id LIMIT ?5) \
         WHERE before < ?6 ORDER BY name, id"
    );
    let params = [
        ws.into(),
        app_id.into(),
        after_name.into(),
        after_id.into(),
        i64::from(limit).into(),
        (max_bytes as i64).into(),
    ];
    db.query(&sql, &params).await?.iter().map(tool_row).collect()
}

/// Enabled live tools of an app with these names (a server's synced tools: a few).
pub async fn enabled_tools_named(
    db: &impl Db,
    ws: &str,
    app_id: &str,
    names: &[String],
) -> Result<Vec<ToolRow>, StoreError> {
    let sql = format!(
        "SELECT {TOOL_COLS} FROM tools WHERE workspace_id = ?1 AND app_id = ?2 AND removed_at IS NULL AND enabled = 1 \
         AND name IN (SELECT value FROM json_each(?3)) ORDER BY name, id"
    );
    let names = serde_json::to_string(names).unwrap_or_else(|_| "[]".into());
    db.query(&sql, &[ws.into(), app_id.into(), names.into()]).await?.iter().map(tool_row).collect()
}

/// A live tool as a choice sees it (no definition read).
#[derive(Debug, Clone)]
pub struct ToolHead {
    pub id: String,
    pub name: String,
    pub method: String,
    pub tags: Vec<String>,
    pub enabled: bool,
}

/// An app's live tools, without their definitions (at most `limit`).
pub async fn tool_heads(db: &impl Db, ws: &str, app_id: &str, limit: i64) -> Result<Vec<ToolHead>, StoreError> {
    heads(db, ws, app_id, limit, false).await
}

/// An app's enabled live tools, without their definitions (at most `limit`).
pub async fn enabled_tool_heads(db: &impl Db, ws: &str, app_id: &str, limit: i64) -> Result<Vec<ToolHead>, StoreError> {
    heads(db, ws, app_id, limit, true).await
}

async fn heads(db: &impl Db, ws: &str, app_id: &str, limit: i64, enabled: bool) -> Result<Vec<ToolHead>, StoreError> {
    let sql = "SELECT id, name, method, tags_json, enabled FROM tools \
               WHERE workspace_id = ?1 AND app_id = ?2 AND removed_at IS NULL AND (?4 = 0 OR enabled = 1) \
               ORDER BY name, id LIMIT ?3";
    db.query(sql, &[ws.into(), app_id.into(), limit.into(), i64::from(enabled).into()])
        .await?
        .iter()
        .map(|r| {
            Ok(ToolHead {
                id: text(r, "id")?,
                name: text(r, "name")?,
                method: text(r, "method")?,
                tags: serde_json::from_str(&text(r, "tags_json")?).unwrap_or_default(),
                enabled: row_i64(r, "enabled")? != 0,
            })
        })
        .collect()
}

pub async fn get_tool(db: &impl Db, ws: &str, app_id: &str, tool_id: &str) -> Result<Option<ToolRow>, StoreError> {
    let sql = format!(
        "SELECT {TOOL_COLS} FROM tools WHERE workspace_id = ?1 AND app_id = ?2 AND id = ?3 AND removed_at IS NULL"
    );
    db.query(&sql, &[ws.into(), app_id.into(), tool_id.into()]).await?.first().map(tool_row).transpose()
}

/// The live tool of the app with this (curated) name.
pub async fn tool_by_name(db: &impl Db, ws: &str, app_id: &str, name: &str) -> Result<Option<ToolRow>, StoreError> {
    let sql = format!(
        "SELECT {TOOL_COLS} FROM tools WHERE workspace_id = ?1 AND app_id = ?2 AND name = ?3 AND removed_at IS NULL \
         ORDER BY id LIMIT 1"
    );
    db.query(&sql, &[ws.into(), app_id.into(), name.into()]).await?.first().map(tool_row).transpose()
}

/// Is `name` used by another live tool of the app?
pub async fn name_taken(
    db: &impl Db,
    ws: &str,
    app_id: &str,
    name: &str,
    except_tool: &str,
) -> Result<bool, StoreError> {
    let sql = "SELECT COUNT(*) AS n FROM tools WHERE workspace_id = ?4 AND app_id = ?1 AND name = ?2 AND id != ?3 \
               AND removed_at IS NULL";
    let rows = db.query(sql, &[app_id.into(), name.into(), except_tool.into(), ws.into()]).await?;
    Ok(rows.first().map(|r| row_i64(r, "n")).transpose()?.unwrap_or(0) > 0)
}

/// Columns bound per tool row; D1 binds at most 100 parameters per statement.
/// JSON bytes of the rows one insert statement carries (one bound parameter; D1 takes 2 MB).
const INSERT_JSON_BYTES: usize = 1 << 20;

/// Inserts new tools, one packed statement at a time (so a 10,000-tool import holds one
/// statement's JSON, not all of them): [`insert_tools_statements`] for runs of rows.
pub async fn insert_tools(db: &impl Db, ws: &str, app_id: &str, rows: &[ToolRow]) -> Result<(), StoreError> {
    let mut start = 0;
    while start < rows.len() {
        let (mut end, mut bytes) = (start, 0);
        while end < rows.len() && (end == start || bytes + rows[end].def_json.len() < INSERT_JSON_BYTES / 2) {
            bytes += rows[end].def_json.len();
            end += 1;
        }
        for (sql, params) in insert_tools_statements(ws, app_id, &rows[start..end])? {
            db.execute(sql, &params).await?;
        }
        start = end;
    }
    Ok(())
}

/// The statements that insert new tools: rows packed as one JSON list per statement, at most
/// [`INSERT_JSON_BYTES`] each (about 30 statements for 10,000 tools); a row whose JSON alone is
/// larger (a definition full of escapes) is bound column by column in a statement of its own.
pub fn insert_tools_statements(
    ws: &str,
    app_id: &str,
    rows: &[ToolRow],
) -> Result<Vec<Statement<'static>>, StoreError> {
    let mut out: Vec<Statement<'static>> = Vec::new();
    let packed_sql =
        "INSERT INTO tools (id, app_id, workspace_id, operation_key, generated_name, name, description, enabled, \
               method, path, tags_json, def_json, updated_at) \
               SELECT value ->> 0, ?2, ?1, value ->> 1, value ->> 2, value ->> 3, value ->> 4, value ->> 5, \
               value ->> 6, value ->> 7, value ->> 8, value ->> 9, value ->> 10 FROM json_each(?3)";
    let mut packed = String::from("[");
    for t in rows {
        let tags = serde_json::to_string(&t.tags).unwrap_or_else(|_| "[]".into());
        let columns = (
            &t.id,
            &t.operation_key,
            &t.generated_name,
            &t.name,
            &t.description,
            i64::from(t.enabled),
            &t.method,
            &t.path,
            &tags,
            &t.def_json,
            t.updated_at,
        );
        let row = serde_json::to_string(&columns).map_err(|e| StoreError::Corrupt(format!("tool row: {e}")))?;
        if row.len() + 2 > INSERT_JSON_BYTES {
            let sql = "INSERT INTO tools (id, app_id, workspace_id, operation_key, generated_name, name, description, \
                       enabled, method, path, tags_json, def_json, updated_at) \
                       VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)";
            let params = [
                t.id.as_str().into(),
                app_id.into(),
                ws.into(),
                t.operation_key.as_str().into(),
                t.generated_name.as_str().into(),
                t.name.as_str().into(),
                t.description.clone().into(),
                i64::from(t.enabled).into(),
                t.method.as_str().into(),
                t.path.as_str().into(),
                SqlValue::Text(tags),
                t.def_json.as_str().into(),
                t.updated_at.into(),
            ];
            out.push((sql, params.to_vec()));
            continue;
        }
        if packed.len() + row.len() + 2 > INSERT_JSON_BYTES {
            packed.push(']');
            let list = std::mem::replace(&mut packed, "[".into());
            out.push((packed_sql, vec![ws.into(), app_id.into(), SqlValue::Text(list)]));
        }
        if packed.len() > 1 {
            packed.push(',');
        }
        packed.push_str(&row);
    }
    if packed.len() > 1 {
        packed.push(']');
        out.push((packed_sql, vec![ws.into(), app_id.into(), SqlValue::Text(packed)]));
    }
    Ok(out)
}

/// The statement that replaces the generated part of a tool (re-import), keeping the
/// curation, and un-retires it.
/// Every statement names the workspace and app as well as the tool id, so no write can reach
/// another tenant's row even if an id were wrong.
pub fn refresh_statement(
    ws: &str,
    app_id: &str,
    tool_id: &str,
    t: &ToolRow,
    now: i64,
) -> (&'static str, Vec<SqlValue>) {
    let sql = "UPDATE tools SET generated_name = ?2, method = ?3, path = ?4, tags_json = ?5, def_json = ?6, \
               removed_at = NULL, updated_at = ?7 WHERE id = ?1 AND workspace_id = ?8 AND app_id = ?9";
    let tags = serde_json::to_string(&t.tags).unwrap_or_else(|_| "[]".into());
    let params = vec![
        tool_id.into(),
        t.generated_name.as_str().into(),
        t.method.as_str().into(),
        t.path.as_str().into(),
        tags.into(),
        t.def_json.as_str().into(),
        now.into(),
        ws.into(),
        app_id.into(),
    ];
    (sql, params)
}

/// The statement that retires a tool whose operation is gone (kept, hidden).
pub fn retire_statement(ws: &str, app_id: &str, tool_id: &str, now: i64) -> (&'static str, Vec<SqlValue>) {
    (
        "UPDATE tools SET removed_at = ?2, updated_at = ?2 WHERE id = ?1 AND workspace_id = ?3 AND app_id = ?4",
        vec![tool_id.into(), now.into(), ws.into(), app_id.into()],
    )
}

/// Ids per statement when a list of tool ids is bound (D1 allows 100 bound parameters).
const IDS_PER_STATEMENT: usize = 90;

/// Enables or disables many live tools of an app at once, atomically: `Ok(false)` (and no
/// change) when any id is not a live tool of this app. Two round trips per 90 ids at most for
/// the check, one batch for all the updates.
pub async fn set_enabled_many(
    db: &impl Db,
    ws: &str,
    app_id: &str,
    tool_ids: &[String],
    enabled: bool,
    now: i64,
) -> Result<bool, StoreError> {
    let mut ids: Vec<&str> = tool_ids.iter().map(String::as_str).collect();
    ids.sort_unstable();
    ids.dedup();
    let mut found = 0;
    let mut updates = Vec::new();
    for chunk in ids.chunks(IDS_PER_STATEMENT) {
        // `?1`, `?2`: workspace and app; the ids follow from `?{first}` on.
        let scope = |first: usize| {
            let marks: Vec<String> = (0..chunk.len()).map(|i| format!("?{}", i + first)).collect();
            format!("workspace_id = ?1 AND app_id = ?2 AND removed_at IS NULL AND id IN ({})", marks.join(", "))
        };
        let ids_params = chunk.iter().map(|id| SqlValue::from(*id));
        let mut count_params: Vec<SqlValue> = vec![ws.into(), app_id.into()];
        count_params.extend(ids_params.clone());
        let count_sql = format!("SELECT COUNT(*) AS n FROM tools WHERE {}", scope(3));
        found += db.query(&count_sql, &count_params).await?.first().map(|r| row_i64(r, "n")).transpose()?.unwrap_or(0);
        let mut params: Vec<SqlValue> = vec![ws.into(), app_id.into(), i64::from(enabled).into(), now.into()];
        params.extend(ids_params);
        updates.push((format!("UPDATE tools SET enabled = ?3, updated_at = ?4 WHERE {}", scope(5)), params));
    }
    if found != ids.len() as i64 {
        return Ok(false);
    }
    let statements: Vec<(&str, Vec<SqlValue>)> = updates.iter().map(|(sql, p)| (sql.as_str(), p.clone())).collect();
    db.batch(&statements).await?;
    Ok(true)
}

/// An owner's edit of one tool: `None` leaves a field as it is.
#[derive(Debug, Clone, Copy, Default)]
pub struct Curation<'a> {
    pub name: Option<&'a str>,
    /// `Some(None)` restores the generated description.
    pub description: Option<Option<&'a str>>,
    pub enabled: Option<bool>,
}

/// Applies curation to one tool of the app; `false` when no such tool of this workspace and
/// app was changed.
pub async fn curate(
    db: &impl Db,
    (ws, app_id, tool_id): (&str, &str, &str),
    edit: Curation<'_>,
    now: i64,
) -> Result<bool, StoreError> {
    let Curation { name, description, enabled } = edit;
    let sql = "UPDATE tools SET name = COALESCE(?2, name), \
               description = CASE WHEN ?3 = 1 THEN ?4 ELSE description END, \
               enabled = COALESCE(?5, enabled), updated_at = ?6 WHERE id = ?1 AND workspace_id = ?7 AND app_id = ?8";
    let (set_desc, desc) = match description {
        Some(d) => (1i64, d.map(str::to_string)),
        None => (0, None),
    };
    db.execute(
        sql,
        &[
            tool_id.into(),
            name.map(str::to_string).into(),
            set_desc.into(),
            desc.into(),
            enabled.map(i64::from).into(),
            SqlValue::Integer(now),
            ws.into(),
            app_id.into(),
        ],
    )
    .await
    .map(|n| n == 1)
}
