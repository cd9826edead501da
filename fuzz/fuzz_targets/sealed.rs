//! Fuzz the sealed-token and envelope parsers: OAuth codes, access and refresh tokens
//! (`fcp_<kind>.<connection>.fcp1.<key id>.<base64url>`) and bare envelopes (credentials).
//!
//! Invariant: nothing panics, and only a token FlowCP sealed opens. The seed corpus holds the
//! four values below (sealed with the fixed test key); the fuzzer mutates them, and any
//! changed byte, dropped part or alternative spelling must fail to open.

#![no_main]

use flowcp::crypto::{aad_server_credential, Keyring};
use flowcp::oauth::tokens::{connection_of, open, Kind};
use libfuzzer_sys::fuzz_target;

const KEY: &str = "k1:1111111111111111111111111111111111111111111111111111111111111111";
const AUDIENCE: &str = "https://flowcp.example/mcp/srv_A";
const NOW: i64 = 1_800_000_000_001;

/// What opens: the seeds (also in `fuzz/seeds/sealed/`), by kind.
const SEALED: [&str; 4] = [
    "fcp_ac.conn_1.fcp1.k1.vrVvdjd8300ZsHDLxom7D1YgX51Y3iGXXOqmiGu2KfwxwLdBOOIeHydBsie-a0r8nBLcq9CuiJ2L1o39ovtF4o2WVBQYAnryWTnURII8hHokdXu0tuRVjb8SyVT1O5zmKH--Gs56injNMK7LRi54gU0X0QzGIv2hAMo2RECyhJe9FS9n93qYjF4EqH93aEIpeUqDBHOzhxBeBS-Y7m6JVime7phZaqIL5f-ITV92vQ21uxjPVp0iuijKlAWZf26NF3JfRagfEEtUnnBVVB3BEFt5hOTMBAcLoePiNi-TdUX_pv0GTglmzlfbT-bXMXic3btXVE6XEQ",
    "fcp_at.conn_1.fcp1.k1.uiyCc7rtbmT2INhLp_pv3llsl4R6eB4B9D81vpC7TESa0utR1PW2hQnllqvTLj0Hvsf7wulWeU_Ja-k08egwAKdwZ7kuSBCLLuWbn8OfkAz7LjRD0vyq3n2TSUT0IU_3lqcqQeLMLV1lXSZpNZE7xwEDFBXaJzxxlQc9Y9bBI5-nSwm3l1wcQgkihNTzMXfvq34w7xSicvcVqy0ZrSJ1h3tguwhOJj0F9h57Y_428tlFuGgwRxcxfREcy26Xt6vn_ZEjpW4H6gifvnmD1agjhbhBM9S_oT2ouE4jeIzSpxVoPhZot2eH9Er0zzwsWSr60yjz8XHhZg",
    "fcp_rt.conn_1.fcp1.k1.yTOOjIfTqbR458rTNmKkaVIcMJCwZgPU6mdV-DvRN6y2g8sJfqb-Cu0ytpb1TUU2eGOx3FpHsrhHPXjMMEiZVQgk5C1Re2Ce9-3nFSvprLH5B_ivluFhbwQ6odR_MkzNhvigBvwmKOlbZrlI_HzfryEMqDN8wXgToowTWElCeQGZ7faF9d7zivdQmxi_UnsUyhPWh16qwXWkClvEzFT4sSL2gV6WBLArwryuYXivW5Y15bB1LmtwMUr2tgNOj5QASImpZ09gao53Ae4p9FDT1HpznfVN7ZN4Hstrq03IuVREJefPnxkrYUldCqcc-hKWtYeFKjvSSw",
    "fcp1.k1.ZnZNMfeP1Z24Ji6Ey4vr9vXT2c1Zhhlw2n7c_BmH33dQ0SMXmcvSR3HLAnPXpNteSQ",
];

thread_local! {
    static RING: Keyring = Keyring::parse(KEY).expect("the key parses");
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    RING.with(|ring| {
        for (i, kind) in [Kind::Code, Kind::Access, Kind::Refresh].into_iter().enumerate() {
            let _ = connection_of(text, kind);
            if let Ok((connection, grant)) = open(ring, kind, AUDIENCE, text, NOW) {
                assert_eq!(text, SEALED[i], "a token that FlowCP did not seal opened as {kind:?}");
                assert_eq!((connection.as_str(), grant.upstream.access_token.as_str()), ("conn_1", "upstream-access-secret"));
            }
        }
        if let Ok(plain) = ring.open(text, &aad_server_credential("srv_A")) {
            assert_eq!(text, SEALED[3], "an envelope that FlowCP did not seal opened");
            assert_eq!(plain, b"upstream-secret-value");
        }
    });
});
