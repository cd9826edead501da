//! `fetch_guarded` (imports by URL) against a scripted HTTP port that behaves like the Worker's
//! `fetch` adapter: redirects come back to the caller, bodies are cut at the limit, errors and
//! timeouts happen.

use flowcp::net::{fetch_guarded, FetchError, FetchPolicy, HttpError, HttpResponse};
use flowcp::store::block_on;

use crate::support::{resp, ScriptedHttp};

const OFF: FetchPolicy = FetchPolicy { allow_loopback: false };
const START: &str = "https://api.example.com/specs/openapi.json";

fn get(http: &ScriptedHttp, max_redirects: u8) -> Result<(url::Url, HttpResponse), FetchError> {
    block_on(fetch_guarded(
        http,
        START,
        OFF,
        &[("accept".into(), "application/json".into())],
        1000,
        5000,
        max_redirects,
    ))
}

#[test]
fn relative_and_absolute_redirects_are_followed_and_rechecked() {
    let http = ScriptedHttp::new([
        resp(301, &[("Location", "../v2/openapi.json")], b""),
        resp(302, &[("location", "https://cdn.example.net/o.json")], b""),
        resp(200, &[], b"{}"),
    ]);
    let (url, r) = get(&http, 3).unwrap();
    assert_eq!((url.as_str(), r.status), ("https://cdn.example.net/o.json", 200));
    let urls: Vec<String> = http.seen.borrow().iter().map(|r| r.url.clone()).collect();
    assert_eq!(urls, [START, "https://api.example.com/v2/openapi.json", "https://cdn.example.net/o.json"]);
    assert!(http.seen.borrow().iter().all(|r| r.method == "GET" && r.body.is_none() && r.timeout_ms == 5000));
    assert_eq!(http.seen.borrow()[2].headers, [("accept".to_string(), "application/json".to_string())]);
}

#[test]
fn redirect_limits_are_exact() {
    let hops = |n: usize| {
        let mut s: Vec<_> = (0..n).map(|i| resp(302, &[("location", &format!("/hop{i}"))], b"")).collect();
        s.push(resp(200, &[], b"{}"));
        ScriptedHttp::new(s)
    };
    assert!(get(&hops(2), 2).is_ok(), "exactly the allowed number of redirects");
    assert_eq!(get(&hops(3), 2).unwrap_err(), FetchError::TooManyRedirects);
    assert_eq!(get(&hops(1), 0).unwrap_err(), FetchError::TooManyRedirects);
}

#[test]
fn a_redirect_without_a_usable_location_is_refused() {
    let http = ScriptedHttp::new([resp(302, &[], b"")]);
    assert_eq!(get(&http, 3).unwrap_err(), FetchError::Blocked("a redirect without a Location".into()));
    let http = ScriptedHttp::new([resp(302, &[("location", "https://[::1")], b"")]);
    assert_eq!(get(&http, 3).unwrap_err(), FetchError::Blocked("a redirect to an invalid URL".into()));
}

#[test]
fn redirects_to_private_or_plain_http_targets_are_refused_before_any_request() {
    for (target, why) in [
        ("https://169.254.169.254/latest/meta-data", "private, loopback or reserved addresses are not allowed"),
        ("https://[::ffff:10.0.0.1]/x", "private, loopback or reserved addresses are not allowed"),
        ("https://metadata.google.internal/x", "internal host names are not allowed"),
        ("http://api.example.com/x", "only https URLs are allowed"),
    ] {
        let http = ScriptedHttp::new([resp(307, &[("location", target)], b"")]);
        assert_eq!(get(&http, 3).unwrap_err(), FetchError::Blocked(format!("redirect refused: {why}")), "{target}");
        assert_eq!(http.seen.borrow().len(), 1, "{target} was requested");
    }
    let http = ScriptedHttp::default();
    let r = block_on(fetch_guarded(&http, "https://10.1.2.3/x", OFF, &[], 1000, 5000, 3));
    assert!(matches!(r, Err(FetchError::Blocked(_))));
    assert!(http.seen.borrow().is_empty());
}

#[test]
fn not_modified_and_other_statuses_pass_through() {
    for status in [304, 200, 404, 500, 299, 400] {
        let http = ScriptedHttp::new([resp(status, &[("location", "https://x.example/")], b"body")]);
        let (_, r) = get(&http, 3).unwrap();
        assert_eq!((r.status, http.seen.borrow().len()), (status, 1), "{status}");
    }
}

#[test]
fn a_body_over_the_limit_is_too_large_and_one_at_the_limit_is_not() {
    let http = ScriptedHttp::new([resp(200, &[], &[b'x'; 1001])]);
    assert_eq!(get(&http, 3).unwrap_err(), FetchError::TooLarge(1000));
    let http = ScriptedHttp::new([resp(200, &[], &[b'x'; 1000])]);
    assert_eq!(get(&http, 3).unwrap().1.body.len(), 1000);
}

#[test]
fn network_errors_and_timeouts_are_reported() {
    let http = ScriptedHttp::new([Err(HttpError::Timeout), Err(HttpError::Network("connection refused".into()))]);
    assert_eq!(get(&http, 3).unwrap_err(), FetchError::Http(HttpError::Timeout));
    let e = get(&http, 3).unwrap_err();
    assert_eq!(e.to_string(), "network error: connection refused");
    assert_eq!(FetchError::Http(HttpError::Timeout).to_string(), "the request timed out");
    assert_eq!(FetchError::TooLarge(5).to_string(), "the response is larger than 5 bytes");
    assert_eq!(FetchError::TooManyRedirects.to_string(), "too many redirects");
    assert_eq!(FetchError::Blocked("why".into()).to_string(), "the URL is not allowed: why");
}

#[test]
fn response_headers_are_found_in_any_case() {
    let r = HttpResponse {
        status: 200,
        headers: vec![("Content-Type".into(), "text/yaml".into()), ("x-a".into(), "1".into())],
        body: vec![],
        truncated: false,
    };
    assert_eq!(r.header("content-type"), Some("text/yaml"));
    assert_eq!(r.header("X-A"), Some("1"));
    assert_eq!(r.header("location"), None);
}
