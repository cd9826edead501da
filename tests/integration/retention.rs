//! Audit retention against real SQLite with the real schema (DESIGN §8: 30 days).

use flowcp::jobs::retention::{self, RetentionPolicy, DAY_MS};
use flowcp::store::audit::{self, AuditEvent, Outcome};
use flowcp::store::{block_on, Db};

use crate::support::SqliteDb;

const NOW: i64 = 1_790_000_000_000;

fn event(ts_ms: i64, tool: &str) -> AuditEvent {
    AuditEvent {
        id: flowcp::store::audit::event_id(ts_ms),
        ts_ms,
        workspace_id: "ws_1".into(),
        server_id: "srv_1".into(),
        tool_name: tool.into(),
        outcome: Outcome::Ok,
        upstream_status: Some(200),
        latency_ms: 12,
        request_bytes: 10,
        response_bytes: 20,
        connection_hash: Some("abcd".into()),
        target: None,
        plan: None,
        metered: true,
    }
}

/// The workspace `event` writes for, with the default retention (30 days).
fn with_workspace(db: &SqliteDb) {
    block_on(db.execute("INSERT INTO workspaces (id, name, created_at) VALUES ('ws_1', 'W', 0)", &[])).unwrap();
}

fn tool_names(db: &SqliteDb) -> Vec<String> {
    let rows = block_on(db.query("SELECT tool_name FROM audit_events ORDER BY ts", &[])).unwrap();
    rows.iter().map(|r| r["tool_name"].as_str().unwrap().to_string()).collect()
}

#[test]
fn rows_older_than_30_days_are_deleted_and_recent_rows_kept() {
    let db = SqliteDb::migrated();
    with_workspace(&db);
    block_on(async {
        audit::insert(&db, &event(NOW - 31 * DAY_MS, "old")).await.unwrap();
        audit::insert(&db, &event(NOW - 30 * DAY_MS - 1, "just_old")).await.unwrap();
        audit::insert(&db, &event(NOW - 30 * DAY_MS, "boundary")).await.unwrap();
        audit::insert(&db, &event(NOW - DAY_MS, "recent")).await.unwrap();
        audit::insert(&db, &event(NOW, "now")).await.unwrap();
    });
    let report = block_on(retention::run(&db, NOW, RetentionPolicy::default())).unwrap();
    assert_eq!(report.deleted, 2);
    assert!(report.complete);
    assert_eq!(report.cutoff_ms, NOW - 30 * DAY_MS);
    assert_eq!(tool_names(&db), ["boundary", "recent", "now"]);
}

#[test]
fn deletion_happens_in_bounded_batches_and_resumes() {
    let db = SqliteDb::migrated();
    with_workspace(&db);
    block_on(async {
        for i in 0..25 {
            audit::insert(&db, &event(NOW - 40 * DAY_MS + i, "old")).await.unwrap();
        }
        audit::insert(&db, &event(NOW, "keep")).await.unwrap();
    });
    // One batch past the longest retention (nothing), then the workspace's own.
    let policy = RetentionPolicy { retain_days: 30, batch_size: 10, max_batches: 3 };
    let first = block_on(retention::run(&db, NOW, policy)).unwrap();
    assert_eq!((first.deleted, first.batches, first.complete), (20, 3, false));
    let second = block_on(retention::run(&db, NOW, policy)).unwrap();
    assert_eq!((second.deleted, second.batches, second.complete), (5, 2, true));
    assert_eq!(tool_names(&db), ["keep"]);
}

#[test]
fn empty_table_is_a_complete_noop() {
    let db = SqliteDb::migrated();
    let report = block_on(retention::run(&db, NOW, RetentionPolicy::default())).unwrap();
    assert_eq!((report.deleted, report.batches, report.complete), (0, 2, true));
    assert_eq!(block_on(audit::count(&db)).unwrap(), 0);
}

#[test]
fn audit_outcome_outside_the_schema_is_refused_by_sqlite() {
    // The CHECK constraint is part of the contract: a bad outcome never lands.
    let db = SqliteDb::migrated();
    let insert = |outcome: &str| {
        block_on(db.execute(
            &format!("INSERT INTO audit_events (ts, workspace_id, server_id, tool_name, outcome, latency_ms, request_bytes, response_bytes) VALUES (1,'w','s','t','{outcome}',1,1,1)"),
            &[],
        ))
    };
    let err = insert("bogus").unwrap_err();
    assert!(err.to_string().contains("CHECK constraint failed"), "{err}");
    assert_eq!(insert("ok").unwrap(), 1, "control: a schema outcome lands");
}

#[test]
fn insert_many_writes_every_event_in_multi_row_statements() {
    let db = SqliteDb::migrated();
    with_workspace(&db);
    let events: Vec<AuditEvent> = (0..25).map(|i| event(NOW + i, &format!("t{i:02}"))).collect();
    block_on(audit::insert_many(&db, &events)).unwrap();
    assert_eq!(block_on(audit::count(&db)).unwrap(), 25);
    let names = tool_names(&db);
    assert_eq!(names.first().map(String::as_str), Some("t00"));
    assert_eq!(names.last().map(String::as_str), Some("t24"));
    block_on(audit::insert_many(&db, &[])).unwrap();
    assert_eq!(block_on(audit::count(&db)).unwrap(), 25);
}

// ---- Security review 2026-11 (issue 11): F5 and F11 ----

/// F5: the 30-day promise holds at volume — 100,000 rows older than 30 days are all gone after
/// one run of the default policy (hourly cron), and recent rows stay.
#[test]
fn retention_keeps_the_30_day_promise_at_100k_rows_per_run() {
    let db = SqliteDb::migrated();
    with_workspace(&db);
    let old: Vec<AuditEvent> = (0..100_000).map(|i| event(NOW - 31 * DAY_MS - i, "old")).collect();
    block_on(async {
        audit::insert_many(&db, &old).await.unwrap();
        audit::insert(&db, &event(NOW - DAY_MS, "recent")).await.unwrap();
    });
    let report = block_on(retention::run(&db, NOW, RetentionPolicy::default())).unwrap();
    assert!(report.complete, "{report:?}");
    assert_eq!(report.deleted, 100_000);
    assert_eq!(tool_names(&db), ["recent"]);
}

/// F11: sessions a day past their expiry and login-throttle rows idle for a day are deleted by
/// the same run (anyone can create throttle rows); live ones stay.
#[test]
fn retention_deletes_expired_sessions_and_idle_throttle_rows() {
    let db = SqliteDb::migrated();
    block_on(async {
        db.execute(
            "INSERT INTO users (id, email, display_name, password_hash, terms_accepted_at, privacy_accepted_at, created_at, updated_at) \
             VALUES ('u1', 'a@example.com', 'A', 'x', 0, 0, 0, 0)",
            &[],
        )
        .await
        .unwrap();
        for (id, expires) in [("old1", NOW - 2 * DAY_MS), ("old2", NOW - DAY_MS - 1), ("live", NOW + DAY_MS)] {
            db.execute(
                "INSERT INTO sessions (id_hash, user_id, csrf_hash, created_at, last_seen_at, expires_at) VALUES (?1, 'u1', 'c', 0, 0, ?2)",
                &[id.into(), expires.into()],
            )
            .await
            .unwrap();
        }
        for i in 0..50 {
            let state = flowcp::store::sessions::throttle::ThrottleState {
                failures: 1,
                window_start: NOW - 3 * DAY_MS,
                locked_until: None,
            };
            flowcp::store::sessions::throttle::put(&db, &format!("email:{i}"), &state).await.unwrap();
        }
        let fresh =
            flowcp::store::sessions::throttle::ThrottleState { failures: 1, window_start: NOW, locked_until: None };
        flowcp::store::sessions::throttle::put(&db, "email:fresh", &fresh).await.unwrap();
    });
    let report = block_on(retention::run(&db, NOW, RetentionPolicy::default())).unwrap();
    assert_eq!((report.sessions_deleted, report.throttle_deleted), (2, 50), "{report:?}");
    let left = block_on(db.query("SELECT id_hash FROM sessions", &[])).unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["id_hash"], "live");
    let throttle = block_on(db.query("SELECT key FROM login_throttle", &[])).unwrap();
    assert_eq!(throttle.len(), 1);
}

/// F5: the audit writer tries every chunk: one failing statement loses only its own events,
/// and the error says how many.
#[test]
fn one_failing_audit_chunk_does_not_drop_the_others() {
    let db = SqliteDb::migrated();
    with_workspace(&db);
    // The second statement fails, and so does its first row when its rows are tried one by one.
    let failing = crate::support::FaultyDb::new(&db, &[1, 2]);
    let n = audit::ROWS_PER_INSERT * 3;
    let events: Vec<AuditEvent> = (0..n).map(|i| event(NOW + i as i64, "t")).collect();
    let err = block_on(audit::insert_many(&failing, &events)).unwrap_err();
    assert!(err.to_string().contains(&format!("1 of {n} audit events not written")), "{err}");
    assert_eq!(tool_names(&db).len(), n - 1, "the rest of the failing chunk and the chunks after it were written");
}

#[test]
fn each_workspace_keeps_its_audit_rows_as_long_as_it_chose() {
    let db = SqliteDb::migrated();
    block_on(async {
        for (ws, days) in [("ws_short", 7), ("ws_long", 90), ("ws_default", 30)] {
            db.execute(
                "INSERT INTO workspaces (id, name, created_at, audit_retention_days) VALUES (?1, 'W', 0, ?2)",
                &[ws.into(), days.into()],
            )
            .await
            .unwrap();
            for age in [3, 8, 31, 91] {
                let mut e = event(NOW - age * DAY_MS, &format!("{ws}-{age}"));
                e.workspace_id = ws.into();
                audit::insert(&db, &e).await.unwrap();
            }
        }
        // A deleted workspace's rows stay at most the longest retention (90 days).
        db.execute("INSERT INTO workspaces (id, name, created_at) VALUES ('ws_gone', 'W', 0)", &[]).await.unwrap();
        for age in [3, 31, 91] {
            let mut e = event(NOW - age * DAY_MS, &format!("gone-{age}"));
            e.workspace_id = "ws_gone".into();
            audit::insert(&db, &e).await.unwrap();
        }
        db.execute("DELETE FROM workspaces WHERE id = 'ws_gone'", &[]).await.unwrap();
    });
    let report = block_on(retention::run(&db, NOW, RetentionPolicy::default())).unwrap();
    assert!(report.complete);
    let mut kept = tool_names(&db);
    kept.sort();
    assert_eq!(
        kept,
        ["gone-3", "gone-31", "ws_default-3", "ws_default-8", "ws_long-3", "ws_long-31", "ws_long-8", "ws_short-3"],
        "7 days keeps 3; 30 keeps 3 and 8; 90 keeps up to 31; nothing over 90"
    );
    // The setting is bounded by the schema too.
    let bad = block_on(db.execute("UPDATE workspaces SET audit_retention_days = 365 WHERE id = 'ws_long'", &[]));
    assert!(bad.is_err(), "a retention over 90 days is refused by the CHECK");
}
