//! Issue 19's fault injection in the owner API: every write of every step of an owner's journey
//! (sign up to deleting the workspace) is made to fail in turn, in D1 and in KV. Each fault must
//! give a clear 5xx error that leaks nothing (no backend message, no secret), leave the
//! database exactly as it was before the request (nothing partial: a step's writes go through
//! one batch), and the same request, sent again once storage is healthy, must succeed.

use std::cell::Cell;

use flowcp::api::Response;
use serde_json::{json, Value};

use crate::api::{api_key_server, document, invite_and_accept, signed_up, Env};
use crate::support::{FaultyDb, FaultyKv};

const CREDENTIAL: &str = "sk_live_fault_do_not_leak";

/// Which write of a request fails (counted from 0); `Late`: the write is made, then reported
/// failed (a timeout after the commit).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    None,
    Db(usize),
    Kv(usize),
    DbLate(usize),
    KvLate(usize),
}

impl Fault {
    /// Each fault of a request that makes `db` and `kv` writes.
    fn all(db: usize, kv: usize) -> impl Iterator<Item = Fault> {
        (0..db)
            .flat_map(|k| [Fault::Db(k), Fault::DbLate(k)])
            .chain((0..kv).flat_map(|k| [Fault::Kv(k), Fault::KvLate(k)]))
    }

    fn stores<'a>(self, env: &'a Env) -> (FaultyDb<'a>, FaultyKv<'a>) {
        let (db, kv, late) = match self {
            Fault::None => (vec![], vec![], false),
            Fault::Db(k) => (vec![k], vec![], false),
            Fault::Kv(k) => (vec![], vec![k], false),
            Fault::DbLate(k) => (vec![k], vec![], true),
            Fault::KvLate(k) => (vec![], vec![k], true),
        };
        // The development outbox (mail) is spared: a mail that cannot be sent fails no request.
        (
            FaultyDb { late, ..FaultyDb::new(&env.db, &db) },
            FaultyKv { spare: "outbox:", late, ..FaultyKv::writes(&env.kv, &kv) },
        )
    }
}

/// What one request did: its answer and how many writes it made of each store.
struct Sent {
    resp: Response,
    db_writes: usize,
    kv_writes: usize,
}

/// The ids the journey makes, step by step.
#[derive(Default)]
struct Ids {
    ws: String,
    app: String,
    srv: String,
    key: String,
}

fn send(env: &Env, fault: Fault, method: &str, path: &str, body: Option<Value>) -> Sent {
    let (db, kv) = fault.stores(env);
    let resp = env.call_via(&db, &kv, method, path, body);
    Sent { resp, db_writes: db.calls.get(), kv_writes: kv.writes.get() }
}

fn p(ids: &Ids, rest: &str) -> String {
    format!("/api/v1/workspaces/{}{rest}", ids.ws)
}

fn id_of(s: &Sent) -> String {
    s.resp.body.as_ref().and_then(|b| b["id"].as_str()).unwrap_or_default().to_string()
}

/// One step of the journey: the one request that may fail, what a success answers, what else
/// sending it again may answer (the step was done before a later write failed), and the tables
/// a failed request may still have changed (its atomic write went through, a later one did not);
/// `"*"`: any, once the workspace's deletion tombstone is written (the sweep finishes it).
struct Step {
    what: &'static str,
    ok: u16,
    again: &'static [u16],
    may_change: &'static [&'static str],
    run: fn(&Env, &mut Ids, Fault) -> Sent,
}

const STEPS: &[Step] = &[
    Step {
        what: "sign up",
        ok: 201,
        // The account and workspace are one write; a failure after it (the session) leaves an
        // account to log in to.
        again: &[409],
        may_change: &["users", "workspaces", "memberships", "sessions", "login_throttle", "email_tokens"],
        run: |env, ids, f| {
            let body = json!({ "email": "f@example.com", "password": "a long enough password", "display_name": "F",
                "workspace_name": "W", "accept_terms": true, "accept_privacy": true });
            let s = send(env, f, "POST", "/api/v1/auth/signup", Some(body));
            if s.resp.status == 201 {
                ids.ws = s.resp.body.as_ref().unwrap()["workspace"]["id"].as_str().unwrap().to_string();
                if env.link_token("f@example.com", "/verify-email").is_some() {
                    env.verify_email("f@example.com");
                }
            }
            s
        },
    },
    Step {
        what: "create an app",
        ok: 201,
        again: &[],
        may_change: &[],
        run: |env, ids, f| {
            let s = send(env, f, "POST", &p(ids, "/apps"), Some(json!({ "name": "Keys" })));
            ids.app = id_of(&s);
            s
        },
    },
    Step {
        what: "import a document",
        ok: 201,
        again: &[],
        // The tools and the record are one write (an import too large for one batch writes its
        // tools first: `service::curation`, checked below).
        may_change: &[],
        run: |env, ids, f| send(env, f, "POST", &p(ids, &format!("/apps/{}/imports", ids.app)), Some(document())),
    },
    Step {
        what: "create a server",
        ok: 201,
        again: &[],
        may_change: &[],
        run: |env, ids, f| {
            let s = send(env, f, "POST", &p(ids, "/servers"), Some(json!({ "app_id": ids.app })));
            ids.srv = id_of(&s);
            s
        },
    },
    Step {
        what: "set its auth mode",
        ok: 200,
        again: &[],
        may_change: &[],
        run: |env, ids, f| {
            send(env, f, "PATCH", &p(ids, &format!("/servers/{}", ids.srv)), Some(json!({ "auth_mode": "api_key" })))
        },
    },
    Step {
        what: "set its credential",
        ok: 200,
        again: &[],
        may_change: &[],
        run: |env, ids, f| {
            let body = json!({ "value": CREDENTIAL, "origin": "https://api.example.com" });
            send(env, f, "PUT", &p(ids, &format!("/servers/{}/credential", ids.srv)), Some(body))
        },
    },
    Step {
        what: "verify",
        ok: 200,
        again: &[],
        may_change: &[],
        run: |env, ids, f| send(env, f, "POST", &p(ids, &format!("/servers/{}/verify", ids.srv)), None),
    },
    Step {
        what: "publish",
        ok: 200,
        again: &[],
        // Recorded, then the live pointer failed: the owner sees the version and an error.
        may_change: &["servers", "server_versions"],
        run: |env, ids, f| send(env, f, "POST", &p(ids, &format!("/servers/{}/publish", ids.srv)), None),
    },
    Step {
        what: "create an access key",
        ok: 201,
        again: &[],
        may_change: &[],
        run: |env, ids, f| {
            let s = send(env, f, "POST", &p(ids, &format!("/servers/{}/keys", ids.srv)), Some(json!({})));
            ids.key = id_of(&s);
            s
        },
    },
    Step {
        what: "revoke the key",
        ok: 204,
        again: &[],
        may_change: &[],
        run: |env, ids, f| send(env, f, "DELETE", &p(ids, &format!("/servers/{}/keys/{}", ids.srv, ids.key)), None),
    },
    Step {
        what: "publish again",
        ok: 200,
        again: &[],
        may_change: &["servers", "server_versions"],
        run: |env, ids, f| send(env, f, "POST", &p(ids, &format!("/servers/{}/publish", ids.srv)), None),
    },
    Step {
        what: "unpublish",
        ok: 200,
        again: &[],
        may_change: &[],
        run: |env, ids, f| send(env, f, "POST", &p(ids, &format!("/servers/{}/unpublish", ids.srv)), None),
    },
    Step {
        what: "delete the server",
        ok: 204,
        // A late fault: it was deleted, then reported failed.
        again: &[404],
        may_change: &[],
        run: |env, ids, f| send(env, f, "DELETE", &p(ids, &format!("/servers/{}", ids.srv)), None),
    },
    Step {
        what: "delete the app",
        ok: 204,
        again: &[404],
        may_change: &[],
        run: |env, ids, f| send(env, f, "DELETE", &p(ids, &format!("/apps/{}", ids.app)), None),
    },
    Step {
        what: "delete the workspace",
        ok: 204,
        again: &[404],
        may_change: &["*"],
        run: |env, ids, f| send(env, f, "DELETE", &p(ids, ""), None),
    },
];

/// A fresh world with the first `n` steps done, healthy.
fn world_after(n: usize) -> (Env, Ids) {
    let env = Env::new();
    let mut ids = Ids::default();
    for step in &STEPS[..n] {
        let s = (step.run)(&env, &mut ids, Fault::None);
        assert_eq!(s.resp.status, step.ok, "{}: {:?}", step.what, s.resp.body);
    }
    (env, ids)
}

fn rows(env: &Env, sql: &str) -> Vec<flowcp::store::Row> {
    flowcp::store::block_on(flowcp::store::Db::query(&env.db, sql, &[])).unwrap()
}

/// KV keys under `prefix` that do not expire by themselves, with their values.
fn kv_keys(env: &Env, prefix: &str) -> Vec<(String, Vec<u8>)> {
    let entries = env.kv.entries.borrow();
    entries
        .iter()
        .filter(|(k, (_, ttl))| k.starts_with(prefix) && ttl.is_none())
        .map(|(k, (v, _))| (k.clone(), v.clone()))
        .collect()
}

/// What must hold at every moment, whatever failed: no access key works that its owner cannot
/// see or has revoked; nothing is served that D1 does not record as published (D1 may be a
/// version ahead: recorded, then the live pointer failed); no workspace lacks an owner.
fn always(env: &Env) -> Vec<String> {
    let mut wrong = Vec::new();
    let live_keys: Vec<String> = rows(env, "SELECT key_hash FROM server_access_keys WHERE revoked_at IS NULL")
        .iter()
        .map(|r| r["key_hash"].as_str().unwrap_or_default().to_string())
        .collect();
    for (key, _) in kv_keys(env, "akey:") {
        if !live_keys.iter().any(|h| key.ends_with(h.as_str())) {
            wrong.push(format!("the access key {key} works but is revoked or unlisted"));
        }
    }
    for (key, value) in kv_keys(env, "manifest:") {
        let Some(srv) = key.strip_prefix("manifest:").and_then(|k| k.strip_suffix(":live")) else { continue };
        let version = String::from_utf8_lossy(&value).to_string();
        let recorded = rows(
            env,
            &format!(
                "SELECT s.published_version AS v FROM servers s JOIN server_versions r ON r.server_id = s.id \
                 WHERE s.id = '{srv}' AND r.version = {version} AND s.published_version >= {version}"
            ),
        );
        if recorded.is_empty() {
            wrong.push(format!("{srv} serves version {version}, which D1 does not record as published"));
        }
    }
    let ownerless = rows(
        env,
        "SELECT id FROM workspaces w WHERE NOT EXISTS (SELECT 1 FROM memberships m WHERE m.workspace_id = w.id \
         AND m.role = 'owner') AND NOT EXISTS (SELECT 1 FROM deleted_workspaces d WHERE d.id = w.id)",
    );
    if !ownerless.is_empty() {
        wrong.push(format!("workspaces without an owner: {ownerless:?}"));
    }
    wrong
}

/// What must hold once a step has succeeded: no stored document or draft credential that no
/// row names (nothing would ever delete it).
fn settled(env: &Env) -> Vec<String> {
    let mut wrong = Vec::new();
    let docs: Vec<String> = rows(env, "SELECT document_key FROM imports")
        .iter()
        .map(|r| r["document_key"].as_str().unwrap_or_default().to_string())
        .collect();
    for (key, _) in kv_keys(env, "doc:") {
        if !docs.contains(&key) {
            wrong.push(format!("the document {key} outlives its import"));
        }
    }
    let servers: Vec<String> =
        rows(env, "SELECT id FROM servers").iter().map(|r| r["id"].as_str().unwrap_or_default().to_string()).collect();
    for (key, _) in kv_keys(env, "cred:") {
        let srv = key.trim_start_matches("cred:").split(':').next().unwrap_or_default();
        if !servers.iter().any(|s| s == srv) {
            wrong.push(format!("the credential {key} outlives its server"));
        }
    }
    wrong
}

#[test]
fn every_write_of_the_owner_journey_can_fail_and_leaves_nothing_partial() {
    let tried = Cell::new(0);
    let mut failures = Vec::new();
    for (i, step) in STEPS.iter().enumerate() {
        let what = step.what;
        // How many writes the step makes when storage is healthy.
        let (env, mut ids) = world_after(i);
        let healthy = (step.run)(&env, &mut ids, Fault::None);
        assert_eq!(healthy.resp.status, step.ok, "{what}: {:?}", healthy.resp.body);
        for fault in Fault::all(healthy.db_writes, healthy.kv_writes) {
            tried.set(tried.get() + 1);
            let (env, mut ids) = world_after(i);
            let db_before = env.db.dump();
            let s = (step.run)(&env, &mut ids, fault);
            let body = s.resp.body.clone().unwrap_or(Value::Null);
            let text = body.to_string();
            let mut wrong = Vec::new();
            let failed = s.resp.status != step.ok;
            if failed
                && (!(500..=503).contains(&s.resp.status)
                    || body["error"]["message"].as_str().is_none_or(str::is_empty))
            {
                wrong.push(format!("answered {} {text}", s.resp.status));
            }
            for leak in ["injected", "D1_ERROR", "KV PUT", CREDENTIAL] {
                if text.contains(leak) {
                    wrong.push(format!("the answer shows `{leak}`: {text}"));
                }
            }
            // A failed request changed only what its step allows (its atomic write went through).
            let db_after = env.db.dump();
            // The account, its first workspace and the owner's membership are one write.
            let changed = |t: &str| db_before.get(t) != db_after.get(t);
            if i == 0 && (changed("users") != changed("workspaces") || changed("users") != changed("memberships")) {
                wrong.push("an account was written without its workspace, or the other way round".into());
            }
            // (A late fault's write went through, so only the invariants and the resend judge it.)
            let late = matches!(fault, Fault::DbLate(_) | Fault::KvLate(_));
            if failed && !late {
                let tombstoned = db_after.get("deleted_workspaces").is_some_and(|r| !r.is_empty());
                for (table, rows) in &db_after {
                    let allowed = step.may_change.contains(&table.as_str()) || (step.may_change == ["*"] && tombstoned);
                    if db_before.get(table) != Some(rows) && !allowed {
                        wrong.push(format!("left table {table} changed: {:?} -> {rows:?}", db_before.get(table)));
                    }
                }
            }
            wrong.extend(always(&env));
            // Storage is back: the same request succeeds (or finds its work done), and nothing
            // is left that no row names.
            let again = (step.run)(&env, &mut ids, Fault::None);
            if again.resp.status != step.ok && !step.again.contains(&again.resp.status) {
                wrong.push(format!("sent again: {} {:?}", again.resp.status, again.resp.body));
            }
            wrong.extend(always(&env).into_iter().map(|w| format!("after sending again: {w}")));
            wrong.extend(settled(&env).into_iter().map(|w| format!("after sending again: {w}")));
            failures.extend(wrong.into_iter().map(|w| format!("{what}, {fault:?}: {w}")));
        }
    }
    assert!(failures.is_empty(), "{} faults went wrong of {}:\n{}", failures.len(), tried.get(), failures.join("\n"));
    assert!(tried.get() > 60, "only {} faults were injected", tried.get());
}

/// A failed import records nothing and leaves the app's tools as the retry needs them: sending
/// it again yields exactly the tools of a healthy import. (An import too large for one batch
/// writes its tools in batches before its record; the same holds for it, by the same merge.)
#[test]
fn a_failed_import_is_finished_by_sending_it_again() {
    let (healthy, mut ids) = world_after(2);
    (STEPS[2].run)(&healthy, &mut ids, Fault::None);
    let tools = |env: &Env| rows(env, "SELECT operation_key, name, enabled FROM tools ORDER BY operation_key");
    let imports = |env: &Env| rows(env, "SELECT COUNT(*) AS n FROM imports")[0]["n"].clone();
    let writes = {
        let (env, mut ids) = world_after(2);
        (STEPS[2].run)(&env, &mut ids, Fault::None).db_writes
    };
    assert!(writes >= 2, "an import writes its tools and its record");
    for fault in (0..writes).map(Fault::Db) {
        let k = fault;
        let (env_k, mut ids_k) = world_after(2);
        let s = (STEPS[2].run)(&env_k, &mut ids_k, fault);
        assert!((500..=503).contains(&s.resp.status), "{k:?}: {} {:?}", s.resp.status, s.resp.body);
        assert_eq!(imports(&env_k), json!(0), "{k:?}: a failed import is recorded");
        assert_eq!((STEPS[2].run)(&env_k, &mut ids_k, Fault::None).resp.status, 201, "{k:?}, sent again");
        assert_eq!(tools(&env_k), tools(&healthy), "{k:?}: the tools after sending again");
        assert_eq!(imports(&env_k), json!(1));
    }
}

/// A departing member's access keys stop working whatever write fails: removing them, or their
/// deleting their account, takes the keys' KV mirrors first, so a failure leaves keys refused
/// (and still listed) and the same request sent again finishes.
#[test]
fn a_departing_members_keys_never_keep_working_after_a_failed_write() {
    for how in ["remove", "delete_account"] {
        let set_up = || {
            let env = Env::new();
            let ws = signed_up(&env, "owner@example.com");
            let (_, srv) = api_key_server(&env, &ws);
            let owner = env.session();
            signed_up(&env, "admin@example.com");
            let admin = env.session();
            invite_and_accept(&env, &ws, &owner, &admin, "admin@example.com", "admin");
            let p = format!("/api/v1/workspaces/{ws}/servers/{srv}/keys");
            let made = env.call_as("POST", &p, admin.0.as_deref(), admin.1.as_deref(), Some(json!({})));
            assert_eq!(made.status, 201, "{:?}", made.body);
            let admin_id = rows(&env, "SELECT id FROM users WHERE email = 'admin@example.com'")[0]["id"].clone();
            (env, ws, owner, admin, admin_id.as_str().unwrap_or_default().to_string())
        };
        let depart = |env: &Env,
                      ws: &str,
                      owner: &(Option<String>, Option<String>),
                      admin: &(Option<String>, Option<String>),
                      id: &str,
                      fault: Fault| {
            let (db, kv) = fault.stores(env);
            let r = match how {
                "remove" => env.call_as_via(
                    &db,
                    &kv,
                    "DELETE",
                    &format!("/api/v1/workspaces/{ws}/members/{id}"),
                    (owner.0.as_deref(), owner.1.as_deref()),
                    None,
                ),
                _ => env.call_as_via(
                    &db,
                    &kv,
                    "DELETE",
                    "/api/v1/me",
                    (admin.0.as_deref(), admin.1.as_deref()),
                    Some(json!({ "password": "a long enough password" })),
                ),
            };
            (r.status, db.calls.get(), kv.writes.get())
        };
        let (env, ws, owner, admin, id) = set_up();
        let (status, db_writes, kv_writes) = depart(&env, &ws, &owner, &admin, &id, Fault::None);
        assert_eq!(status, 204, "{how}");
        assert!(kv_writes >= 1, "{how}: the key's mirror is deleted");
        for fault in Fault::all(db_writes, kv_writes) {
            let (env, ws, owner, admin, id) = set_up();
            let (status, _, _) = depart(&env, &ws, &owner, &admin, &id, fault);
            assert!(status == 204 || (500..=503).contains(&status), "{how}, {fault:?}: {status}");
            assert_eq!(always(&env), Vec::<String>::new(), "{how}, {fault:?}");
            let (again, _, _) = depart(&env, &ws, &owner, &admin, &id, Fault::None);
            assert!(matches!(again, 204 | 401 | 404), "{how}, {fault:?}: sent again: {again}");
            assert!(kv_keys(&env, "akey:").is_empty(), "{how}, {fault:?}: the admin's key still works");
            assert_eq!(always(&env), Vec::<String>::new(), "{how}, {fault:?}, sent again");
        }
    }
}

/// A row D1 hands back corrupt (a JSON column that is no JSON, a number column holding text):
/// the owner API answers a clean error or carries on, never panics, never shows the stored bytes
/// or a backend message, and another workspace's requests are untouched.
#[test]
fn corrupt_rows_give_clean_errors_and_stay_in_their_workspace() {
    let corruptions = [
        ("servers", "auth_config_json", "'{not json'"),
        ("servers", "verification_json", "'[1,'"),
        ("servers", "allowed_origins_json", "'nope'"),
        ("servers", "skills_json", "'{\"a\":'"),
        ("servers", "published_version", "'seven'"),
        ("tools", "def_json", "'{\"name\": 1'"),
        ("tools", "tags_json", "'tags'"),
        ("imports", "report_json", "'{'"),
        ("imports", "commit_json", "'['"),
        ("apps", "current_import_id", "'imp_missing'"),
    ];
    for (table, column, garbage) in corruptions {
        let env = Env::new();
        let other = signed_up(&env, "other@example.com");
        let (other_app, other_srv) = api_key_server(&env, &other);
        let other_session = env.session();
        let ws = signed_up(&env, "owner@example.com");
        let (app, srv) = api_key_server(&env, &ws);
        let mine = env.session();
        let sql = format!("UPDATE {table} SET {column} = {garbage} WHERE workspace_id = '{ws}'");
        flowcp::store::block_on(flowcp::store::Db::execute(&env.db, &sql, &[])).unwrap();
        let paths = |ws: &str, app: &str, srv: &str| {
            [
                ("GET", format!("/api/v1/workspaces/{ws}/apps")),
                ("GET", format!("/api/v1/workspaces/{ws}/apps/{app}")),
                ("GET", format!("/api/v1/workspaces/{ws}/apps/{app}/tools")),
                ("GET", format!("/api/v1/workspaces/{ws}/apps/{app}/imports")),
                ("GET", format!("/api/v1/workspaces/{ws}/servers")),
                ("GET", format!("/api/v1/workspaces/{ws}/servers/{srv}")),
                ("POST", format!("/api/v1/workspaces/{ws}/servers/{srv}/verify")),
                ("POST", format!("/api/v1/workspaces/{ws}/servers/{srv}/publish")),
                ("GET", format!("/api/v1/workspaces/{ws}/servers/{srv}/versions")),
            ]
        };
        for (method, path) in paths(&ws, &app, &srv) {
            let r = env.call_as(method, &path, mine.0.as_deref(), mine.1.as_deref(), None);
            let text = r.body.as_ref().map(Value::to_string).unwrap_or_default();
            let clean = r.status < 500
                || (r.status == 500 && r.body.as_ref().is_some_and(|b| b["error"]["code"] == "internal"));
            assert!(clean, "{table}.{column}: {method} {path}: {} {text}", r.status);
            // Garbage from a JSON column is not echoed (a dangling id is shown as the id it is).
            let stored = garbage.trim_matches('\'');
            let echoed = column.ends_with("_json") && stored.len() >= 5 && text.contains(stored);
            assert!(!echoed, "{table}.{column}: {path} shows the stored bytes: {text}");
            assert!(!text.contains("SQLITE") && !text.contains("serde"), "{table}.{column}: {path}: {text}");
        }
        for (method, path) in paths(&other, &other_app, &other_srv) {
            let r = env.call_as(method, &path, other_session.0.as_deref(), other_session.1.as_deref(), None);
            assert!(
                r.status < 400 || path.ends_with("/publish"),
                "{table}.{column}: another workspace's {path}: {} {:?}",
                r.status,
                r.body
            );
        }
    }
}
