//! Issue 19: the audit queue's consumer (`flowcp::jobs::audit`) against real SQLite with the
//! real schema, with D1 writes failing on command.

use flowcp::jobs::audit::{consume, decode, encode, Verdict, MAX_MESSAGE_BYTES};
use flowcp::store::audit::{event_id, AuditEvent, Outcome, ROWS_PER_INSERT};
use flowcp::store::{block_on, Db};
use flowcp::vocab::Plan;

use crate::support::{FaultyDb, SqliteDb};

const TS: i64 = 1_796_083_200_000; // 2026-12-01

fn event(ws: &str, n: i64) -> AuditEvent {
    AuditEvent {
        id: event_id(TS),
        ts_ms: TS + n,
        workspace_id: ws.into(),
        server_id: "srv_q".into(),
        tool_name: format!("tool_{n}"),
        outcome: Outcome::Ok,
        upstream_status: Some(200),
        latency_ms: 3,
        request_bytes: 10,
        response_bytes: 20,
        connection_hash: Some("0123456789abcdef".into()),
        target: None,
        plan: Some(Plan::Pro),
        metered: true,
    }
}

fn db_with_workspace() -> SqliteDb {
    let db = SqliteDb::migrated();
    block_on(db.execute("INSERT INTO workspaces (id, name, created_at) VALUES ('ws_q', 'W', 0)", &[])).unwrap();
    db
}

fn count(db: &SqliteDb, sql: &str) -> i64 {
    block_on(db.query(sql, &[])).unwrap()[0]["n"].as_i64().unwrap()
}

#[test]
fn a_message_is_one_event_as_json_and_reads_back_the_same() {
    let e = AuditEvent { target: Some("acct_42".into()), upstream_status: None, ..event("ws_q", 1) };
    let body = encode(&e).unwrap();
    assert!(body.len() < 600, "{} bytes", body.len());
    assert_eq!(decode(&body, TS).unwrap(), e);
}

/// A message is hostile input like any stored value: what the hot path never sends is refused
/// (and retried, so it ends in the dead-letter queue, not in the table).
#[test]
fn decode_refuses_what_the_hot_path_never_sends() {
    let good = serde_json::to_value(event("ws_q", 1)).unwrap();
    let with = |k: &str, v: serde_json::Value| {
        let mut m = good.clone();
        m[k] = v;
        m.to_string()
    };
    let cases = [
        ("not JSON".to_string(), "not an audit event"),
        ("[]".to_string(), "not an audit event"),
        ("{}".to_string(), "not an audit event"),
        (with("outcome", "exploded".into()), "not an audit event"),
        (with("ts_ms", "soon".into()), "not an audit event"),
        (with("id", "".into()), "`id` is empty"),
        (with("id", "a b'; DROP TABLE audit_events".into()), "`id` is not an event id"),
        (with("id", "x".repeat(65).into()), "`id` is empty or longer than 64"),
        (with("workspace_id", "".into()), "`workspace_id` is empty"),
        (with("tool_name", "t".repeat(257).into()), "`tool_name` is empty or longer"),
        (with("connection_hash", "c".repeat(65).into()), "`connection_hash`"),
        (with("target", "t".repeat(513).into()), "`target` is longer"),
        (with("latency_ms", (-1).into()), "negative"),
        (with("ts_ms", (-5).into()), "negative"),
        (with("ts_ms", (TS + 2 * 86_400_000).into()), "in the future"),
        (format!("{good}{}", " ".repeat(MAX_MESSAGE_BYTES)), "bytes (at most"),
    ];
    for (body, want) in cases {
        let err = decode(&body, TS).expect_err(&body[..body.len().min(80)]);
        assert!(err.contains(want), "{body:.80}: {err}");
    }
    decode(&good.to_string(), TS).expect("the control decodes");
}

/// A delivery with a failing D1 statement, an unreadable message and a non-text one: what was
/// written is acknowledged, the rest retried; redelivering everything (at least once) writes
/// each event exactly once, and counts it once.
#[test]
fn a_delivery_acks_what_it_wrote_retries_the_rest_and_redelivery_writes_each_event_once() {
    let db = db_with_workspace();
    let events: Vec<AuditEvent> = (0..20).map(|n| event("ws_q", n)).collect();
    let mut bodies: Vec<Option<String>> = events.iter().map(|e| Some(encode(e).unwrap())).collect();
    bodies.insert(5, Some("{\"garbage\": true}".into()));
    bodies.insert(9, None);

    // The second statement (events 7..14) fails, and so does the third of its rows when they are
    // tried one by one (D1 writes 0, 1, then 2..8 for the rows, 9 for the last chunk).
    let faulty = FaultyDb::new(&db, &[1, 4]);
    let d = block_on(consume(&faulty, &bodies, TS));
    assert_eq!(d.verdicts.len(), 22);
    assert_eq!((d.written, d.failed, d.undecodable), (19, 1, 2));
    assert!(d.first_error.as_deref().unwrap().contains("not an audit event"), "{:?}", d.first_error);
    let retried: Vec<usize> = (0..22).filter(|&i| d.verdicts[i] == Verdict::Retry).collect();
    // Message i holds event i, less the two inserted messages before it.
    let event_of = |i: usize| i - usize::from(i > 5) - usize::from(i > 9);
    let failed_events: Vec<usize> = retried.iter().copied().filter(|&i| i != 5 && i != 9).map(event_of).collect();
    assert_eq!(failed_events, vec![9]);
    assert!(retried.contains(&5) && retried.contains(&9));
    assert_eq!(count(&db, "SELECT COUNT(*) AS n FROM audit_events"), 19);

    // The queue redelivers the retried messages, and (at least once) some acknowledged ones.
    let again: Vec<Option<String>> =
        retried.iter().map(|&i| bodies[i].clone()).chain(bodies[..3].iter().cloned()).collect();
    let d = block_on(consume(&db, &again, TS));
    assert_eq!((d.failed, d.undecodable), (0, 2));
    assert_eq!(count(&db, "SELECT COUNT(*) AS n FROM audit_events"), 20);
    assert_eq!(count(&db, "SELECT COUNT(DISTINCT event_id) AS n FROM audit_events"), 20);
    assert_eq!(
        count(&db, "SELECT calls AS n FROM usage_counters WHERE server_id = 'srv_q' AND subject = ''"),
        20,
        "each event counted once"
    );
    assert_eq!(
        count(&db, "SELECT calls AS n FROM usage_counters WHERE server_id = 'srv_q' AND subject = '0123456789abcdef'"),
        20
    );
}

/// Every write failing (D1 down): nothing is acknowledged, nothing is written half-way, and a
/// later delivery writes all of it.
#[test]
fn with_d1_down_nothing_is_acknowledged_and_nothing_is_half_written() {
    let db = db_with_workspace();
    let bodies: Vec<Option<String>> = (0..10).map(|n| Some(encode(&event("ws_q", n)).unwrap())).collect();
    let down = FaultyDb::new(&db, &(0..100).collect::<Vec<_>>());
    let d = block_on(consume(&down, &bodies, TS));
    assert!(d.verdicts.iter().all(|v| *v == Verdict::Retry));
    assert_eq!((d.written, d.failed), (0, 10));
    assert!(d.first_error.as_deref().unwrap().contains("injected fault"));
    assert_eq!(count(&db, "SELECT COUNT(*) AS n FROM audit_events"), 0);
    assert_eq!(count(&db, "SELECT COUNT(*) AS n FROM usage_counters"), 0, "no counter without its row");
    let d = block_on(consume(&db, &bodies, TS));
    assert!(d.verdicts.iter().all(|v| *v == Verdict::Ack));
    assert_eq!(count(&db, "SELECT COUNT(*) AS n FROM audit_events"), 10);
}

/// A late delivery for a workspace deleted meanwhile is acknowledged and not written.
#[test]
fn a_delivery_for_a_deleted_workspace_writes_nothing() {
    let db = db_with_workspace();
    let bodies = vec![Some(encode(&event("ws_gone", 1)).unwrap()), Some(encode(&event("ws_q", 2)).unwrap())];
    let d = block_on(consume(&db, &bodies, TS));
    assert_eq!(d.verdicts, vec![Verdict::Ack, Verdict::Ack]);
    assert_eq!(count(&db, "SELECT COUNT(*) AS n FROM audit_events WHERE workspace_id = 'ws_gone'"), 0);
    assert_eq!(count(&db, "SELECT COUNT(*) AS n FROM usage_counters WHERE workspace_id = 'ws_gone'"), 0);
    assert_eq!(count(&db, "SELECT COUNT(*) AS n FROM audit_events WHERE workspace_id = 'ws_q'"), 1);
}

/// A row SQLite refuses (here a time past year 9999, whose month the counters' trigger cannot
/// name) fails alone: the other events of its statement, another workspace's among them, are
/// written.
#[test]
fn one_poison_row_does_not_hold_back_the_others_of_its_statement() {
    let db = db_with_workspace();
    block_on(db.execute("INSERT INTO workspaces (id, name, created_at) VALUES ('ws_other', 'O', 0)", &[])).unwrap();
    let mut events: Vec<AuditEvent> = (0..ROWS_PER_INSERT as i64).map(|n| event("ws_q", n)).collect();
    events[3].workspace_id = "ws_other".into();
    events[2].ts_ms = 253_402_300_800_000; // 10000-01-01
    let failed = block_on(flowcp::store::audit::insert_chunks(&db, &events));
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].0, 2..3);
    assert_eq!(count(&db, "SELECT COUNT(*) AS n FROM audit_events"), ROWS_PER_INSERT as i64 - 1);
    assert_eq!(count(&db, "SELECT COUNT(*) AS n FROM audit_events WHERE workspace_id = 'ws_other'"), 1);
}

/// The idempotency key is per workspace: an id another workspace already used does not
/// suppress an event.
#[test]
fn an_event_id_is_unique_per_workspace_only() {
    let db = db_with_workspace();
    block_on(db.execute("INSERT INTO workspaces (id, name, created_at) VALUES ('ws_other', 'O', 0)", &[])).unwrap();
    let a = event("ws_q", 1);
    let b = AuditEvent { workspace_id: "ws_other".into(), ..a.clone() };
    block_on(flowcp::store::audit::insert_many(&db, &[a.clone(), b, a])).unwrap();
    assert_eq!(count(&db, "SELECT COUNT(*) AS n FROM audit_events"), 2);
}

/// Not a test: what one audit row costs a single SQLite (D1 is one SQLite per database, on one
/// thread): the consumer's own statements (7 rows each, with the usage trigger) for 200,000
/// events of 1,000 servers and 100 callers each, in deliveries of 100; prints rows/s, µs per
/// row and bytes per row (table and indexes). docs/scale.md uses it.
/// `cargo test --release --test integration -- --ignored audit_rows_cost --nocapture`
#[test]
#[ignore]
fn audit_rows_cost() {
    let db = SqliteDb::migrated();
    block_on(db.execute("INSERT INTO workspaces (id, name, created_at) VALUES ('ws_q', 'W', 0)", &[])).unwrap();
    let rows_before = count(
        &db,
        "SELECT (SELECT page_count FROM pragma_page_count()) * (SELECT page_size FROM pragma_page_size()) AS n",
    );
    let n = 200_000i64;
    let events: Vec<AuditEvent> = (0..n)
        .map(|i| AuditEvent {
            server_id: format!("srv_{:04}", i % 1000),
            connection_hash: Some(format!("{:016x}", (i / 1000) % 100)),
            ..event("ws_q", i)
        })
        .collect();
    let t0 = std::time::Instant::now();
    for delivery in events.chunks(100) {
        assert!(block_on(flowcp::store::audit::insert_chunks(&db, delivery)).is_empty());
    }
    let secs = t0.elapsed().as_secs_f64();
    let bytes = count(
        &db,
        "SELECT (SELECT page_count FROM pragma_page_count()) * (SELECT page_size FROM pragma_page_size()) AS n",
    ) - rows_before;
    assert_eq!(count(&db, "SELECT COUNT(*) AS n FROM audit_events"), n);
    println!(
        "audit rows: {n} in {secs:.2} s = {:.0} rows/s, {:.1} µs/row; {} bytes/row (table, indexes, counters)",
        n as f64 / secs,
        secs * 1e6 / n as f64,
        bytes / n
    );
}
