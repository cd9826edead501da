//! Issue 13: codes and tokens against a real SQLite database with the migrations: a code is
//! redeemed once by its client with its redirect URI and PKCE verifier; a replayed code revokes
//! the connection; the tokens open only at their server; nothing stored holds a token.

use flowcp::crypto::Keyring;
use flowcp::oauth::flow::AuthorizeRequest;
use std::cell::RefCell;

use flowcp::oauth::grant::{exchange_code, exchange_refresh, issue_code, Ctx, Grantor, Provider, UpstreamFailure};
use flowcp::oauth::tokens::{self, Kind, Upstream};
use flowcp::store::oauth_clients::OAuthClient;
use flowcp::store::{block_on, connections, Db, MemoryKv};

use crate::support::SqliteDb;

const ORIGIN: &str = "https://flowcp.example";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
const UPSTREAM_ACCESS: &str = "gho_upstream_access_token_of_the_end_user";
const UPSTREAM_REFRESH: &str = "ghr_upstream_refresh_token_of_the_end_user";
const NOW: i64 = 1_800_000_000_000;
/// The provider binding the scripted provider reports for the server.
const BINDING: &str = "binding-of-srv_A";

fn client() -> OAuthClient {
    OAuthClient {
        id: "fcp_cl_test".into(),
        client_name: "Claude Code".into(),
        redirect_uris: vec!["http://localhost/callback".into()],
        application_type: "native".into(),
        created_at: 0,
        last_used_at: None,
    }
}

fn request() -> AuthorizeRequest {
    AuthorizeRequest {
        client_id: "fcp_cl_test".into(),
        redirect_uri: "http://localhost:5555/callback".into(),
        state: Some("s".into()),
        code_challenge: CHALLENGE.into(),
        target: flowcp::oauth::resource::Target::Server("srv_A".into()),
        scope: "mcp:srv_A repo".into(),
    }
}

/// A database with the workspace and server a connection belongs to.
fn database() -> SqliteDb {
    let db = SqliteDb::migrated();
    for sql in [
        "INSERT INTO workspaces (id, name, created_at) VALUES ('ws_1', 'W', 0)",
        "INSERT INTO apps (id, workspace_id, name, created_at, updated_at) VALUES ('app_1', 'ws_1', 'A', 0, 0)",
        "INSERT INTO servers (id, workspace_id, app_id, name, auth_mode, created_at, updated_at) VALUES ('srv_A', 'ws_1', 'app_1', 'A', 'oauth', 0, 0)",
    ] {
        block_on(db.execute(sql, &[])).unwrap();
    }
    db
}

fn form(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn upstream() -> Upstream {
    Upstream {
        access_token: UPSTREAM_ACCESS.into(),
        refresh_token: Some(UPSTREAM_REFRESH.into()),
        expires_at_ms: Some(NOW + 8 * 3_600_000),
        scope: Some("repo".into()),
        provider: Some(BINDING.into()),
    }
}

#[test]
fn a_code_is_redeemed_once_and_a_replay_revokes_the_connection() {
    let db = database();
    let ring = Keyring::parse("k1:3333333333333333333333333333333333333333333333333333333333333333").unwrap();
    let kv = MemoryKv::default();
    let ctx = Ctx { db: &db, kv: &kv, keyring: &ring, origin: ORIGIN, now_ms: NOW };
    let (code, _) = block_on(issue_code(&ctx, "ws_1", &client(), &request(), Grantor::EndUser(upstream()))).unwrap();
    assert!(code.starts_with("fcp_ac.conn_"), "{code}");
    let good = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("client_id", "fcp_cl_test"),
        ("redirect_uri", "http://localhost:5555/callback"),
        ("code_verifier", VERIFIER),
        ("resource", "https://flowcp.example/mcp/srv_A"),
    ];
    // Wrong verifier, client, redirect or resource: refused, and the code is not spent.
    for (k, v) in [
        ("code_verifier", CHALLENGE),
        ("client_id", "fcp_cl_other"),
        ("redirect_uri", "http://localhost:5556/callback"),
        ("resource", "https://flowcp.example/mcp/srv_B"),
    ] {
        let mut p: Vec<(&str, &str)> = good.iter().copied().filter(|(x, _)| *x != k).collect();
        p.push((k, v));
        let e = block_on(exchange_code(&ctx, &form(&p))).unwrap_err();
        assert!(e.error == "invalid_grant" || e.error == "invalid_target", "{k}: {e:?}");
    }
    let mut no_verifier: Vec<(&str, &str)> = good.iter().copied().filter(|(x, _)| *x != "code_verifier").collect();
    no_verifier.push(("code_verifier", ""));
    assert_eq!(block_on(exchange_code(&ctx, &form(&no_verifier))).unwrap_err().error, "invalid_grant");
    let issued = block_on(exchange_code(&ctx, &form(&good))).unwrap();
    assert_eq!(issued.to_json()["token_type"], "Bearer");
    assert_eq!(issued.expires_in_s, 3_600);
    let aud_a = format!("{ORIGIN}/mcp/srv_A");
    let (conn, grant) = tokens::open(&ring, Kind::Access, &aud_a, &issued.access_token, NOW + 1).unwrap();
    assert_eq!(grant.upstream.access_token, UPSTREAM_ACCESS);
    assert!(tokens::open(&ring, Kind::Access, &format!("{ORIGIN}/mcp/srv_B"), &issued.access_token, NOW).is_err());
    assert!(tokens::open(&ring, Kind::Refresh, &aud_a, &issued.refresh_token, NOW).is_ok());
    // The code expired: refused.
    let late = Ctx { db: &db, kv: &kv, keyring: &ring, origin: ORIGIN, now_ms: NOW + 61_000 };
    assert_eq!(block_on(exchange_code(&late, &form(&good))).unwrap_err().error, "invalid_grant");
    // Replayed within its minute: refused, and the connection is revoked.
    assert_eq!(block_on(exchange_code(&ctx, &form(&good))).unwrap_err().error, "invalid_grant");
    let c = block_on(connections::get(&db, &conn)).unwrap().unwrap();
    assert!(c.revoked_at.is_some(), "a replayed code revokes the connection");
    assert!(
        block_on(flowcp::store::Kv::get(&kv, &flowcp::mcp::access::revoked_connection_key(&conn))).unwrap().is_some(),
        "and the runtime learns it"
    );
    assert_eq!(c.client_name.as_deref(), Some("Claude Code"));
    assert_eq!(c.connection_hash.len(), 16);

    // No token is stored: every row of every table is free of the upstream and FlowCP tokens.
    let tables = block_on(db.query("SELECT name FROM sqlite_master WHERE type = 'table'", &[])).unwrap();
    let mut scanned = 0;
    for t in tables {
        let name = t.get("name").and_then(|v| v.as_str()).unwrap().to_string();
        for row in block_on(db.query(&format!("SELECT * FROM \"{name}\""), &[])).unwrap() {
            let text = format!("{row:?}");
            scanned += 1;
            for secret in [
                UPSTREAM_ACCESS,
                UPSTREAM_REFRESH,
                issued.access_token.as_str(),
                issued.refresh_token.as_str(),
                code.as_str(),
            ] {
                assert!(!text.contains(secret), "table {name} holds a token");
            }
        }
    }
    assert!(scanned >= 2, "the connection and the used-code marker were scanned");
}

#[test]
fn a_code_for_an_unknown_or_revoked_connection_is_refused() {
    let db = database();
    let ring = Keyring::parse("k1:3333333333333333333333333333333333333333333333333333333333333333").unwrap();
    let kv = MemoryKv::default();
    let ctx = Ctx { db: &db, kv: &kv, keyring: &ring, origin: ORIGIN, now_ms: NOW };
    let (code, _) = block_on(issue_code(&ctx, "ws_1", &client(), &request(), Grantor::EndUser(upstream()))).unwrap();
    let conn = tokens::connection_of(&code, Kind::Code).unwrap().to_string();
    block_on(connections::revoke(&db, &conn, NOW)).unwrap();
    let p = form(&[
        ("code", &code),
        ("client_id", "fcp_cl_test"),
        ("redirect_uri", "http://localhost:5555/callback"),
        ("code_verifier", VERIFIER),
    ]);
    assert_eq!(block_on(exchange_code(&ctx, &p)).unwrap_err().error, "invalid_grant");
    let forged = code.replacen(&conn, "conn_forged", 1);
    let p = form(&[
        ("code", &forged),
        ("client_id", "fcp_cl_test"),
        ("redirect_uri", "http://localhost:5555/callback"),
        ("code_verifier", VERIFIER),
    ]);
    assert_eq!(block_on(exchange_code(&ctx, &p)).unwrap_err().error, "invalid_grant");
    assert_eq!(block_on(exchange_code(&ctx, &form(&[("client_id", "x")]))).unwrap_err().error, "invalid_request");
    assert_eq!(block_on(exchange_code(&ctx, &form(&[("code", "x")]))).unwrap_err().error, "invalid_client");
}

/// The provider side of a refresh, scripted: each call takes the next answer and is counted.
#[derive(Default)]
struct ScriptedProvider {
    answers: RefCell<Vec<Result<Upstream, UpstreamFailure>>>,
    calls: RefCell<Vec<String>>,
}

impl ScriptedProvider {
    fn answering(answers: Vec<Result<Upstream, UpstreamFailure>>) -> Self {
        ScriptedProvider { answers: RefCell::new(answers), calls: RefCell::default() }
    }
}

impl Provider for ScriptedProvider {
    async fn refresh(&self, _server_id: &str, current: &Upstream) -> Result<Upstream, UpstreamFailure> {
        self.calls.borrow_mut().push(current.refresh_token.clone().unwrap_or_default());
        let mut answers = self.answers.borrow_mut();
        assert!(!answers.is_empty(), "an unexpected upstream refresh");
        answers.remove(0)
    }
    async fn pause(&self, _ms: u32) {}
    async fn binding(&self, _server_id: &str) -> Option<String> {
        Some(BINDING.into())
    }
}

fn fresh(n: u32) -> Upstream {
    Upstream {
        access_token: format!("gho_refreshed_access_{n}"),
        refresh_token: Some(format!("ghr_refreshed_refresh_{n}")),
        expires_at_ms: Some(NOW + 8 * 3_600_000),
        scope: Some("repo".into()),
        provider: Some(BINDING.into()),
    }
}

/// A connection signed in through `ctx`, and its first tokens.
fn signed_in(ctx: &Ctx<'_, SqliteDb, MemoryKv>, db: &SqliteDb) -> flowcp::oauth::grant::Issued {
    let _ = block_on(db.execute("INSERT OR IGNORE INTO oauth_clients (id, client_name, redirect_uris_json, application_type, created_at) VALUES ('fcp_cl_test', 'C', '[]', 'native', 0)", &[]));
    let (code, _) = block_on(issue_code(ctx, "ws_1", &client(), &request(), Grantor::EndUser(upstream()))).unwrap();
    let p = form(&[
        ("code", &code),
        ("client_id", "fcp_cl_test"),
        ("redirect_uri", "http://localhost:5555/callback"),
        ("code_verifier", VERIFIER),
    ]);
    block_on(exchange_code(ctx, &p)).unwrap()
}

/// The upstream access token a FlowCP access token carries.
fn upstream_of(ring: &Keyring, access: &str) -> String {
    let audience = format!("{ORIGIN}/mcp/srv_A");
    tokens::open(ring, Kind::Access, &audience, access, NOW).unwrap().1.upstream.access_token
}

fn refresh_with(
    ctx: &Ctx<'_, SqliteDb, MemoryKv>,
    provider: &ScriptedProvider,
    t: &str,
) -> Result<flowcp::oauth::grant::Issued, flowcp::oauth::OAuthError> {
    block_on(exchange_refresh(ctx, provider, &form(&[("grant_type", "refresh_token"), ("refresh_token", t)])))
}

/// Refresh rotation and reuse detection (RFC 9700 §4.14.2): within two minutes a repeated
/// refresh of the same token gets the winner's outcome; after that the previous refresh token
/// is honoured once more; a second use of it, or an older one, ends the connection.
#[test]
fn a_reused_refresh_token_ends_the_connection() {
    let db = database();
    let ring = Keyring::parse("k1:3333333333333333333333333333333333333333333333333333333333333333").unwrap();
    let kv = MemoryKv::default();
    let ctx = Ctx { db: &db, kv: &kv, keyring: &ring, origin: ORIGIN, now_ms: NOW };
    // 45 s on: the winner's outcome is still stored (two minutes) but no longer replayed (30 s).
    let later = Ctx { now_ms: NOW + 45_000, ..ctx };
    let t0 = signed_in(&ctx, &db);
    let provider = ScriptedProvider::answering(vec![Ok(fresh(1)), Ok(fresh(2))]);
    let t1 = refresh_with(&ctx, &provider, &t0.refresh_token).unwrap();
    let again = refresh_with(&later, &provider, &t0.refresh_token).expect("the previous token is honoured once more");
    assert_eq!(provider.calls.borrow().len(), 2, "the grace use refreshes upstream itself");
    assert!(refresh_with(&later, &provider, &t0.refresh_token).is_err(), "but not twice");
    assert!(refresh_with(&later, &provider, &t1.refresh_token).is_err(), "and its reuse ended the connection");
    assert!(refresh_with(&later, &provider, &again.refresh_token).is_err());
    let conn = tokens::connection_of(&t0.access_token, Kind::Access).unwrap();
    assert!(block_on(connections::get(&db, conn)).unwrap().unwrap().revoked_at.is_some());
    // A client that no longer exists gets invalid_client (it re-registers).
    let t = signed_in(&ctx, &db);
    block_on(db.execute("DELETE FROM oauth_clients WHERE id = 'fcp_cl_test'", &[])).unwrap();
    let e = refresh_with(&ctx, &provider, &t.refresh_token).unwrap_err();
    assert_eq!((e.status, e.error), (401, "invalid_client"));
}

/// A refresh refreshes the user's upstream token once per generation: a concurrent refresh of
/// the same token (here: the same token again, right after) gets tokens built from the
/// winner's upstream result, without a second upstream call; what is recorded for it holds no
/// token FlowCP could read on its own.
#[test]
fn concurrent_refreshes_make_one_upstream_refresh() {
    let db = database();
    let ring = Keyring::parse("k1:3333333333333333333333333333333333333333333333333333333333333333").unwrap();
    let kv = MemoryKv::default();
    let ctx = Ctx { db: &db, kv: &kv, keyring: &ring, origin: ORIGIN, now_ms: NOW };
    let t0 = signed_in(&ctx, &db);
    let provider = ScriptedProvider::answering(vec![Ok(fresh(1))]);
    let winner = refresh_with(&ctx, &provider, &t0.refresh_token).unwrap();
    let loser = refresh_with(&ctx, &provider, &t0.refresh_token).unwrap();
    let loser2 = refresh_with(&ctx, &provider, &t0.refresh_token).unwrap();
    assert_eq!(
        *provider.calls.borrow(),
        vec![UPSTREAM_REFRESH.to_string()],
        "one upstream refresh, with the user's token"
    );
    for t in [&winner, &loser, &loser2] {
        assert_eq!(upstream_of(&ring, &t.access_token), "gho_refreshed_access_1");
    }
    // The next generation refreshes with the rotated upstream refresh token.
    let provider = ScriptedProvider::answering(vec![Ok(Upstream { refresh_token: None, ..fresh(2) })]);
    let t2 = refresh_with(&ctx, &provider, &loser.refresh_token).unwrap();
    assert_eq!(*provider.calls.borrow(), vec!["ghr_refreshed_refresh_1".to_string()]);
    assert_eq!(upstream_of(&ring, &t2.access_token), "gho_refreshed_access_2");
    // The provider did not rotate: the previous upstream refresh token is kept.
    let provider = ScriptedProvider::answering(vec![Ok(fresh(3))]);
    refresh_with(&ctx, &provider, &t2.refresh_token).unwrap();
    assert_eq!(*provider.calls.borrow(), vec!["ghr_refreshed_refresh_1".to_string()]);
    // The recorded outcomes are sealed: no upstream token appears in the database.
    let rows = block_on(db.query("SELECT sealed FROM oauth_refresh_results", &[])).unwrap();
    assert!(rows.len() >= 2);
    let dump = format!("{rows:?}");
    for secret in ["gho_refreshed", "ghr_refreshed", UPSTREAM_ACCESS, UPSTREAM_REFRESH] {
        assert!(!dump.contains(secret), "{secret} stored");
    }
}

/// The provider's answer decides: `invalid_grant` ends the connection (the user's grant there
/// ended); an outage is 503 and the client's retry of the same token succeeds.
#[test]
fn a_refresh_the_provider_refuses_ends_the_connection_and_an_outage_is_retried() {
    let db = database();
    let ring = Keyring::parse("k1:3333333333333333333333333333333333333333333333333333333333333333").unwrap();
    let kv = MemoryKv::default();
    let ctx = Ctx { db: &db, kv: &kv, keyring: &ring, origin: ORIGIN, now_ms: NOW };
    let t0 = signed_in(&ctx, &db);
    let provider = ScriptedProvider::answering(vec![Err(UpstreamFailure::Unavailable), Ok(fresh(1))]);
    let e = refresh_with(&ctx, &provider, &t0.refresh_token).unwrap_err();
    assert_eq!((e.status, e.error), (503, "temporarily_unavailable"));
    let retried = refresh_with(&ctx, &provider, &t0.refresh_token).expect("the retry succeeds");
    assert_eq!(upstream_of(&ring, &retried.access_token), "gho_refreshed_access_1");
    // The outage did not spend the token's grace use: later, it is honoured once more.
    let later = Ctx { now_ms: NOW + 3 * 60_000, ..ctx };
    let provider = ScriptedProvider::answering(vec![Ok(fresh(2))]);
    refresh_with(&later, &provider, &t0.refresh_token).expect("the grace use is intact");

    let t = signed_in(&ctx, &db);
    let provider = ScriptedProvider::answering(vec![Err(UpstreamFailure::Revoked)]);
    let e = refresh_with(&ctx, &provider, &t.refresh_token).unwrap_err();
    assert_eq!((e.status, e.error), (400, "invalid_grant"));
    // A concurrent refresh of the same token learns the outcome without asking again.
    let e = refresh_with(&ctx, &provider, &t.refresh_token).unwrap_err();
    assert_eq!(e.error, "invalid_grant");
    assert_eq!(provider.calls.borrow().len(), 1);
    let conn = tokens::connection_of(&t.access_token, Kind::Access).unwrap();
    assert!(block_on(connections::get(&db, conn)).unwrap().unwrap().revoked_at.is_some());
    assert!(kv.entries.borrow().keys().any(|k| k == &format!("oconn:revoked:{conn}")));
}

/// A grace use of a previous token issues the only token of that generation that may refresh
/// again: the rotated token it replaced turning up after all means two parties hold the grant
/// (a thief alternating with the client), and the connection ends. A client that really lost
/// the rotated token goes on with the one the grace use gave it.
#[test]
fn a_grace_use_detects_two_parties_and_spares_a_client_that_lost_its_token() {
    let db = database();
    let ring = Keyring::parse("k1:3333333333333333333333333333333333333333333333333333333333333333").unwrap();
    let kv = MemoryKv::default();
    let ctx = Ctx { db: &db, kv: &kv, keyring: &ring, origin: ORIGIN, now_ms: NOW };
    let later = Ctx { now_ms: NOW + 60_000, ..ctx };
    let much_later = Ctx { now_ms: NOW + 120_000, ..ctx };
    let ok = |n| ScriptedProvider::answering(vec![Ok(fresh(n))]);

    // A client whose answer was lost retries its previous token and goes on.
    let t0 = signed_in(&ctx, &db);
    let _lost = refresh_with(&ctx, &ok(1), &t0.refresh_token).unwrap();
    let kept = refresh_with(&later, &ok(2), &t0.refresh_token).expect("the grace use");
    refresh_with(&much_later, &ok(3), &kept.refresh_token).expect("the blessed token refreshes");

    // A thief with the previous token and the client alternate: caught at once.
    let t0 = signed_in(&ctx, &db);
    let client = refresh_with(&ctx, &ok(1), &t0.refresh_token).unwrap();
    let thief = refresh_with(&later, &ok(2), &t0.refresh_token).expect("the thief's grace use");
    assert!(refresh_with(&much_later, &ok(3), &client.refresh_token).is_err(), "the replaced token turned up");
    assert!(refresh_with(&much_later, &ok(4), &thief.refresh_token).is_err(), "the connection ended");
    let conn = tokens::connection_of(&t0.access_token, Kind::Access).unwrap();
    assert!(block_on(connections::get(&db, conn)).unwrap().unwrap().revoked_at.is_some());
}
