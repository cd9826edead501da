//! Accounts (DESIGN §7): passwords, session cookies, CSRF, throttling, and the users/sessions
//! SQL against real SQLite with the real schema.

use std::sync::OnceLock;

use flowcp::auth::session::{self, COOKIE_NAME, SESSION_TTL_MS};
use flowcp::auth::throttle::{self, Decision, LoginKeys, Policy, ThrottleState};
use flowcp::auth::{password, AuthError};
use flowcp::error::ApiError;
use flowcp::store::sessions::{self, TOUCH_INTERVAL_MS};
use flowcp::store::users::{self, NewUser, User};
use flowcp::store::{block_on, Db};

use crate::support::SqliteDb;

const NOW: i64 = 1_790_000_000_000;
const MINUTE: i64 = 60_000;
const SECRET: &[u8] = b"test-session-secret-0123456789abcdef";
const PASSWORD: &str = "correct horse battery staple";

/// One hash shared by the tests that need a stored hash (argon2 is slow in debug builds).
fn stored_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| password::hash_password(PASSWORD).expect("hash"))
}

fn new_user<'a>(email: &'a str) -> NewUser<'a> {
    NewUser {
        email,
        display_name: "Ada",
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        terms_accepted_at: NOW - 5,
        privacy_accepted_at: NOW - 4,
    }
}

fn signed_up(db: &SqliteDb, email: &str) -> User {
    block_on(users::create(db, &new_user(email), (&next_ws(), "W"), NOW)).unwrap().expect("email free")
}

/// Issues a session for `user_id` at `at` and stores it; returns the cookie value and id hash.
fn logged_in(db: &SqliteDb, user_id: &str, at: i64) -> session::IssuedSession {
    let s = session::issue(SECRET, at).unwrap();
    block_on(sessions::create(db, &s.id_hash, user_id, &s.csrf_hash, at, s.expires_at)).unwrap();
    s
}

fn live_user_id(db: &SqliteDb, cookie_header: &str, at: i64) -> Option<String> {
    let id_hash = session::session_id_hash_from_cookie_header(cookie_header, SECRET)?;
    block_on(sessions::find_live(db, &id_hash, at)).unwrap().map(|(_, u)| u.id)
}

// ---------------------------------------------------------------- passwords

#[test]
fn password_hash_round_trips_in_phc_form_with_a_fresh_salt() {
    let h1 = stored_hash();
    assert!(h1.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h1}");
    assert!(password::verify_password(PASSWORD, h1));
    assert!(!password::needs_rehash(h1));
    let h2 = password::hash_password(PASSWORD).unwrap();
    assert_ne!(h1, &h2, "the salt must be random");
    assert!(password::verify_password(PASSWORD, &h2));
}

#[test]
fn wrong_password_does_not_verify() {
    let h = stored_hash();
    for wrong in ["", "correct horse battery stapl", "Correct horse battery staple", "correct horse battery staple "] {
        assert!(!password::verify_password(wrong, h), "{wrong:?} verified");
    }
}

#[test]
fn garbage_or_hostile_phc_strings_are_false_without_panic() {
    let good = stored_hash();
    let (head, tag) = good.rsplit_once('$').unwrap();
    let flipped_tag = format!("{head}${}{}", if tag.starts_with('A') { 'B' } else { 'A' }, &tag[1..]);
    let salt_tag = &good["$argon2id$v=19$m=19456,t=2,p=1$".len()..];
    let hostile: Vec<String> = vec![
        String::new(),
        "$".into(),
        "$$$$$$".into(),
        "$argon2id$".into(),
        "$argon2id$v=19$m=19456,t=2,p=1$".into(),
        PASSWORD.into(),
        "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW".into(),
        format!("$argon2i$v=19$m=19456,t=2,p=1${salt_tag}"),
        format!("$argon2d$v=19$m=19456,t=2,p=1${salt_tag}"),
        format!("$argon2id$v=16$m=19456,t=2,p=1${salt_tag}"),
        format!("$argon2id$m=19456,t=2,p=1${salt_tag}"),
        // Resource exhaustion: a tampered row must not make a login allocate 4 TiB or loop.
        format!("$argon2id$v=19$m=4294967295,t=2,p=1${salt_tag}"),
        format!("$argon2id$v=19$m=19456,t=4294967295,p=1${salt_tag}"),
        format!("$argon2id$v=19$m=19456,t=2,p=16777215${salt_tag}"),
        format!("$argon2id$v=19$m=0,t=0,p=0${salt_tag}"),
        format!("$argon2id$v=19$m=-1,t=2,p=1${salt_tag}"),
        "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0".into(),
        "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$AAAAAA".into(),
        "$argon2id$v=19$m=19456,t=2,p=1$!!!!$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".into(),
        "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA$extra".into(),
        "$argon2id$v=19$m=19456,t=2,p=1,keyid=AAAA$c2FsdHNhbHRzYWx0$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".into(),
        "$argön2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$ü".into(),
        format!("$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0${}", "A".repeat(100_000)),
        "\u{0}\u{0}\u{0}".into(),
        flipped_tag,
    ];
    for phc in &hostile {
        let shown: String = phc.chars().take(80).collect();
        assert!(!password::verify_password(PASSWORD, phc), "{shown:?} verified");
        assert!(password::needs_rehash(phc) || phc.starts_with(head), "{shown:?}");
    }
    // Within what the parser accepts but beyond the Worker's 128 MB: refused before any hashing
    // (hashing it would allocate 256 MiB and take most of a second even in release).
    let too_big = format!("$argon2id$v=19$m=262144,t=1,p=1${salt_tag}");
    let t = std::time::Instant::now();
    assert!(!password::verify_password(PASSWORD, &too_big));
    assert!(t.elapsed() < std::time::Duration::from_millis(100), "hashed a 256 MiB hash: {:?}", t.elapsed());
    // The control: the untampered hash does verify, so the loop above tests the tampering.
    assert!(password::verify_password(PASSWORD, good));
}

#[test]
fn password_policy_boundaries() {
    assert!(password::check_password_policy(&"x".repeat(9)).is_err());
    assert!(password::check_password_policy(&"x".repeat(10)).is_ok());
    assert!(password::check_password_policy(&"x".repeat(256)).is_ok());
    assert!(password::check_password_policy(&"x".repeat(257)).is_err());
    // Characters, not bytes: 10 emoji (40 bytes) pass, 9 do not.
    assert!(password::check_password_policy(&"🔑".repeat(10)).is_ok());
    assert!(password::check_password_policy(&"🔑".repeat(9)).is_err());
    assert!(password::check_password_policy(&"é".repeat(256)).is_ok());
    assert!(password::check_password_policy(&"é".repeat(257)).is_err());
    // Not only whitespace; but spaces inside a passphrase are fine (no composition rules).
    assert!(password::check_password_policy(&" ".repeat(12)).is_err());
    assert!(password::check_password_policy(" \t\n\u{a0}\u{3000}          ").is_err());
    assert!(password::check_password_policy("a b c d e f").is_ok());
    // A notorious one is refused whatever its case.
    assert!(password::check_password_policy("Password123").is_err());
    // The message is safe to show: it never echoes the password.
    let msg = password::check_password_policy("hunter2").unwrap_err();
    assert!(!msg.contains("hunter2"), "{msg}");
}

#[test]
fn unknown_email_login_costs_as_much_as_a_wrong_password() {
    let h = stored_hash();
    let time = |f: &dyn Fn()| {
        (0..2)
            .map(|_| {
                let t = std::time::Instant::now();
                f();
                t.elapsed()
            })
            .min()
            .unwrap()
    };
    let verify = time(&|| assert!(!password::verify_password("wrong password!", h)));
    let equalize = time(&|| password::equalize_timing("wrong password!"));
    // Loose bound (shared CI cores): a no-op or a cheaper hash would be far below a third.
    assert!(equalize * 3 > verify, "equalize {equalize:?} vs verify {verify:?}");
}

// ---------------------------------------------------------------- cookies and CSRF

#[test]
fn issued_cookie_verifies_to_the_stored_id_hash() {
    let s = session::issue(SECRET, NOW).unwrap();
    assert_eq!(s.expires_at, NOW + SESSION_TTL_MS);
    let header = format!("{COOKIE_NAME}={}", s.cookie_value);
    assert_eq!(session::session_id_hash_from_cookie_header(&header, SECRET), Some(s.id_hash.clone()));
    // Only hashes are stored: neither the cookie nor the token is its own hash's preimage text.
    assert!(!s.cookie_value.contains(&s.id_hash) && s.id_hash.len() == 64);
    assert_ne!(s.csrf_hash, s.csrf_token);
    let other = session::issue(SECRET, NOW).unwrap();
    assert_ne!(s.cookie_value, other.cookie_value);
    assert_ne!(s.csrf_token, other.csrf_token);
    // Debug output never shows the bearer values.
    let shown = format!("{s:?}");
    assert!(!shown.contains(&s.cookie_value) && !shown.contains(&s.csrf_token), "{shown}");
    assert!(shown.contains(&s.id_hash) && shown.contains("<redacted>"), "{shown}");
    // The token is the production one: derived from this session and the secret, nothing else.
    assert_eq!(s.csrf_token, session::csrf_token(SECRET, &s.id_hash));
    assert_ne!(s.csrf_token, session::csrf_token(b"another deployment's secret, 32+ bytes", &s.id_hash));
    assert!(session::csrf_ok(Some(&s.csrf_token), &s.csrf_hash));
    assert!(!session::csrf_ok(Some(&other.csrf_token), &s.csrf_hash), "another session's token");
}

#[test]
fn forged_cookie_signature_is_rejected() {
    let s = session::issue(SECRET, NOW).unwrap();
    let other = session::issue(SECRET, NOW).unwrap();
    let (id, mac) = s.cookie_value.split_once('.').unwrap();
    let (other_id, other_mac) = other.cookie_value.split_once('.').unwrap();
    let flip = |t: &str, i: usize| {
        let mut b = t.as_bytes().to_vec();
        b[i] = if b[i] == b'A' { b'B' } else { b'A' };
        String::from_utf8(b).unwrap()
    };
    let forged = [
        format!("{id}.{}", flip(mac, 0)),
        format!("{id}.{}", flip(mac, mac.len() - 1)),
        format!("{}.{mac}", flip(id, 5)),
        format!("{other_id}.{mac}"),
        format!("{id}.{other_mac}"),
        format!("{id}."),
        format!("{id}.{mac}A"),
        format!("{id}.{}", &mac[..mac.len() - 1]),
        format!("{id}{mac}"),
        id.to_string(),
    ];
    for f in &forged {
        let header = format!("{COOKIE_NAME}={f}");
        assert_eq!(session::session_id_hash_from_cookie_header(&header, SECRET), None, "{f} accepted");
    }
    // The control: the genuine cookie is accepted.
    let header = format!("{COOKIE_NAME}={}", s.cookie_value);
    assert!(session::session_id_hash_from_cookie_header(&header, SECRET).is_some());
}

#[test]
fn cookie_signed_with_another_secret_is_rejected() {
    let s = session::issue(b"another deployment's secret", NOW).unwrap();
    let header = format!("{COOKIE_NAME}={}", s.cookie_value);
    assert_eq!(session::session_id_hash_from_cookie_header(&header, SECRET), None);
    assert_eq!(session::session_id_hash_from_cookie_header(&header, b""), None);
    assert!(session::session_id_hash_from_cookie_header(&header, b"another deployment's secret").is_some());
}

#[test]
fn session_cookie_is_found_among_several_cookies() {
    let s = session::issue(SECRET, NOW).unwrap();
    let v = &s.cookie_value;
    let want = Some(s.id_hash.clone());
    let headers = [
        format!("theme=dark; {COOKIE_NAME}={v}; _ga=GA1.2.3"),
        format!("theme=dark;{COOKIE_NAME}={v};_ga=GA1.2.3"),
        format!("{COOKIE_NAME}={v}"),
        format!("  {COOKIE_NAME} = {v}  "),
        format!("a=1; b=2; c=; d; e==; {COOKIE_NAME}={v}"),
        // A stale or planted copy before the real one does not hide it.
        format!("{COOKIE_NAME}=garbage; {COOKIE_NAME}={v}"),
        format!("x=\u{e9}\u{fc}; {COOKIE_NAME}={v}; y=\u{1F600}"),
    ];
    for h in &headers {
        assert_eq!(session::session_id_hash_from_cookie_header(h, SECRET), want, "{h}");
    }
    // Names are exact and case-sensitive; look-alikes are not our cookie.
    let lookalikes = [
        format!("x{COOKIE_NAME}={v}"),
        format!("__host-flowcp_session={v}"),
        format!("flowcp_session={v}"),
        format!("__Secure-flowcp_session={v}"),
        format!("other={COOKIE_NAME}={v}"),
    ];
    for h in &lookalikes {
        assert_eq!(session::session_id_hash_from_cookie_header(h, SECRET), None, "{h}");
    }
}

#[test]
fn hostile_cookie_headers_yield_none_without_panic() {
    let huge_value = format!("{COOKIE_NAME}={}", "A".repeat(1 << 20));
    let huge_many = format!("{COOKIE_NAME}=x;").repeat(50_000);
    let exact_len_non_b64 = format!("{COOKIE_NAME}={}.{}", "!".repeat(43), "?".repeat(43));
    // 87 bytes but multi-byte characters: the parser must not slice inside a character.
    let multibyte_87 = format!("{COOKIE_NAME}={}", "é".repeat(43) + ".");
    let quoted = format!("{COOKIE_NAME}=\"{}.{}\"", "A".repeat(43), "A".repeat(43));
    let headers: Vec<String> = vec![
        String::new(),
        ";".into(),
        ";;;;".into(),
        "=".into(),
        "==".into(),
        COOKIE_NAME.into(),
        format!("{COOKIE_NAME}="),
        format!("{COOKIE_NAME}=."),
        format!("{COOKIE_NAME}=\u{0}\r\n"),
        "no equals sign at all".into(),
        "ü=ß; ñ; 😀=😀".into(),
        huge_value,
        huge_many,
        exact_len_non_b64,
        multibyte_87,
        quoted,
    ];
    for h in &headers {
        let shown: String = h.chars().take(60).collect();
        assert_eq!(session::session_id_hash_from_cookie_header(h, SECRET), None, "{shown:?}");
    }
}

#[test]
fn set_cookie_has_host_prefix_attributes_and_no_injection() {
    let s = session::issue(SECRET, NOW).unwrap();
    let c = session::set_cookie(&s.cookie_value, SESSION_TTL_MS / 1000);
    assert!(c.starts_with(&format!("{COOKIE_NAME}={};", s.cookie_value)), "{c}");
    for attr in ["HttpOnly", "Secure", "SameSite=Lax", "Path=/", "Max-Age=604800"] {
        assert!(c.split("; ").any(|a| a == attr), "{attr} missing in {c}");
    }
    assert!(!c.contains("Domain"), "{c}");
    let injected = session::set_cookie("abc; Domain=evil.example\r\nSet-Cookie: x=y", -5);
    assert!(!injected.split("; ").any(|a| a.starts_with("Domain")), "{injected}");
    assert!(!injected.contains('\r') && !injected.contains('\n'), "{injected}");
    assert_eq!(injected.matches(';').count(), c.matches(';').count(), "{injected}");
    assert!(injected.contains("Max-Age=0"));
    let cleared = session::clear_cookie();
    assert!(cleared.starts_with(&format!("{COOKIE_NAME}=;")) && cleared.contains("Max-Age=0"), "{cleared}");
    assert!(cleared.contains("Secure") && cleared.contains("Path=/") && !cleared.contains("Domain"));
}

#[test]
fn csrf_token_must_match_the_session() {
    let s = session::issue(SECRET, NOW).unwrap();
    let other = session::issue(SECRET, NOW).unwrap();
    assert!(session::csrf_ok(Some(&s.csrf_token), &s.csrf_hash));
    assert!(!session::csrf_ok(Some(&other.csrf_token), &s.csrf_hash));
    assert!(!session::csrf_ok(None, &s.csrf_hash));
    assert!(!session::csrf_ok(Some(""), &s.csrf_hash));
    assert!(!session::csrf_ok(Some(&s.csrf_hash), &s.csrf_hash), "the stored hash is not the token");
    assert!(!session::csrf_ok(Some(&s.csrf_token), ""));
    assert!(!session::csrf_ok(Some(&"A".repeat(1 << 16)), &s.csrf_hash));
}

// ---------------------------------------------------------------- sessions in the database

#[test]
fn live_session_is_found_with_its_user() {
    let db = SqliteDb::migrated();
    let user = signed_up(&db, "ada@example.com");
    let s = logged_in(&db, &user.id, NOW);
    let header = format!("theme=dark; {COOKIE_NAME}={}", s.cookie_value);
    assert_eq!(live_user_id(&db, &header, NOW + MINUTE), Some(user.id.clone()));
    let (rec, u) = block_on(sessions::find_live(&db, &s.id_hash, NOW + MINUTE)).unwrap().unwrap();
    assert_eq!(
        (rec.user_id.as_str(), rec.csrf_hash.as_str(), rec.expires_at),
        (user.id.as_str(), s.csrf_hash.as_str(), s.expires_at)
    );
    assert_eq!(u, user);
    // Neither the raw id nor the raw CSRF token is anywhere in the table.
    let rows = block_on(db.query("SELECT * FROM sessions", &[])).unwrap();
    let dump = serde_json::to_string(&rows).unwrap();
    let raw_id = s.cookie_value.split_once('.').unwrap().0;
    assert!(!dump.contains(raw_id) && !dump.contains(&s.csrf_token), "{dump}");
}

#[test]
fn expired_session_is_not_found() {
    let db = SqliteDb::migrated();
    let user = signed_up(&db, "ada@example.com");
    let s = logged_in(&db, &user.id, NOW);
    let header = format!("{COOKIE_NAME}={}", s.cookie_value);
    assert!(live_user_id(&db, &header, s.expires_at - 1).is_some());
    assert_eq!(live_user_id(&db, &header, s.expires_at), None);
    assert_eq!(live_user_id(&db, &header, s.expires_at + 1), None);
    // Cleanup removes it for good.
    assert_eq!(block_on(sessions::delete_expired(&db, s.expires_at + 1, 100)).unwrap(), 1);
}

#[test]
fn revoked_session_is_not_found_and_stays_revoked() {
    let db = SqliteDb::migrated();
    let user = signed_up(&db, "ada@example.com");
    let s = logged_in(&db, &user.id, NOW);
    let other = logged_in(&db, &user.id, NOW);
    assert!(block_on(sessions::revoke(&db, &s.id_hash, NOW + 1)).unwrap());
    assert!(!block_on(sessions::revoke(&db, &s.id_hash, NOW + 2)).unwrap(), "second revoke is a no-op");
    assert!(block_on(sessions::find_live(&db, &s.id_hash, NOW + 3)).unwrap().is_none());
    block_on(sessions::touch(&db, &s.id_hash, NOW + TOUCH_INTERVAL_MS + 10)).unwrap();
    assert!(block_on(sessions::find_live(&db, &s.id_hash, NOW + TOUCH_INTERVAL_MS + 11)).unwrap().is_none());
    // Logging out one session leaves the user's other sessions alone.
    assert!(block_on(sessions::find_live(&db, &other.id_hash, NOW + 3)).unwrap().is_some());
    assert_eq!(block_on(sessions::revoke_all_for_user(&db, &user.id, NOW + 4)).unwrap(), 1);
    assert!(block_on(sessions::find_live(&db, &other.id_hash, NOW + 5)).unwrap().is_none());
}

#[test]
fn touch_writes_last_seen_at_most_once_per_interval() {
    let db = SqliteDb::migrated();
    let user = signed_up(&db, "ada@example.com");
    let s = logged_in(&db, &user.id, NOW);
    let last_seen = |at| block_on(sessions::find_live(&db, &s.id_hash, at)).unwrap().unwrap().0.last_seen_at;
    block_on(sessions::touch(&db, &s.id_hash, NOW + MINUTE)).unwrap();
    assert_eq!(last_seen(NOW + MINUTE), NOW);
    block_on(sessions::touch(&db, &s.id_hash, NOW + TOUCH_INTERVAL_MS)).unwrap();
    assert_eq!(last_seen(NOW + TOUCH_INTERVAL_MS), NOW + TOUCH_INTERVAL_MS);
}

#[test]
fn password_change_revokes_other_sessions_but_keeps_the_current_one() {
    let db = SqliteDb::migrated();
    let user = signed_up(&db, "ada@example.com");
    let stranger = signed_up(&db, "bob@example.com");
    let current = logged_in(&db, &user.id, NOW);
    let laptop = logged_in(&db, &user.id, NOW);
    let phone = logged_in(&db, &user.id, NOW);
    let bobs = logged_in(&db, &stranger.id, NOW);
    let new_hash = "$argon2id$v=19$m=19456,t=2,p=1$bmV3c2FsdG5ld3NhbHQ$BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB";
    assert!(block_on(flowcp::service::accounts::change_password(
        &db,
        &user.id,
        new_hash,
        Some(&current.id_hash),
        NOW + 10
    ))
    .unwrap());
    let live = |s: &session::IssuedSession| block_on(sessions::find_live(&db, &s.id_hash, NOW + 11)).unwrap().is_some();
    assert!(live(&current));
    assert!(!live(&laptop) && !live(&phone));
    assert!(live(&bobs), "another user's session is untouched");
    let stored = block_on(users::find_by_id(&db, &user.id)).unwrap().unwrap();
    assert_eq!((stored.password_hash.as_str(), stored.updated_at), (new_hash, NOW + 10));
    // Without a session to keep (e.g. a reset by email), every session goes.
    assert!(block_on(flowcp::service::accounts::change_password(&db, &user.id, new_hash, None, NOW + 20)).unwrap());
    assert!(!live(&current));
    assert!(!block_on(flowcp::service::accounts::change_password(&db, "usr_nobody", new_hash, None, NOW + 20)).unwrap());
}

// ---------------------------------------------------------------- users

#[test]
fn email_lookup_is_case_insensitive() {
    let db = SqliteDb::migrated();
    let user = signed_up(&db, "Ada.Lovelace@Example.com");
    assert!(user.id.starts_with("usr_") && user.id.len() == 26, "{}", user.id);
    for probe in ["ada.lovelace@example.com", "ADA.LOVELACE@EXAMPLE.COM", "Ada.Lovelace@Example.com"] {
        let found = block_on(users::find_by_email(&db, probe)).unwrap();
        assert_eq!(found.as_ref().map(|u| u.id.as_str()), Some(user.id.as_str()), "{probe}");
    }
    assert_eq!(block_on(users::find_by_email(&db, "ada@example.com")).unwrap(), None);
    let stored = block_on(users::find_by_id(&db, &user.id)).unwrap().unwrap();
    assert_eq!(stored, user);
    assert_eq!(stored.email, "Ada.Lovelace@Example.com", "stored as typed");
    assert_eq!((stored.terms_accepted_at, stored.privacy_accepted_at, stored.created_at), (NOW - 5, NOW - 4, NOW));
}

/// A fresh workspace id for each account made here (a sign-up makes its first workspace).
fn next_ws() -> String {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    format!("ws_auth{}", N.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
}

#[test]
fn sign_up_with_the_same_email_differently_cased_fails() {
    let db = SqliteDb::migrated();
    let first = signed_up(&db, "ada@example.com");
    assert_eq!(block_on(users::create(&db, &new_user("ADA@Example.COM"), (&next_ws(), "W"), NOW + 1)).unwrap(), None);
    assert_eq!(block_on(users::create(&db, &new_user("ada@example.com"), (&next_ws(), "W"), NOW + 1)).unwrap(), None);
    let n = block_on(db.query("SELECT COUNT(*) AS n FROM users", &[])).unwrap();
    assert_eq!(n[0]["n"], 1);
    // A taken address writes nothing else either: no workspace, no membership (one write).
    let n =
        block_on(db.query("SELECT (SELECT COUNT(*) FROM workspaces) + (SELECT COUNT(*) FROM memberships) AS n", &[]));
    assert_eq!(n.unwrap()[0]["n"], 2, "only the first sign-up's workspace and membership");
    // The schema itself refuses it, whatever code path inserts.
    let raw = block_on(db.execute(
        "INSERT INTO users (id, email, display_name, password_hash, terms_accepted_at, privacy_accepted_at, created_at, updated_at) \
         VALUES ('usr_x', 'Ada@EXAMPLE.com', 'x', 'x', 1, 1, 1, 1)",
        &[],
    ));
    assert!(matches!(raw, Err(ref e) if e.to_string().contains("UNIQUE")), "{raw:?}");
    assert_eq!(block_on(users::find_by_email(&db, "ada@example.com")).unwrap().unwrap().id, first.id);
}

#[test]
fn deleting_a_user_removes_the_account_and_its_sessions() {
    let db = SqliteDb::migrated();
    let user = signed_up(&db, "ada@example.com");
    let s = logged_in(&db, &user.id, NOW);
    assert!(block_on(flowcp::service::accounts::delete_user(&db, &user.id, NOW)).unwrap());
    assert!(!block_on(flowcp::service::accounts::delete_user(&db, &user.id, NOW)).unwrap());
    assert_eq!(block_on(users::find_by_id(&db, &user.id)).unwrap(), None);
    assert!(block_on(sessions::find_live(&db, &s.id_hash, NOW)).unwrap().is_none());
    let n = block_on(db.query("SELECT COUNT(*) AS n FROM sessions", &[])).unwrap();
    assert_eq!(n[0]["n"], 0);
    // The email is free again.
    assert!(block_on(users::create(&db, &new_user("ada@example.com"), (&next_ws(), "W"), NOW)).unwrap().is_some());
}

#[test]
fn user_debug_output_hides_the_password_hash() {
    let db = SqliteDb::migrated();
    let mut nu = new_user("ada@example.com");
    let h = stored_hash();
    nu.password_hash = h;
    let user = block_on(users::create(&db, &nu, (&next_ws(), "W"), NOW)).unwrap().unwrap();
    let shown = format!("{user:?}");
    let tag = h.rsplit('$').next().unwrap();
    assert!(!shown.contains(tag) && !shown.contains("argon2id"), "{shown}");
}

// ---------------------------------------------------------------- throttling

#[test]
fn throttle_locks_after_five_failures_and_unlocks_after_the_lock() {
    let mut state: Option<ThrottleState> = None;
    for i in 0..4 {
        state = Some(throttle::record_failure(state, NOW + i * 1000));
        assert_eq!(throttle::decide(state, NOW + i * 1000), Decision::Allowed, "failure {}", i + 1);
    }
    let at = NOW + 4000;
    state = Some(throttle::record_failure(state, at));
    assert_eq!(throttle::decide(state, at), Decision::Locked { retry_after_ms: MINUTE });
    assert_eq!(throttle::decide(state, at + MINUTE - 1), Decision::Locked { retry_after_ms: 1 });
    assert_eq!(throttle::decide(state, at).retry_after_s(), Some(60));
    assert_eq!(throttle::decide(state, at + MINUTE), Decision::Allowed);
}

#[test]
fn failures_after_a_lock_escalate_to_a_capped_lock() {
    let mut state: Option<ThrottleState> = None;
    let mut at = NOW;
    for _ in 0..5 {
        state = Some(throttle::record_failure(state, at));
    }
    let mut locks = Vec::new();
    for _ in 0..6 {
        let Decision::Locked { retry_after_ms } = throttle::decide(state, at) else { panic!("not locked at {at}") };
        locks.push(retry_after_ms / MINUTE);
        at += retry_after_ms; // the attacker waits out each lock exactly, then guesses again
        state = Some(throttle::record_failure(state, at));
    }
    assert_eq!(locks, [1, 2, 4, 8, 15, 15]);
}

#[test]
fn throttle_counter_resets_after_a_quiet_window() {
    let p = Policy::EMAIL;
    let mut state = None;
    for i in 0..4 {
        state = Some(p.record_failure(state, NOW + i));
    }
    // Four failures, then 15 quiet minutes: the next failure counts as the first.
    let later = NOW + 3 + p.window_ms;
    let next = p.record_failure(state, later);
    assert_eq!((next.failures, next.window_start, next.locked_until), (1, later, None));
    // But one minute short of that, it is the fifth and locks.
    let sooner = p.record_failure(state, later - MINUTE);
    assert_eq!(sooner.failures, 5);
    assert!(sooner.locked_until.is_some());
    // After a lock, the quiet window counts from the lock's end, not the window's start.
    let mut s = None;
    for _ in 0..5 {
        s = Some(p.record_failure(s, NOW));
    }
    let lock_end = s.unwrap().locked_until.unwrap();
    assert_eq!(p.record_failure(s, lock_end + p.window_ms - 1).failures, 6);
    assert_eq!(p.record_failure(s, lock_end + p.window_ms).failures, 1);
}

#[test]
fn throttle_state_persists_per_email_and_per_address() {
    let db = SqliteDb::migrated();
    let victim = LoginKeys::new("Ada@Example.com", Some("203.0.113.7"));
    for i in 0..4 {
        assert_eq!(block_on(throttle::note_failure(&db, &victim, NOW + i)).unwrap(), Decision::Allowed);
    }
    assert!(matches!(block_on(throttle::note_failure(&db, &victim, NOW + 4)).unwrap(), Decision::Locked { .. }));
    // Same email, differently cased, from another address: still locked (email key).
    let elsewhere = LoginKeys::new("  ada@EXAMPLE.com", Some("198.51.100.1"));
    let d = block_on(throttle::check(&db, &elsewhere, NOW + 5)).unwrap();
    assert_eq!(d.into_result(), Err(AuthError::Throttled { retry_after_s: 60 }));
    // Another email from the first address: allowed (address limit is higher)...
    let other = LoginKeys::new("bob@example.com", Some("203.0.113.7"));
    assert_eq!(block_on(throttle::check(&db, &other, NOW + 5)).unwrap(), Decision::Allowed);
    // ...until that address has sprayed 20 failures across accounts.
    for i in 0..15 {
        let k = LoginKeys::new(&format!("user{i}@example.com"), Some("203.0.113.7"));
        block_on(throttle::note_failure(&db, &k, NOW + 10 + i)).unwrap();
    }
    assert!(matches!(block_on(throttle::check(&db, &other, NOW + 30)).unwrap(), Decision::Locked { .. }));
    // The keys stored are hashes: no email or address in the table.
    let dump = serde_json::to_string(&block_on(db.query("SELECT * FROM login_throttle", &[])).unwrap()).unwrap();
    assert!(!dump.to_lowercase().contains("example.com") && !dump.contains("203.0.113.7"), "{dump}");
    // The lock ends; a success clears the email counter but not the address's.
    let after = NOW + 30 * MINUTE;
    assert_eq!(block_on(throttle::check(&db, &elsewhere, after)).unwrap(), Decision::Allowed);
    let held = block_on(throttle::reserve_held(&db, &victim, after)).unwrap();
    block_on(throttle::note_success(&db, &victim, &held)).unwrap();
    assert!(block_on(sessions::throttle::get(&db, &victim.email)).unwrap().is_none());
    assert!(block_on(sessions::throttle::get(&db, victim.address.as_deref().unwrap())).unwrap().is_some());
}

#[test]
fn throttle_store_round_trips_and_clears() {
    let db = SqliteDb::migrated();
    let key = throttle::email_key("ada@example.com");
    assert_eq!(block_on(sessions::throttle::get(&db, &key)).unwrap(), None);
    let s = ThrottleState { failures: 3, window_start: NOW, locked_until: None };
    block_on(sessions::throttle::put(&db, &key, &s)).unwrap();
    assert_eq!(block_on(sessions::throttle::get(&db, &key)).unwrap(), Some(s));
    let locked = ThrottleState { failures: 5, window_start: NOW, locked_until: Some(NOW + MINUTE) };
    block_on(sessions::throttle::put(&db, &key, &locked)).unwrap();
    assert_eq!(block_on(sessions::throttle::get(&db, &key)).unwrap(), Some(locked));
    block_on(sessions::throttle::clear(&db, &key)).unwrap();
    assert_eq!(block_on(sessions::throttle::get(&db, &key)).unwrap(), None);
}

// ---------------------------------------------------------------- errors

#[test]
fn auth_errors_map_to_statuses_without_leaking_internals() {
    let cases: [(AuthError, u16, &str); 3] = [
        (AuthError::Random, 500, "internal"),
        (AuthError::Hash("argon2: out of memory".into()), 500, "internal"),
        (AuthError::Throttled { retry_after_s: 61 }, 429, "too_many_attempts"),
    ];
    for (e, status, code) in cases {
        let api = ApiError::from(e.clone());
        assert_eq!((api.status, api.code.as_str()), (status, code), "{e}");
        assert!(!api.body().to_string().contains("argon2"), "{}", api.body());
    }
    let throttled = ApiError::from(AuthError::Throttled { retry_after_s: 61 });
    assert!(throttled.message.contains("2 minute(s)"), "{}", throttled.message);
}

/// Review of issue 11 part 7: giving back a good login's attempt undoes exactly that attempt,
/// the lock it set included, so a colleague's good login behind a sprayed office address
/// neither leaves a lock behind nor extends one.
#[test]
fn a_good_login_neither_leaves_nor_extends_a_lock_on_its_address() {
    let db = SqliteDb::migrated();
    let addr = Some("203.0.113.50");
    for i in 0..20 {
        let k = LoginKeys::new(&format!("sprayed{i}@example.com"), addr);
        assert_eq!(block_on(throttle::reserve_held(&db, &k, NOW + i)).unwrap().decision, Decision::Allowed);
    }
    let colleague = LoginKeys::new("colleague@example.com", addr);
    assert!(matches!(block_on(throttle::reserve(&db, &colleague, NOW + 30)).unwrap(), Decision::Locked { .. }));
    let t = NOW + MINUTE + 100;
    let held = block_on(throttle::reserve_held(&db, &colleague, t)).unwrap();
    assert_eq!(held.decision, Decision::Allowed);
    block_on(throttle::note_success(&db, &colleague, &held)).unwrap();
    let next = LoginKeys::new("another@example.com", addr);
    assert_eq!(
        block_on(throttle::reserve_held(&db, &next, t + 1)).unwrap().decision,
        Decision::Allowed,
        "the good login left a lock on its address"
    );
}
