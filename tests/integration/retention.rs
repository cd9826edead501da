//! Audit retention against real SQLite with the real schema (DESIGN §8: 30 days).

use flowcp::jobs::retention::{self, RetentionPolicy, DAY_MS};
use flowcp::store::audit::{self, AuditEvent, Outcome};
use flowcp::store::{block_on, Db};

use crate::support::SqliteDb;

const NOW: i64 = 1_790_000_000_000;

fn event(ts_ms: i64, tool: &str) -> AuditEvent {
    AuditEvent {
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
    }
}

fn tool_names(db: &SqliteDb) -> Vec<String> {
    let rows = block_on(db.query("SELECT tool_name FROM audit_events ORDER BY ts", &[])).unwrap();
    rows.iter().map(|r| r["tool_name"].as_str().unwrap().to_string()).collect()
}

#[test]
fn rows_older_than_30_days_are_deleted_and_recent_rows_kept() {
    let db = SqliteDb::migrated();
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
    block_on(async {
        for i in 0..25 {
            audit::insert(&db, &event(NOW - 40 * DAY_MS + i, "old")).await.unwrap();
        }
        audit::insert(&db, &event(NOW, "keep")).await.unwrap();
    });
    let policy = RetentionPolicy { retain_days: 30, batch_size: 10, max_batches: 2 };
    let first = block_on(retention::run(&db, NOW, policy)).unwrap();
    assert_eq!((first.deleted, first.batches, first.complete), (20, 2, false));
    let second = block_on(retention::run(&db, NOW, policy)).unwrap();
    assert_eq!((second.deleted, second.batches, second.complete), (5, 1, true));
    assert_eq!(tool_names(&db), ["keep"]);
}

#[test]
fn empty_table_is_a_complete_noop() {
    let db = SqliteDb::migrated();
    let report = block_on(retention::run(&db, NOW, RetentionPolicy::default())).unwrap();
    assert_eq!((report.deleted, report.batches, report.complete), (0, 1, true));
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
    let events: Vec<AuditEvent> = (0..25).map(|i| event(NOW + i, &format!("t{i:02}"))).collect();
    block_on(audit::insert_many(&db, &events)).unwrap();
    assert_eq!(block_on(audit::count(&db)).unwrap(), 25);
    let names = tool_names(&db);
    assert_eq!(names.first().map(String::as_str), Some("t00"));
    assert_eq!(names.last().map(String::as_str), Some("t24"));
    block_on(audit::insert_many(&db, &[])).unwrap();
    assert_eq!(block_on(audit::count(&db)).unwrap(), 25);
}
