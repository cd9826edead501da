//! Plans and quotas through the owner API (issue 16): the servers and tools a plan allows, the
//! plan view, the operator's plan changes and their bad input, and what a deleted workspace
//! leaves for the retention job. The hot-path quota is tested in `mcp.rs`.

use flowcp::api::workspaces::set_plan;
use flowcp::store::{block_on, Db};
use flowcp::vocab::Plan;
use serde_json::{json, Value};

use crate::api::{api_key_server, signed_up, Env};

fn set(env: &Env, ws: &str, body: Value) -> Result<Option<Value>, (u16, String)> {
    let bytes = serde_json::to_vec(&body).unwrap();
    block_on(set_plan(&env.db, ws, &bytes, env.default_plan.get(), env.now.get()))
        .map(|v| v.map(|v| serde_json::to_value(v).unwrap()))
        .map_err(|e| (e.status, e.body()["error"]["message"].as_str().unwrap_or("").to_string()))
}

#[test]
fn a_plan_limits_servers_and_enabled_tools_and_the_owner_sees_it() {
    let env = Env::new();
    env.default_plan.set(Some(Plan::Free));
    let ws = signed_up(&env, "plans@example.com");
    let p = |s: &str| format!("/api/v1/workspaces/{ws}{s}");
    let view = env.call("GET", &p("/plan"), None).body.unwrap();
    assert_eq!((view["plan"].as_str(), view["default"].as_bool()), (Some("free"), Some(true)), "{view}");
    assert_eq!(view["limits"]["servers"], 3);
    assert_eq!(view["servers"], 0);
    assert_eq!(view["resets_on"].as_str().unwrap().len(), 10);

    // The operator's contract: one server, no tools.
    let v =
        set(&env, &ws, json!({ "plan": "pro", "limits": { "servers": 1, "tools_per_server": 0 } })).unwrap().unwrap();
    assert_eq!(
        (v["plan"].as_str(), v["default"].as_bool(), v["limits"]["servers"].as_i64()),
        (Some("pro"), Some(false), Some(1))
    );
    let (app, srv) = api_key_server(&env, &ws);
    let second = env.call("POST", &p("/servers"), Some(json!({ "app_id": app })));
    assert_eq!(second.status, 403, "{:?}", second.body);
    let body = second.body.unwrap();
    assert_eq!(body["error"]["code"], "plan_limit");
    assert!(body["error"]["message"].as_str().unwrap().contains("allows 1 servers"), "{body}");

    let put = env.call(
        "PUT",
        &p(&format!("/servers/{srv}/credential")),
        Some(json!({ "value": "a-credential-value", "origin": "https://api.example.com" })),
    );
    assert_eq!(put.status, 200, "{:?}", put.body);
    let verified = env.call("POST", &p(&format!("/servers/{srv}/verify")), None);
    assert_eq!(verified.body.as_ref().unwrap()["state"], "verified", "{:?}", verified.body);
    let refused = env.call("POST", &p(&format!("/servers/{srv}/publish")), None);
    assert_eq!(refused.status, 403, "{:?}", refused.body);
    let msg = refused.body.unwrap()["error"]["message"].as_str().unwrap().to_string();
    assert!(msg.contains("allows 0 enabled tools per server and this server enables 1"), "{msg}");
    assert!(env.kv.entries.borrow().keys().all(|k| !k.starts_with("manifest:")), "nothing was published");

    set(&env, &ws, json!({ "plan": "pro", "limits": { "servers": 1 } })).unwrap();
    let published = env.call("POST", &p(&format!("/servers/{srv}/publish")), None);
    assert_eq!(published.status, 200, "{:?}", published.body);

    // This month's calls per server, from the counters.
    let month = flowcp::plans::month_of(env.now.get());
    block_on(env.db.execute(
        "INSERT INTO usage_counters (server_id, subject, month, workspace_id, calls) VALUES (?1, '', ?2, ?3, 7)",
        &[srv.as_str().into(), month.as_str().into(), ws.as_str().into()],
    ))
    .unwrap();
    let view = env.call("GET", &p("/plan"), None).body.unwrap();
    assert_eq!(view["usage"], json!([{ "server_id": srv, "calls": 7 }]));
    assert_eq!(view["servers"], 1);

    // Back to the deployment's default; with none, unmetered.
    set(&env, &ws, json!({ "plan": null })).unwrap();
    env.default_plan.set(None);
    let view = env.call("GET", &p("/plan"), None).body.unwrap();
    assert_eq!((view["plan"].clone(), view["limits"].clone()), (Value::Null, Value::Null));
    assert_eq!(env.call("POST", &p("/servers"), Some(json!({ "app_id": app }))).status, 201);

    // Another account's workspace id answers 404.
    let other = signed_up(&env, "plans-other@example.com");
    assert_eq!(env.call("GET", &format!("/api/v1/workspaces/{ws}/plan"), None).status, 404, "{other}");
}

#[test]
fn the_operators_plan_change_refuses_bad_input_and_changes_nothing() {
    let env = Env::new();
    let ws = signed_up(&env, "plans-ops@example.com");
    set(&env, &ws, json!({ "plan": "team" })).unwrap();
    for (body, needle) in [
        (json!({ "plan": "gold" }), "plan must be"),
        (json!({ "plan": null, "limits": { "servers": 5 } }), "need a plan"),
        (json!({ "plan": "free", "limits": { "servers": -1 } }), "limits.servers"),
        (json!({ "plan": "free", "limits": { "calls": 5 } }), "not valid"),
        (json!({ "plan": "free", "extra": 1 }), "not valid"),
        (json!([1]), "not valid"),
    ] {
        let (status, message) = set(&env, &ws, body.clone()).unwrap_err();
        assert_eq!(status / 100, 4, "{body}");
        assert!(message.contains(needle), "{body}: {message}");
    }
    let stored = block_on(flowcp::store::usage::plan_of(&env.db, &ws)).unwrap().unwrap();
    assert_eq!(stored, (Some(Plan::Team), None), "a refused change changes nothing");
    assert_eq!(set(&env, "ws_missing", json!({ "plan": "free" })), Ok(None));
}

#[test]
fn a_deleted_workspaces_late_audit_rows_and_counters_go_at_the_next_retention_run() {
    let env = Env::new();
    let keep = signed_up(&env, "plans-keep@example.com");
    let ws = signed_up(&env, "plans-delete@example.com");
    let event = |ws: &str| flowcp::store::audit::AuditEvent {
        id: flowcp::store::audit::event_id(0),
        ts_ms: env.now.get(),
        workspace_id: ws.to_string(),
        server_id: format!("srv_of_{ws}"),
        tool_name: "t".into(),
        outcome: flowcp::store::audit::Outcome::Ok,
        upstream_status: Some(200),
        latency_ms: 1,
        request_bytes: 0,
        response_bytes: 0,
        connection_hash: Some("c1".into()),
        target: None,
        plan: Some(Plan::Free),
        metered: true,
    };
    let flush = |events: &[flowcp::store::audit::AuditEvent]| {
        block_on(flowcp::store::audit::insert_many(&env.db, events)).unwrap();
    };
    flush(&[event(&ws), event(&keep)]);
    assert_eq!(env.call("DELETE", &format!("/api/v1/workspaces/{ws}"), None).status, 204);
    let count = |sql: &str| block_on(env.db.query(sql, &[])).unwrap()[0]["n"].as_i64().unwrap();
    assert_eq!(count(&format!("SELECT COUNT(*) AS n FROM usage_counters WHERE workspace_id = '{ws}'")), 0);
    // A late delivery for the deleted workspace is not written, nor counted.
    flush(&[event(&ws)]);
    assert_eq!(count(&format!("SELECT COUNT(*) AS n FROM audit_events WHERE workspace_id = '{ws}'")), 0);
    // One that raced the deletion (inserted between its deletes and the workspace row's) is
    // swept by the retention job.
    block_on(env.db.execute(
        "INSERT INTO audit_events (ts, workspace_id, server_id, tool_name, outcome, latency_ms, request_bytes, \
         response_bytes, metered) VALUES (?1, ?2, 'srv', 't', 'ok', 1, 0, 0, 1)",
        &[env.now.get().into(), ws.as_str().into()],
    ))
    .unwrap();
    let report = block_on(flowcp::jobs::retention::run(&env.db, env.now.get(), Default::default())).unwrap();
    assert_eq!(report.deleted_workspace_rows, 1);
    assert_eq!(count(&format!("SELECT COUNT(*) AS n FROM audit_events WHERE workspace_id = '{ws}'")), 0);
    assert_eq!(count(&format!("SELECT COUNT(*) AS n FROM usage_counters WHERE workspace_id = '{ws}'")), 0);
    assert_eq!(
        count(&format!("SELECT COUNT(*) AS n FROM audit_events WHERE workspace_id = '{keep}'")),
        1,
        "others keep theirs"
    );
    assert_eq!(count(&format!("SELECT COUNT(*) AS n FROM usage_counters WHERE workspace_id = '{keep}'")), 2);
    // The tombstone goes after a day.
    block_on(flowcp::jobs::retention::run(&env.db, env.now.get() + 2 * 86_400_000, Default::default())).unwrap();
    assert_eq!(count("SELECT COUNT(*) AS n FROM deleted_workspaces"), 0);
    // Counters of months before the previous one go.
    let report =
        block_on(flowcp::jobs::retention::run(&env.db, env.now.get() + 70 * 86_400_000, Default::default())).unwrap();
    assert_eq!(report.usage_counters_deleted, 2);
}

/// Issue 19: the counters come from the rows actually inserted (migration 0015's trigger): per
/// server and per caller, per UTC month of the event ([`flowcp::plans::month_of`]), only for
/// metered events under a plan, and a redelivered event (same id) counts nothing.
#[test]
fn inserted_metered_events_count_per_server_caller_and_month_and_redeliveries_do_not() {
    let env = Env::new();
    let ws = signed_up(&env, "plans-trigger@example.com");
    let e = |id: &str, ts: i64, conn: Option<&str>, metered: bool| flowcp::store::audit::AuditEvent {
        id: id.into(),
        ts_ms: ts,
        workspace_id: ws.clone(),
        server_id: "srv".into(),
        tool_name: "t".into(),
        outcome: flowcp::store::audit::Outcome::Ok,
        upstream_status: Some(200),
        latency_ms: 1,
        request_bytes: 0,
        response_bytes: 0,
        connection_hash: conn.map(str::to_string),
        target: None,
        plan: Some(Plan::Free),
        metered,
    };
    let dec = 1_796_083_200_000; // 2026-12-01
    let events = [
        e("e1", dec, Some("a"), true),
        e("e2", dec + 1, Some("a"), true),
        e("e3", dec + 2, Some("b"), true),
        e("e4", dec + 3, None, true),
        e("e5", dec + 4, Some("a"), false),
        e("e6", dec - 1, Some("a"), true),
        // An unmetered workspace's calls are not counted.
        flowcp::store::audit::AuditEvent { plan: None, ..e("e7", dec, Some("a"), true) },
    ];
    block_on(flowcp::store::audit::insert_many(&env.db, &events)).unwrap();
    // Redelivered: the whole batch again, and a single event twice within one batch.
    block_on(flowcp::store::audit::insert_many(&env.db, &events)).unwrap();
    block_on(flowcp::store::audit::insert_many(&env.db, &[events[0].clone(), events[0].clone()])).unwrap();
    let rows = block_on(env.db.query(
        "SELECT subject, month, calls FROM usage_counters WHERE server_id = 'srv' ORDER BY month DESC, subject",
        &[],
    ))
    .unwrap();
    let summary: Vec<(String, String, i64)> = rows
        .iter()
        .map(|r| {
            (r["subject"].as_str().unwrap().into(), r["month"].as_str().unwrap().into(), r["calls"].as_i64().unwrap())
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (String::new(), "2026-12".into(), 4),
            ("a".into(), "2026-12".into(), 2),
            ("b".into(), "2026-12".into(), 1),
            (String::new(), "2026-11".into(), 1),
            ("a".into(), "2026-11".into(), 1),
        ]
    );
    assert_eq!(flowcp::plans::month_of(dec), "2026-12");
    assert_eq!(flowcp::plans::month_of(dec - 1), "2026-11", "the trigger's month is the Rust one");
    let n = block_on(env.db.query("SELECT COUNT(*) AS n FROM audit_events WHERE server_id = 'srv'", &[])).unwrap();
    assert_eq!(n[0]["n"], 7, "one row per event id");
}

/// Review findings: a deleted server's calls still count toward its workspace's monthly total
/// (deleting and recreating a server does not start the quota over); the owner's "try it" runs
/// count and are refused past the quota; a plan change must name the plan.
#[test]
fn recreating_a_server_or_trying_tools_does_not_get_around_the_quota() {
    let env = Env::new();
    let ws = signed_up(&env, "plans-recreate@example.com");
    set(&env, &ws, json!({ "plan": "free", "limits": { "calls_per_workspace_month": 2, "servers": 5 } })).unwrap();
    let p = |s: &str| format!("/api/v1/workspaces/{ws}{s}");
    let (app, srv) = api_key_server(&env, &ws);
    let put = env.call(
        "PUT",
        &p(&format!("/servers/{srv}/credential")),
        Some(json!({ "value": "a-credential-value", "origin": "https://api.example.com" })),
    );
    assert_eq!(put.status, 200, "{:?}", put.body);
    let try_it = |srv: &str| {
        env.call("POST", &p(&format!("/servers/{srv}/try")), Some(json!({ "tool": "listThings", "run": true })))
    };
    assert_eq!(try_it(&srv).status, 200);
    assert_eq!(try_it(&srv).status, 200);
    let over = try_it(&srv);
    assert_eq!(over.status, 403, "{:?}", over.body);
    assert!(over.body.unwrap()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("workspace may make 2 calls a month in all"));
    assert_eq!(env.http.seen.borrow().len(), 2, "the refused run never left");
    assert_eq!(env.call("DELETE", &p(&format!("/servers/{srv}")), None).status, 204);
    let again = env.call("POST", &p("/servers"), Some(json!({ "app_id": app }))).body.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(again, srv);
    let clock = || 1_790_000_000_000i64;
    let cache = flowcp::plans::QuotaCache::default();
    let gate = flowcp::plans::Gate {
        db: &env.db,
        default_plan: None,
        clock: &clock,
        cache: &cache,
        failure: Default::default(),
    };
    let refused = block_on(gate.reserve_for(&ws, &again, Some("c1"))).unwrap_err();
    assert!(refused.message.contains("in all"), "{}", refused.message);
    // A plan change must name the plan (an empty body is not "back to the default").
    let (status, message) = set(&env, &ws, json!({})).unwrap_err();
    assert_eq!((status, message.contains("plan is required")), (400, true), "{message}");
}

/// A tombstone of a workspace that still exists (its deletion failed half-way) deletes nothing.
#[test]
fn the_sweep_spares_a_workspace_that_still_exists() {
    let env = Env::new();
    let ws = signed_up(&env, "plans-tombstone@example.com");
    let e = flowcp::store::audit::AuditEvent {
        id: flowcp::store::audit::event_id(0),
        ts_ms: env.now.get(),
        workspace_id: ws.clone(),
        server_id: "srv_live".into(),
        tool_name: "t".into(),
        outcome: flowcp::store::audit::Outcome::Ok,
        upstream_status: Some(200),
        latency_ms: 1,
        request_bytes: 0,
        response_bytes: 0,
        connection_hash: None,
        target: None,
        plan: Some(Plan::Free),
        metered: true,
    };
    block_on(flowcp::store::audit::insert_many(&env.db, std::slice::from_ref(&e))).unwrap();
    block_on(env.db.execute(
        "INSERT INTO deleted_workspaces (id, deleted_at) VALUES (?1, ?2)",
        &[ws.as_str().into(), env.now.get().into()],
    ))
    .unwrap();
    let report = block_on(flowcp::jobs::retention::run(&env.db, env.now.get(), Default::default())).unwrap();
    assert_eq!(report.deleted_workspace_rows, 0);
    let n = |t: &str| {
        block_on(env.db.query(&format!("SELECT COUNT(*) AS n FROM {t}"), &[])).unwrap()[0]["n"].as_i64().unwrap()
    };
    assert_eq!((n("audit_events"), n("usage_counters")), (1, 1));
}

/// The Power Automate template makes an app and a draft `user_key` server in one step, or
/// nothing: a bad choice or a plan limit leaves no app behind.
#[test]
fn a_template_makes_the_app_and_server_or_nothing() {
    let env = Env::new();
    let ws = signed_up(&env, "plans-template@example.com");
    let p = |s: &str| format!("/api/v1/workspaces/{ws}{s}");
    let apps = || env.call("GET", &p("/apps"), None).body.unwrap()["items"].as_array().unwrap().len();
    let bad = env.call("POST", &p("/templates/power-automate"), Some(json!({ "tenant": "x/../evil" })));
    assert_eq!(bad.status, 422, "{:?}", bad.body);
    assert_eq!(apps(), 0, "the failed template's app was deleted again");
    assert_eq!(env.call("POST", &p("/templates/nope"), Some(json!({}))).status, 404);
    let made = env.call("POST", &p("/templates/power-automate"), Some(json!({ "client_id": "entra-app" })));
    assert_eq!(made.status, 201, "{:?}", made.body);
    let made = made.body.unwrap();
    assert_eq!(made["tools"], 12);
    let s = &made["server"];
    assert_eq!((s["auth_mode"].as_str(), s["usage_target"].as_str()), (Some("user_key"), Some("environmentName")));
    assert_eq!(s["auth_config"]["client_id"], "entra-app");
    assert_eq!(s["auth_config"]["token_url"], "https://login.microsoftonline.com/organizations/oauth2/v2.0/token");
    assert_eq!(s["skills"]["bundles"].as_array().unwrap().len(), 4);
    assert_eq!(apps(), 1);
    // A plan without room for another server: refused, and nothing is left.
    set(&env, &ws, json!({ "plan": "free", "limits": { "servers": 1 } })).unwrap();
    let over = env.call("POST", &p("/templates/power-automate"), Some(json!({})));
    assert_eq!(over.status, 403, "{:?}", over.body);
    assert_eq!(apps(), 1);
}

/// Synced tools: bad names and too many are refused when set, and a server that is not
/// `user_key` cannot publish them; nothing is published.
#[test]
fn store_tools_are_refused_where_they_cannot_work() {
    let env = Env::new();
    let ws = signed_up(&env, "plans-store@example.com");
    let p = |s: &str| format!("/api/v1/workspaces/{ws}{s}");
    let (_, srv) = api_key_server(&env, &ws);
    let patch = |body: Value| env.call("PATCH", &p(&format!("/servers/{srv}")), Some(body));
    let many: Vec<String> = (0..21).map(|i| format!("tool{i}")).collect();
    assert_eq!(patch(json!({ "store_tools": many })).status, 400);
    assert_eq!(patch(json!({ "store_tools": ["not a name"] })).status, 400);
    assert_eq!(patch(json!({ "store_tools": ["listThings"] })).status, 200);
    let put = env.call(
        "PUT",
        &p(&format!("/servers/{srv}/credential")),
        Some(json!({ "value": "a-credential-value", "origin": "https://api.example.com" })),
    );
    assert_eq!(put.status, 200, "{:?}", put.body);
    assert_eq!(env.call("POST", &p(&format!("/servers/{srv}/verify")), None).body.unwrap()["state"], "verified");
    let refused = env.call("POST", &p(&format!("/servers/{srv}/publish")), None);
    assert_eq!(refused.status, 400, "{:?}", refused.body);
    assert!(refused.body.unwrap()["error"]["message"].as_str().unwrap().contains("user_key"));
    assert!(env.kv.entries.borrow().keys().all(|k| !k.starts_with("manifest:")), "nothing was published");
}
