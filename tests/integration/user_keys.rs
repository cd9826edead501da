//! The key gate of `user_key` servers (issue 16) on the host: a real SQLite with the migrations,
//! the in-memory KV and a scripted provider. What the e2e test cannot make happen on demand: a
//! revocation seen by another isolate within the cache bound, the key store failing, the
//! provider down mid-refresh, a changed provider, corrupt rows and envelopes.

use std::cell::RefCell;

use flowcp::auth::user_key::{TokenSecrets, EPOCH_CACHE_TTL_MS};
use flowcp::crypto::{aad_server_credential, Keyring};
use flowcp::manifest::{Manifest, ManifestAuth, ManifestOAuth};
use flowcp::mcp::server::{Admitted, KeyGate, McpResponse};
use flowcp::net::FetchPolicy;
use flowcp::oauth::keys::{self, Gate, GateCache};
use flowcp::oauth::tokens::Upstream;
use flowcp::oauth::upstream::{Answer, Identity};
use flowcp::store::{block_on, key_users, Db, Kv, MemoryKv, Row, SqlValue, Statement, StoreError};
use flowcp::vocab::AuthMode;

use crate::support::{resp, ScriptedHttp, SqliteDb};

const ORIGIN: &str = "https://flowcp.example";
const T0: i64 = 1_800_000_000_000;

struct Fx {
    db: SqliteDb,
    kv: MemoryKv,
    keyring: Keyring,
    secrets: TokenSecrets,
    m: Manifest,
}

fn manifest(token_url: &str) -> Manifest {
    Manifest {
        format: flowcp::manifest::FORMAT,
        server_id: "srv1".into(),
        workspace_id: "ws1".into(),
        version: 1,
        published_at: T0,
        name: "PA".into(),
        auth: ManifestAuth {
            mode: AuthMode::UserKey,
            public: false,
            placement: None,
            credential_ref: Some("cred:srv1:v1".into()),
            scopes: vec!["flows".into()],
            credential_origin: Some("https://api.example".into()),
            oauth: Some(ManifestOAuth {
                authorize_url: "https://login.example/authorize".into(),
                token_url: token_url.into(),
                client_id: "app".into(),
                authorize_params: Vec::new(),
                issuer: None,
            }),
        },
        discovery: false,
        base_url: None,
        allowed_origins: None,
        skills: None,
        usage_target: None,
        store: None,
        tools: Vec::new(),
        layout: None,
    }
}

fn fixture() -> Fx {
    let db = SqliteDb::migrated();
    for sql in [
        "INSERT INTO workspaces (id, name, created_at) VALUES ('ws1', 'W', 0)",
        "INSERT INTO apps (id, workspace_id, name, created_at, updated_at) VALUES ('app1', 'ws1', 'A', 0, 0)",
        "INSERT INTO servers (id, workspace_id, app_id, name, created_at, updated_at) VALUES ('srv1', 'ws1', 'app1', 'S', 0, 0)",
    ] {
        block_on(db.execute(sql, &[])).unwrap();
    }
    let keyring = Keyring::parse(&format!("k1:{}", "44".repeat(32))).unwrap();
    let kv = MemoryKv::default();
    let sealed = keyring.seal(b"client-secret", &aad_server_credential("srv1")).unwrap();
    block_on(kv.put("cred:srv1:v1", sealed.as_bytes(), None)).unwrap();
    let secrets = TokenSecrets::parse(&format!("t1:{}", "55".repeat(32))).unwrap();
    Fx { db, kv, keyring, secrets, m: manifest("https://login.example/token") }
}

fn answer(m: &Manifest, access: &str, refresh: Option<&str>, expires_at_ms: Option<i64>, subject: &str) -> Answer {
    Answer {
        upstream: Upstream {
            access_token: access.into(),
            refresh_token: refresh.map(str::to_string),
            expires_at_ms,
            scope: None,
            provider: flowcp::oauth::tokens::provider_binding(m),
        },
        identity: Some(Identity { issuer: "https://login.example".into(), subject: subject.into() }),
    }
}

/// A signed-in user with a key; `expires_at_ms` of their first access token.
fn user(fx: &Fx, subject: &str, expires_at_ms: Option<i64>) -> (String, String) {
    let a = answer(&fx.m, &format!("at-{subject}-1"), Some(&format!("rt-{subject}-1")), expires_at_ms, subject);
    let id = block_on(keys::sign_in(&fx.db, &fx.keyring, &fx.m, &a, T0)).unwrap();
    let (key, _) = block_on(keys::issue_key(&fx.db, &fx.secrets, ORIGIN, "srv1", &id, T0)).unwrap().unwrap();
    (id, key)
}

#[allow(clippy::result_large_err)] // the runtime's own answer type
fn admit_with(
    fx: &Fx,
    db: &impl Db,
    http: &ScriptedHttp,
    cache: &GateCache,
    m: &Manifest,
    key: &str,
    now: i64,
) -> Result<Admitted, McpResponse> {
    let clock = move || now;
    let gate = Gate {
        db,
        kv: &fx.kv,
        http,
        keyring: &fx.keyring,
        secrets: Some(&fx.secrets),
        fetch_policy: FetchPolicy::default(),
        origin: ORIGIN,
        clock: &clock,
        cache,
        admitted: Default::default(),
        user: Default::default(),
        default_plan: None,
    };
    block_on(gate.admit(m, Some(key)))
}

#[allow(clippy::result_large_err)]
fn admit(fx: &Fx, http: &ScriptedHttp, cache: &GateCache, key: &str, now: i64) -> Result<Admitted, McpResponse> {
    admit_with(fx, &fx.db, http, cache, &fx.m, key, now)
}

fn token_answer(access: &str, refresh: &str) -> crate::support::Scripted {
    let body = format!(r#"{{"access_token":"{access}","refresh_token":"{refresh}","expires_in":3600}}"#);
    resp(200, &[("content-type", "application/json")], body.as_bytes())
}

#[test]
fn a_revocation_reaches_another_isolate_within_the_cache_bound_and_this_one_at_once() {
    let fx = fixture();
    let (id, key) = user(&fx, "alice", None);
    let http = ScriptedHttp::default();
    let (here, elsewhere) = (GateCache::default(), GateCache::default());
    assert_eq!(admit(&fx, &http, &elsewhere, &key, T0).unwrap().upstream_token.as_deref(), Some("at-alice-1"));
    assert!(block_on(key_users::revoke(&fx.db, "srv1", &id)).unwrap());
    // An isolate that has not seen the user reads D1: refused at once.
    assert_eq!(admit(&fx, &http, &here, &key, T0 + 1).unwrap_err().status, 401);
    // One that read the epoch before may accept it until its copy is EPOCH_CACHE_TTL_MS old:
    // the documented bound, and no later.
    assert!(admit(&fx, &http, &elsewhere, &key, T0 + EPOCH_CACHE_TTL_MS - 1).is_ok());
    assert_eq!(admit(&fx, &http, &elsewhere, &key, T0 + EPOCH_CACHE_TTL_MS).unwrap_err().status, 401);
    assert!(http.seen.borrow().is_empty(), "no provider call for a revoked user");
}

/// A `Db` whose every call fails (D1 down).
struct DownDb;
impl Db for DownDb {
    async fn execute(&self, _: &str, _: &[SqlValue]) -> Result<u64, StoreError> {
        Err(StoreError::Backend("D1 down".into()))
    }
    async fn query(&self, _: &str, _: &[SqlValue]) -> Result<Vec<Row>, StoreError> {
        Err(StoreError::Backend("D1 down".into()))
    }
    async fn batch(&self, _: &[Statement<'_>]) -> Result<Vec<u64>, StoreError> {
        Err(StoreError::Backend("D1 down".into()))
    }
}

#[test]
fn the_key_store_failing_answers_503_and_never_admits() {
    let fx = fixture();
    let (_, key) = user(&fx, "alice", None);
    let r = admit_with(&fx, &DownDb, &ScriptedHttp::default(), &GateCache::default(), &fx.m, &key, T0).unwrap_err();
    assert_eq!(r.status, 503);
    assert!(r.internal.unwrap().contains("D1 down"), "the operator log says why");
    assert!(!r.body.unwrap().to_string().contains("D1"), "the client does not");
}

#[test]
fn an_expired_token_is_refreshed_with_rotation_and_a_provider_outage_leaves_the_next_call_a_retry() {
    let fx = fixture();
    let (id, key) = user(&fx, "alice", Some(T0 + 30_000)); // inside the 60 s margin: due now
    let http = ScriptedHttp::new([resp(500, &[], b"oops")]);
    let r = admit(&fx, &http, &GateCache::default(), &key, T0).unwrap_err();
    assert_eq!(r.status, 503, "the provider is down: try again");
    let row = block_on(key_users::get(&fx.db, "srv1", &id)).unwrap().unwrap();
    assert_eq!(row.lease_until, None, "the lease is released");
    assert_eq!(row.status, key_users::Status::Active);
    let sent = http.seen.borrow()[0].clone();
    let body = String::from_utf8(sent.body.unwrap()).unwrap();
    assert!(body.contains("refresh_token=rt-alice-1") && body.contains("client_secret=client-secret"), "{body}");

    http.push(token_answer("at-alice-2", "rt-alice-2"));
    let a = admit(&fx, &http, &GateCache::default(), &key, T0 + 1).unwrap();
    assert_eq!(a.upstream_token.as_deref(), Some("at-alice-2"));
    let after = block_on(key_users::get(&fx.db, "srv1", &id)).unwrap().unwrap();
    assert_eq!(after.generation, row.generation + 1);
    assert_ne!(after.refresh_sealed, row.refresh_sealed, "the rotated refresh token replaced the old one");
    // The next refresh sends the rotated one.
    http.push(token_answer("at-alice-3", "rt-alice-3"));
    let later = T0 + 3_600_000;
    assert_eq!(
        admit(&fx, &http, &GateCache::default(), &key, later).unwrap().upstream_token.as_deref(),
        Some("at-alice-3")
    );
    let last = String::from_utf8(http.seen.borrow().last().unwrap().body.clone().unwrap()).unwrap();
    assert!(last.contains("refresh_token=rt-alice-2"), "{last}");
}

#[test]
fn invalid_grant_disconnects_and_signing_in_again_revives_the_same_key() {
    let fx = fixture();
    let (id, key) = user(&fx, "alice", Some(T0));
    let http = ScriptedHttp::new([resp(400, &[], br#"{"error":"invalid_grant"}"#)]);
    let a = admit(&fx, &http, &GateCache::default(), &key, T0 + 1).unwrap();
    assert_eq!(a.upstream_token, None);
    assert!(a.problem.as_deref().unwrap().contains("Sign in again at https://flowcp.example/portal/srv1"), "{a:?}");
    let row = block_on(key_users::get(&fx.db, "srv1", &id)).unwrap().unwrap();
    assert_eq!(row.status, key_users::Status::Disconnected);
    assert_eq!((row.refresh_sealed, row.access_sealed), (None, None), "the dead tokens are deleted");
    // A second call does not ask the provider again.
    assert!(admit(&fx, &http, &GateCache::default(), &key, T0 + 2).unwrap().problem.is_some());
    assert_eq!(http.seen.borrow().len(), 1);
    // The same person signs in again: same user, same key.
    let again = answer(&fx.m, "at-alice-9", Some("rt-alice-9"), None, "alice");
    assert_eq!(block_on(keys::sign_in(&fx.db, &fx.keyring, &fx.m, &again, T0 + 3)).unwrap(), id);
    let a = admit(&fx, &http, &GateCache::default(), &key, T0 + 4).unwrap();
    assert_eq!(a.upstream_token.as_deref(), Some("at-alice-9"));
}

#[test]
fn after_the_owner_changes_the_provider_no_old_token_is_sent_anywhere() {
    let fx = fixture();
    let (_, key) = user(&fx, "alice", None);
    let moved = manifest("https://elsewhere.example/token");
    let http = ScriptedHttp::default();
    let a = admit_with(&fx, &fx.db, &http, &GateCache::default(), &moved, &key, T0 + 1).unwrap();
    assert_eq!(a.upstream_token, None);
    assert!(a.problem.as_deref().unwrap().contains("provider changed"), "{a:?}");
    assert!(http.seen.borrow().is_empty(), "the old refresh token went nowhere");
}

#[test]
fn corrupt_rows_and_envelopes_are_refused_not_a_panic() {
    let fx = fixture();
    let (id, key) = user(&fx, "alice", None);
    let http = ScriptedHttp::new([token_answer("at-alice-2", "rt-alice-2")]);
    // An access envelope that does not open is not used: the gate refreshes instead.
    block_on(fx.db.execute("UPDATE key_users SET access_sealed = 'garbage' WHERE user_id = ?1", &[id.as_str().into()]))
        .unwrap();
    assert_eq!(
        admit(&fx, &http, &GateCache::default(), &key, T0 + 1).unwrap().upstream_token.as_deref(),
        Some("at-alice-2")
    );
    // A sealed token moved to another user's row does not open there (AAD names the user).
    let (bob, bob_key) = user(&fx, "bob", Some(T0 + 3_600_000));
    block_on(fx.db.execute(
        "UPDATE key_users SET access_sealed = (SELECT access_sealed FROM key_users WHERE user_id = ?1), \
         refresh_sealed = (SELECT refresh_sealed FROM key_users WHERE user_id = ?1) WHERE user_id = ?2",
        &[id.as_str().into(), bob.as_str().into()],
    ))
    .unwrap();
    let a = admit(&fx, &http, &GateCache::default(), &bob_key, T0 + 2).unwrap();
    assert_eq!(a.upstream_token, None, "alice's token is never bob's");
    assert!(a.problem.is_some());
    // An unknown status is corrupt storage: 503, no panic.
    block_on(fx.db.execute("UPDATE key_users SET status = 'weird' WHERE user_id = ?1", &[id.as_str().into()])).unwrap();
    assert_eq!(admit(&fx, &http, &GateCache::default(), &key, T0 + 3).unwrap_err().status, 503);
}

#[test]
fn a_sign_in_without_an_identity_is_refused_and_one_person_is_one_user() {
    let fx = fixture();
    let mut a = answer(&fx.m, "at", Some("rt"), None, "alice");
    a.identity = None;
    assert!(block_on(keys::sign_in(&fx.db, &fx.keyring, &fx.m, &a, T0)).unwrap_err().contains("OpenID Connect"));
    let (first, _) = user(&fx, "alice", None);
    let (second, _) = user(&fx, "alice", None);
    let (other, _) = user(&fx, "bob", None);
    assert_eq!(first, second);
    assert_ne!(first, other);
}

#[test]
fn without_the_token_secret_keys_are_503_and_without_a_key_401() {
    let fx = fixture();
    let (_, key) = user(&fx, "alice", None);
    let clock = || T0;
    let cache = RefCell::default();
    let http = ScriptedHttp::default();
    let gate = Gate {
        db: &fx.db,
        kv: &fx.kv,
        http: &http,
        keyring: &fx.keyring,
        secrets: None,
        fetch_policy: FetchPolicy::default(),
        origin: ORIGIN,
        clock: &clock,
        cache: &cache,
        admitted: Default::default(),
        user: Default::default(),
        default_plan: None,
    };
    assert_eq!(block_on(gate.admit(&fx.m, Some(&key))).unwrap_err().status, 503);
    let gate = Gate { secrets: Some(&fx.secrets), ..gate };
    let r = block_on(gate.admit(&fx.m, None)).unwrap_err();
    assert_eq!(r.status, 401);
    assert!(r.body.unwrap().to_string().contains("/portal/srv1"));
}

#[test]
fn signing_in_again_without_a_new_refresh_token_keeps_the_stored_one() {
    let fx = fixture();
    let (id, key) = user(&fx, "alice", Some(T0 + 30_000));
    // Google sends a refresh token only on the first consent.
    let again = answer(&fx.m, "at-alice-2", None, Some(T0 + 30_000), "alice");
    assert_eq!(block_on(keys::sign_in(&fx.db, &fx.keyring, &fx.m, &again, T0 + 1)).unwrap(), id);
    let http = ScriptedHttp::new([token_answer("at-alice-3", "rt-alice-3")]);
    assert_eq!(
        admit(&fx, &http, &GateCache::default(), &key, T0 + 2).unwrap().upstream_token.as_deref(),
        Some("at-alice-3")
    );
    let sent = String::from_utf8(http.seen.borrow()[0].body.clone().unwrap()).unwrap();
    assert!(sent.contains("refresh_token=rt-alice-1"), "the first sign-in's refresh token was kept: {sent}");
}

#[test]
fn a_replaced_key_admitted_from_a_cached_epoch_is_refused_before_any_refresh() {
    let fx = fixture();
    let (id, old) = user(&fx, "alice", Some(T0 + 3_600_000));
    let http = ScriptedHttp::default();
    block_on(keys::issue_key(&fx.db, &fx.secrets, ORIGIN, "srv1", &id, T0 + 1)).unwrap().unwrap();
    // An isolate that read the row before the re-issue (epoch 1), within the cache bound, with
    // the old key's access token due: the refresh reads the row, sees the new epoch and stops.
    let late = T0 + 3_600_000;
    let stale_cache = GateCache::default();
    stale_cache.borrow_mut().put("srv1", &id, snapshot_at_epoch(&fx, &id, 1), late);
    assert_eq!(admit(&fx, &http, &stale_cache, &old, late).unwrap_err().status, 401);
    assert!(http.seen.borrow().is_empty(), "no provider call for a replaced key");
}

/// What an isolate would hold had it read the row when its epoch was `epoch`.
fn snapshot_at_epoch(fx: &Fx, user_id: &str, epoch: i64) -> keys::Snapshot {
    let mut row = block_on(key_users::get(&fx.db, "srv1", user_id)).unwrap().unwrap();
    row.epoch = epoch;
    keys::Snapshot::of(&row)
}

#[test]
fn a_configured_issuer_is_the_only_one_accepted() {
    let mut fx = fixture();
    if let Some(o) = fx.m.auth.oauth.as_mut() {
        o.issuer = Some("https://login.example/tenant-a".into());
    }
    let mut a = answer(&fx.m, "at", Some("rt"), None, "mallory");
    a.identity = Some(Identity { issuer: "https://login.example/tenant-b".into(), subject: "mallory".into() });
    assert!(block_on(keys::sign_in(&fx.db, &fx.keyring, &fx.m, &a, T0)).unwrap_err().contains("another issuer"));
    a.identity = Some(Identity { issuer: "https://login.example/tenant-a".into(), subject: "alice".into() });
    assert!(block_on(keys::sign_in(&fx.db, &fx.keyring, &fx.m, &a, T0)).is_ok());
}

#[test]
fn the_reseal_job_moves_key_users_tokens_to_the_primary_key() {
    use flowcp::service::reseal;
    let fx = fixture();
    let (_, key) = user(&fx, "alice", None);
    let rotating = Keyring::parse(&format!("k2:{},k1:{}", "66".repeat(32), "44".repeat(32))).unwrap();
    let dry = block_on(reseal::run(&fx.db, &fx.kv, &rotating, "", 40, true, T0)).unwrap();
    assert!(dry.opened_with_older_key >= 2 && dry.failed.is_empty(), "{dry:?}");
    let run = block_on(reseal::run(&fx.db, &fx.kv, &rotating, "", 40, false, T0 + reseal::SETTLE_MS)).unwrap();
    assert!(run.resealed >= 2, "{run:?}");
    // Only the new key is left: the user's tokens still open.
    let only_new = Fx { keyring: Keyring::parse(&format!("k2:{}", "66".repeat(32))).unwrap(), ..fx };
    let sealed = only_new.keyring.seal(b"client-secret", &aad_server_credential("srv1")).unwrap();
    block_on(only_new.kv.put("cred:srv1:v1", sealed.as_bytes(), None)).unwrap();
    let a = admit(&only_new, &ScriptedHttp::default(), &GateCache::default(), &key, T0 + 1).unwrap();
    assert_eq!(a.upstream_token.as_deref(), Some("at-alice-1"));
}

#[test]
fn publishing_with_another_provider_or_mode_revokes_the_old_users() {
    let fx = fixture();
    let (id, key) = user(&fx, "alice", None);
    let binding = flowcp::oauth::tokens::provider_binding(&fx.m).unwrap();
    assert_eq!(block_on(key_users::revoke_stale(&fx.db, "ws1", "srv1", Some(&binding))).unwrap(), 0, "same provider");
    assert_eq!(block_on(key_users::revoke_stale(&fx.db, "ws1", "srv1", Some("other"))).unwrap(), 1);
    let row = block_on(key_users::get(&fx.db, "srv1", &id)).unwrap().unwrap();
    assert_eq!((row.status, row.refresh_sealed, row.access_sealed), (key_users::Status::Revoked, None, None));
    assert_eq!(admit(&fx, &ScriptedHttp::default(), &GateCache::default(), &key, T0 + 1).unwrap_err().status, 401);
}

/// One request's gate (the isolate's `cache` outlives it).
fn with_gate<R>(
    fx: &Fx,
    http: &ScriptedHttp,
    cache: &GateCache,
    now: i64,
    f: impl FnOnce(&Gate<'_, SqliteDb, MemoryKv, ScriptedHttp>) -> R,
) -> R {
    let clock = move || now;
    let gate = Gate {
        db: &fx.db,
        kv: &fx.kv,
        http,
        keyring: &fx.keyring,
        secrets: Some(&fx.secrets),
        fetch_policy: FetchPolicy::default(),
        origin: ORIGIN,
        clock: &clock,
        cache,
        admitted: Default::default(),
        user: Default::default(),
        default_plan: None,
    };
    f(&gate)
}

/// The API refusing a cached access token before its expiry (401) drops it, so the user's next
/// call refreshes; a token the request just got from the provider is not dropped again, and an
/// isolate drops a user's token at most once per bound (an API that always answers 401 cannot
/// make every call refresh).
#[test]
fn an_upstream_401_to_a_cached_token_makes_the_next_call_refresh_within_a_bound() {
    let fx = fixture();
    let (_, key) = user(&fx, "alice", None); // no expiry: time alone never refreshes it
    let http = ScriptedHttp::default();
    let cache = GateCache::default();
    let token = |a: Result<Admitted, McpResponse>| a.unwrap().upstream_token.unwrap();
    let refused = |now: i64| {
        with_gate(&fx, &http, &cache, now, |g| {
            let t = token(block_on(g.admit(&fx.m, Some(&key))));
            block_on(g.upstream_refused(&fx.m));
            t
        })
    };
    let admit_at = |now: i64| with_gate(&fx, &http, &cache, now, |g| token(block_on(g.admit(&fx.m, Some(&key)))));
    assert_eq!(refused(T0 + 1), "at-alice-1");
    http.push(token_answer("at-alice-2", "rt-alice-2"));
    // The next call refreshes; a 401 to that brand-new token drops nothing.
    assert_eq!(refused(T0 + 2), "at-alice-2");
    assert_eq!(http.seen.borrow().len(), 1, "one refresh");
    // Within the bound another 401 to the cached token is not acted on.
    assert_eq!(refused(T0 + 3), "at-alice-2");
    assert_eq!(admit_at(T0 + 4), "at-alice-2");
    assert_eq!(http.seen.borrow().len(), 1, "no second refresh within the bound");
    // After the bound across isolates (5 minutes), a 401 drops the token again and the next
    // call refreshes.
    assert_eq!(refused(T0 + 2 + EPOCH_CACHE_TTL_MS), "at-alice-2");
    assert_eq!(admit_at(T0 + 3 + EPOCH_CACHE_TTL_MS), "at-alice-2", "within the 5 minutes: no drop");
    assert_eq!(http.seen.borrow().len(), 1);
    let later = T0 + 2 + flowcp::store::key_users::DROP_EVERY_MS;
    assert_eq!(refused(later), "at-alice-2");
    http.push(token_answer("at-alice-3", "rt-alice-3"));
    assert_eq!(admit_at(later + 1), "at-alice-3");
    assert_eq!(http.seen.borrow().len(), 2);
}

/// A `user_key` manifest with one synced GET tool, `list_live_flows(environmentName)`.
fn synced_manifest(fx: &Fx) -> Manifest {
    let doc = serde_json::json!({
        "openapi": "3.0.3", "info": { "title": "PA", "version": "1" }, "servers": [{ "url": "https://api.example" }],
        "paths": { "/flows": { "get": { "operationId": "list_live_flows", "description": "The flows.",
            "parameters": [{ "name": "environmentName", "in": "query", "required": true, "schema": { "type": "string" } }],
            "responses": { "200": { "description": "ok" } } } } }
    });
    let tools = flowcp::tools::import_value(doc).unwrap().tools;
    let m = Manifest { tools, store: Some(vec!["list_live_flows".into()]), ..fx.m.clone() };
    block_on(async {
        crate::support::put_manifest(&fx.kv, &m);
        fx.kv.put(&flowcp::manifest::live_key("srv1"), b"1", None).await.unwrap();
    });
    m
}

/// One tools/call (or tools/list) with `key` through the runtime and the key gate.
fn rpc_as(
    fx: &Fx,
    http: &ScriptedHttp,
    key: &str,
    method: &str,
    params: serde_json::Value,
    now: i64,
) -> serde_json::Value {
    let cache = GateCache::default();
    let manifests = flowcp::mcp::server::ManifestCache::default();
    with_gate(fx, http, &cache, now, |gate| {
        let clock = move || now;
        let rt = flowcp::mcp::server::Runtime {
            kv: &fx.kv,
            cache: &manifests,
            http,
            keyring: &fx.keyring,
            fetch_policy: FetchPolicy::default(),
            origin: ORIGIN.into(),
            clock: &clock,
            upstream_timeout_ms: 1000,
            key_gate: Some(gate),
            quota: None,
        };
        let body = serde_json::json!({ "jsonrpc": "2.0", "id": 1, "method": method, "params": params });
        let headers = vec![
            ("content-type".to_string(), "application/json".to_string()),
            ("accept".to_string(), "application/json, text/event-stream".to_string()),
            ("x-api-key".to_string(), key.to_string()),
        ];
        let body = serde_json::to_vec(&body).unwrap();
        let r = block_on(flowcp::mcp::server::handle(
            &rt,
            "srv1",
            &flowcp::mcp::server::McpRequest { method: "POST", headers: &headers, body: &body },
        ));
        r.body_json().unwrap()["result"].clone()
    })
}

/// Store tools (issue 16): a synced tool's answer is kept sealed per user and arguments, served
/// with its age when the API is down, refreshed by the cron as the user, refused off the team
/// plan, and deleted when the user revokes.
#[test]
fn a_synced_tools_answer_is_served_from_the_store_when_the_api_is_down() {
    let fx = fixture();
    let m = synced_manifest(&fx);
    let (id, key) = user(&fx, "alice", None);
    let http = ScriptedHttp::default();
    let call = |name: &str, now: i64| {
        rpc_as(
            &fx,
            &http,
            &key,
            "tools/call",
            serde_json::json!({ "name": name, "arguments": { "environmentName": "Default-1" } }),
            now,
        )
    };
    let listed = rpc_as(&fx, &http, &key, "tools/list", serde_json::json!({}), T0);
    let names: Vec<&str> = listed["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["list_store_flows", "list_live_flows"]);
    let empty = call("list_store_flows", T0);
    assert_eq!(empty["isError"], true);
    assert!(empty["content"][0]["text"].as_str().unwrap().contains("call list_live_flows"), "{empty}");

    http.push(resp(200, &[("content-type", "application/json")], br#"{"value":[{"name":"flow-1"}]}"#));
    let live = call("list_live_flows", T0 + 1_000);
    assert_ne!(live["isError"], true, "{live}");
    let rows = block_on(fx.db.query("SELECT * FROM store_entries", &[])).unwrap();
    assert_eq!(rows.len(), 1);
    let row = serde_json::to_string(&rows[0]).unwrap();
    assert!(!row.contains("flow-1") && !row.contains("Default-1"), "sealed: {row}");

    // The API is down: the live tool fails, the store answers with the age.
    http.push(resp(503, &[], b"down"));
    assert_eq!(call("list_live_flows", T0 + 61_000)["isError"], true);
    let stored = call("list_store_flows", T0 + 61_000);
    assert_ne!(stored["isError"], true, "{stored}");
    assert_eq!(stored["structuredContent"]["value"]["value"][0]["name"], "flow-1");
    assert_eq!(stored["structuredContent"]["age_seconds"], 60);
    // Arguments the tool does not declare make no other entry (they never reach the API).
    http.push(resp(200, &[("content-type", "application/json")], br#"{"value":[{"name":"flow-1"}]}"#));
    let padded = serde_json::json!({ "name": "list_live_flows", "arguments": { "environmentName": "Default-1", "pad": "x".repeat(100_000) } });
    rpc_as(&fx, &http, &key, "tools/call", padded, T0 + 61_500);
    assert_eq!(block_on(fx.db.query("SELECT * FROM store_entries", &[])).unwrap().len(), 1);
    // Other arguments have nothing stored.
    let other = rpc_as(
        &fx,
        &http,
        &key,
        "tools/call",
        serde_json::json!({ "name": "list_store_flows", "arguments": { "environmentName": "Other" } }),
        T0 + 62_000,
    );
    assert_eq!(other["isError"], true);

    // The cron refreshes it an hour later, as the user.
    http.push(resp(200, &[("content-type", "application/json")], br#"{"value":[{"name":"flow-2"}]}"#));
    let later = T0 + 61_500 + flowcp::oauth::store_tools::REFRESH_EVERY_MS + 1;
    let cache = GateCache::default();
    let report =
        with_gate(&fx, &http, &cache, later, |g| block_on(flowcp::oauth::store_refresh::refresh_due(g, later)));
    assert_eq!(report.refreshed, 1, "{report:?}");
    let sent = http.seen.borrow().last().unwrap().clone();
    assert!(sent.url.ends_with("/flows?environmentName=Default-1"), "{}", sent.url);
    assert!(sent.headers.iter().any(|(k, v)| k == "authorization" && v == "Bearer at-alice-1"), "as the user");
    let fresh = call("list_store_flows", later + 5_000);
    assert_eq!(fresh["structuredContent"]["value"]["value"][0]["name"], "flow-2");
    assert_eq!(fresh["structuredContent"]["age_seconds"], 5);

    // Off the team plan the store does not answer.
    block_on(fx.db.execute("UPDATE workspaces SET plan = 'pro' WHERE id = 'ws1'", &[])).unwrap();
    let refused = call("list_store_flows", later + 6_000);
    assert!(refused["content"][0]["text"].as_str().unwrap().contains("team plan"), "{refused}");
    block_on(fx.db.execute("UPDATE workspaces SET plan = 'team' WHERE id = 'ws1'", &[])).unwrap();
    assert_ne!(call("list_store_flows", later + 7_000)["isError"], true);

    // Revoking deletes the user's stored answers, and a write in flight cannot bring one back.
    let kept = block_on(flowcp::store::store_entries::get(
        &fx.db,
        "srv1",
        &id,
        "list_live_flows",
        &flowcp::mcp::store::args_hash(&serde_json::json!({ "environmentName": "Default-1" })),
    ))
    .unwrap()
    .unwrap();
    assert!(block_on(key_users::revoke(&fx.db, "srv1", &id)).unwrap());
    assert_eq!(block_on(fx.db.query("SELECT * FROM store_entries", &[])).unwrap().len(), 0);
    assert!(!block_on(flowcp::store::store_entries::put(&fx.db, &kept)).unwrap());
    assert_eq!(block_on(fx.db.query("SELECT * FROM store_entries", &[])).unwrap().len(), 0);
    let _ = m;
}
