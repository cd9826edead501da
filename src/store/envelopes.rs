//! Where sealed envelopes live, read from D1 for the re-seal job (KV cannot be listed): every
//! server's credential (its draft `cred:<srv>` and the copy its live manifest uses), every end
//! user of a `user_key` server (their sealed tokens are in the row itself), every Git
//! connection and Git source (sealed tokens and webhook secrets, in their rows; issue 17) and
//! every workspace secret, in one stable order so the job can resume after any of them.

use super::{opt_i64, opt_text, text, Db, StoreError};

/// The owner of one or two envelopes, as D1 names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sealed {
    /// A server's credential: the draft (if set) and its live manifest's copy (if published).
    Server { id: String, credential_key: Option<String>, published_version: Option<i64> },
    /// A workspace secret.
    Secret { workspace_id: String, name: String, kv_key: String },
    /// An end user of a `user_key` server: the envelopes are in D1, written back by a
    /// compare-and-set on `generation`.
    KeyUser { server_id: String, user_id: String, generation: i64, refresh: Option<String>, access: Option<String> },
    /// A Git connection's tokens, in D1, written back by a compare-and-set on `generation`.
    GitConnection { id: String, workspace_id: String, generation: i64, refresh: Option<String>, access: Option<String> },
    /// A Git source's webhook secret, in D1, written back by a compare-and-set on its value.
    GitHook { id: String, workspace_id: String, secret: String },
}

/// `g|<connection id>`, `h|<source id>`, `s|<server id>`, `u|<server id>|<user id>` and
/// `w|<workspace id>|<name>` sort Git connections first, then Git sources, servers, key users and
/// secrets; ids and secret names never contain `|`.
const PAGE: &str = "SELECT * FROM ( \
    SELECT 'g|' || id AS k, id, NULL AS credential_key, NULL AS published_version, workspace_id, NULL AS name, \
           NULL AS kv_key, updated_at, NULL AS user_id, generation, refresh_sealed, access_sealed \
      FROM git_connections WHERE refresh_sealed IS NOT NULL OR access_sealed IS NOT NULL \
    UNION ALL \
    SELECT 'h|' || id AS k, id, NULL, NULL, workspace_id, NULL, NULL, updated_at, NULL, NULL, webhook_secret_sealed, NULL \
      FROM app_sources \
    UNION ALL \
    SELECT 's|' || id AS k, id, credential_key, published_version, NULL AS workspace_id, NULL AS name, NULL AS kv_key, \
           updated_at, NULL AS user_id, NULL AS generation, NULL AS refresh_sealed, NULL AS access_sealed \
      FROM servers WHERE credential_key IS NOT NULL OR published_version IS NOT NULL \
    UNION ALL \
    SELECT 'u|' || server_id || '|' || user_id AS k, server_id, NULL, NULL, NULL, NULL, NULL, signed_in_at, user_id, \
           generation, refresh_sealed, access_sealed \
      FROM key_users WHERE refresh_sealed IS NOT NULL OR access_sealed IS NOT NULL \
    UNION ALL \
    SELECT 'w|' || workspace_id || '|' || name AS k, NULL, NULL, NULL, workspace_id, name, kv_key, updated_at, \
           NULL, NULL, NULL, NULL \
      FROM workspace_secrets \
  ) WHERE k > ?1 ORDER BY k LIMIT ?2";
const SERVER: &str =
    "SELECT 's|' || id AS k, id, credential_key, published_version, updated_at FROM servers WHERE id = ?1";
const SECRET: &str = "SELECT 'w|' || workspace_id || '|' || name AS k, workspace_id, name, kv_key, updated_at \
    FROM workspace_secrets WHERE workspace_id = ?1 AND name = ?2";

/// One row: its resume key, its owner and when it last changed.
pub type Row = (String, Sealed, i64);

/// Up to `limit` owners after the resume key `after` ("" for the start).
pub async fn page(db: &impl Db, after: &str, limit: i64) -> Result<Vec<Row>, StoreError> {
    db.query(PAGE, &[after.into(), limit.into()]).await?.iter().map(row).collect()
}

/// The owner as D1 has it now (`None`: gone), read again just before its envelopes are written.
pub async fn reread(db: &impl Db, owner: &Sealed) -> Result<Option<Row>, StoreError> {
    let rows = match owner {
        Sealed::Server { id, .. } => db.query(SERVER, &[id.as_str().into()]).await?,
        Sealed::Secret { workspace_id, name, .. } => {
            db.query(SECRET, &[workspace_id.as_str().into(), name.as_str().into()]).await?
        }
        // Written back by a compare-and-set instead (`key_users::reseal`, `git::reseal_*`).
        Sealed::KeyUser { .. } | Sealed::GitConnection { .. } | Sealed::GitHook { .. } => return Ok(None),
    };
    rows.first().map(row).transpose()
}

fn row(r: &super::Row) -> Result<Row, StoreError> {
    let k = text(r, "k")?;
    let owner = if k.starts_with("s|") {
        Sealed::Server {
            id: text(r, "id")?,
            credential_key: opt_text(r, "credential_key"),
            published_version: opt_i64(r, "published_version")?,
        }
    } else if k.starts_with("g|") {
        Sealed::GitConnection {
            id: text(r, "id")?,
            workspace_id: text(r, "workspace_id")?,
            generation: super::row_i64(r, "generation")?,
            refresh: opt_text(r, "refresh_sealed"),
            access: opt_text(r, "access_sealed"),
        }
    } else if k.starts_with("h|") {
        Sealed::GitHook {
            id: text(r, "id")?,
            workspace_id: text(r, "workspace_id")?,
            secret: text(r, "refresh_sealed")?,
        }
    } else if k.starts_with("u|") {
        Sealed::KeyUser {
            server_id: text(r, "id")?,
            user_id: text(r, "user_id")?,
            generation: super::row_i64(r, "generation")?,
            refresh: opt_text(r, "refresh_sealed"),
            access: opt_text(r, "access_sealed"),
        }
    } else {
        Sealed::Secret { workspace_id: text(r, "workspace_id")?, name: text(r, "name")?, kv_key: text(r, "kv_key")? }
    };
    Ok((k, owner, super::row_i64(r, "updated_at")?))
}
