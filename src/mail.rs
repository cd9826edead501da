//! The email port: the messages FlowCP sends (address verification, password reset,
//! invitations) and the ways it can send them.
//!
//! - [`Mailer::Outbox`], for `make dev` and the tests: each message is kept in KV for a day
//!   under `outbox:<sha256 of the lowercased address>` (the last [`OUTBOX_KEEP`] per address),
//!   and the development-only route `GET /dev/outbox?to=<address>` shows them. Never allowed
//!   outside `FLOWCP_ENV=development` (`config::mailer`).
//! - [`Mailer::Http`], for production: an HTTP email API chosen by configuration (Resend's
//!   `POST /emails` shape: JSON `{from, to, subject, text}` with `Authorization: Bearer <key>`;
//!   the key is the secret `FLOWCP_EMAIL_API_KEY`). It goes through the [`Http`] port, so host
//!   tests script it.
//! - [`Mailer::Off`]: no provider configured; sending fails with `503 email_unavailable`.
//!
//! Links carry their token in the URL fragment (`#token=`), which browsers never send to a
//! server or in a `Referer`, so a token does not land in access logs; the page posts it.

use serde::{Deserialize, Serialize};

use crate::crypto::sha256_hex;
use crate::net::{Http, HttpRequest};
use crate::store::{Kv, StoreError};

/// How many messages the development outbox keeps per address.
pub const OUTBOX_KEEP: usize = 20;
const OUTBOX_TTL_S: u64 = 24 * 60 * 60;
const SEND_TIMEOUT_MS: u32 = 10_000;

/// One message, plain text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Email {
    pub to: String,
    pub subject: String,
    pub text: String,
}

/// How email leaves FlowCP.
#[derive(Clone, PartialEq, Eq)]
pub enum Mailer {
    Outbox,
    Http { endpoint: String, from: String, api_key: String },
    Off,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Mailer::Outbox => f.write_str("Outbox"),
            Mailer::Http { endpoint, from, .. } => {
                f.debug_struct("Http").field("endpoint", endpoint).field("from", from).finish_non_exhaustive()
            }
            Mailer::Off => f.write_str("Off"),
        }
    }
}

/// Why a message was not sent (never carries the provider key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailError {
    /// No email provider is configured.
    Off,
    /// The provider refused or could not be reached.
    Provider(String),
    Store(StoreError),
}

impl std::fmt::Display for MailError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MailError::Off => f.write_str("no email provider is configured"),
            MailError::Provider(m) => write!(f, "the email provider failed: {m}"),
            MailError::Store(e) => write!(f, "outbox: {e}"),
        }
    }
}

/// Outbox KV key of an address.
pub fn outbox_key(address: &str) -> String {
    format!("outbox:{}", sha256_hex(address.trim().to_lowercase().as_bytes()))
}

/// Sends one message.
pub async fn send(mailer: &Mailer, kv: &impl Kv, http: &impl Http, email: &Email) -> Result<(), MailError> {
    match mailer {
        Mailer::Off => Err(MailError::Off),
        Mailer::Outbox => {
            let key = outbox_key(&email.to);
            let mut kept = outbox(kv, &email.to).await.map_err(MailError::Store)?;
            kept.push(email.clone());
            let drop = kept.len().saturating_sub(OUTBOX_KEEP);
            kept.drain(..drop);
            let bytes = serde_json::to_vec(&kept).map_err(|e| MailError::Provider(e.to_string()))?;
            kv.put(&key, &bytes, Some(OUTBOX_TTL_S)).await.map_err(MailError::Store)
        }
        Mailer::Http { endpoint, from, api_key } => {
            let body =
                serde_json::json!({ "from": from, "to": [email.to], "subject": email.subject, "text": email.text });
            let req = HttpRequest {
                method: "POST".into(),
                url: endpoint.clone(),
                headers: vec![
                    ("content-type".into(), "application/json".into()),
                    ("authorization".into(), format!("Bearer {api_key}")),
                ],
                body: Some(body.to_string().into_bytes()),
                timeout_ms: SEND_TIMEOUT_MS,
            };
            match http.send(&req, 4096).await {
                Ok(r) if (200..300).contains(&r.status) => Ok(()),
                // The provider's answer is not echoed: it could quote the request.
                Ok(r) => Err(MailError::Provider(format!("HTTP {}", r.status))),
                Err(e) => Err(MailError::Provider(match e {
                    crate::net::HttpError::Timeout => "timeout".into(),
                    crate::net::HttpError::Network(_) => "network error".into(),
                })),
            }
        }
    }
}

/// The development outbox of an address, oldest first (a corrupt value reads as empty).
pub async fn outbox(kv: &impl Kv, address: &str) -> Result<Vec<Email>, StoreError> {
    Ok(kv.get(&outbox_key(address)).await?.and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default())
}

/// The address-verification message.
pub fn verification(origin: &str, to: &str, token: &str) -> Email {
    Email {
        to: to.to_string(),
        subject: "Verify your email address for FlowCP".into(),
        text: format!(
            "Confirm that {to} is your address by opening this link within 24 hours:\n\n\
             {origin}/verify-email#token={token}\n\n\
             Until you do, you can sign in but not join workspaces, create access keys or publish.\n\
             If you did not sign up for FlowCP, ignore this message."
        ),
    }
}

/// The link that moves an account to a new address, sent to that address.
pub fn email_change(origin: &str, to: &str, token: &str) -> Email {
    Email {
        to: to.to_string(),
        subject: "Confirm your new email address for FlowCP".into(),
        text: format!(
            "Someone signed in to FlowCP asked to use {to} as their account's address. To confirm, \
             open this link within 24 hours while signed in to that account:\n\n\
             {origin}/confirm-email#token={token}\n\n\
             Until you do, the account keeps its current address. If you did not ask for this, \
             ignore this message."
        ),
    }
}

/// Sent instead of the link when another account already uses the asked-for address (so the
/// request costs the same either way, and the address's owner hears of the attempt).
pub fn email_change_refused(to: &str) -> Email {
    Email {
        to: to.to_string(),
        subject: "Someone asked to move a FlowCP account to your address".into(),
        text: format!(
            "Someone signed in to a FlowCP account asked to use {to} as its address. Your account \
             already uses it, so nothing changed and nothing needs doing. If this keeps happening, \
             tell the operator (see /.well-known/security.txt)."
        ),
    }
}

/// The notice sent to an account's previous address once it moved to a new one.
/// The new address is masked (`a•••@example.com`): the old mailbox may no longer be the
/// owner's.
pub fn email_changed(to: &str, new_email: &str) -> Email {
    let masked = match new_email.split_once('@') {
        Some((local, domain)) => format!("{}•••@{domain}", local.chars().next().unwrap_or('•')),
        None => "•••".to_string(),
    };
    Email {
        to: to.to_string(),
        subject: "Your FlowCP address was changed".into(),
        text: format!(
            "The FlowCP account that used {to} now uses {masked}. Links sent to {to} before the change \
             no longer work. If you did not make this change, contact the operator at once (see \
             /.well-known/security.txt)."
        ),
    }
}

/// The password-reset message.
pub fn password_reset(origin: &str, to: &str, token: &str) -> Email {
    Email {
        to: to.to_string(),
        subject: "Reset your FlowCP password".into(),
        text: format!(
            "Someone asked to reset the FlowCP password of {to}. To choose a new password, open this \
             link within 30 minutes (it works once):\n\n\
             {origin}/reset-password#token={token}\n\n\
             Resetting signs you out everywhere. If you did not ask for this, ignore this message: \
             your password stays as it is."
        ),
    }
}

/// The invitation message. Names were cleaned at entry (no control, format or bidi characters).
pub fn invitation(origin: &str, to: &str, token: &str, inviter: &str, workspace: &str, role: &str) -> Email {
    Email {
        to: to.to_string(),
        subject: format!("You are invited to the FlowCP workspace \"{workspace}\""),
        text: format!(
            "{inviter} invited {to} to join the FlowCP workspace \"{workspace}\" as {role}.\n\n\
             To accept, sign in (or sign up) as {to}, verify the address, and open this link within \
             7 days:\n\n\
             {origin}/invitations/accept#token={token}\n\n\
             If you do not know this person or workspace, ignore this message: nothing happens \
             until you accept."
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{block_on, MemoryKv};

    struct NoHttp;
    impl Http for NoHttp {
        async fn send(&self, _: &HttpRequest, _: usize) -> Result<crate::net::HttpResponse, crate::net::HttpError> {
            Err(crate::net::HttpError::Network("unreachable".into()))
        }
    }

    #[test]
    fn the_outbox_keeps_the_newest_messages_per_address_and_debug_hides_the_key() {
        let kv = MemoryKv::default();
        for i in 0..(OUTBOX_KEEP + 3) {
            let m = Email { to: "A@Example.com".into(), subject: format!("s{i}"), text: "t".into() };
            block_on(send(&Mailer::Outbox, &kv, &NoHttp, &m)).unwrap();
        }
        let kept = block_on(outbox(&kv, "a@example.com")).unwrap();
        assert_eq!(kept.len(), OUTBOX_KEEP);
        assert_eq!(kept.last().unwrap().subject, format!("s{}", OUTBOX_KEEP + 2));
        assert_eq!(kv.entries.borrow().values().next().unwrap().1, Some(OUTBOX_TTL_S));
        let m = Mailer::Http { endpoint: "https://e".into(), from: "f".into(), api_key: "re_SECRET".into() };
        assert!(!format!("{m:?}").contains("SECRET"));
        let err =
            block_on(send(&m, &kv, &NoHttp, &Email { to: "x@y.z".into(), subject: "s".into(), text: "t".into() }));
        assert_eq!(err, Err(MailError::Provider("network error".into())));
        assert_eq!(
            block_on(send(
                &Mailer::Off,
                &kv,
                &NoHttp,
                &Email { to: "x@y.z".into(), subject: "s".into(), text: "t".into() }
            )),
            Err(MailError::Off)
        );
    }
}
