//! The audit queue (issue 19): the MCP hot path sends each call's [`AuditEvent`] to a Cloudflare
//! Queue after the response, and the queue's consumer writes a delivery (up to 100 events) to D1
//! here. Delivery is at least once, so the write is idempotent by the event's id
//! (`store::audit::insert_chunks`), and the plans' counters follow the rows that are actually
//! inserted (migration 0015's trigger).
//!
//! A message is one event as JSON text ([`encode`]). The consumer treats it as hostile input
//! ([`decode`] bounds every field): a message that cannot be read, or whose write fails, is
//! retried, and after the queue's `max_retries` lands in the dead-letter queue, where it stays
//! for inspection and replay (`docs/operations.md`). Nothing is acknowledged unwritten.

use crate::store::audit::{self, AuditEvent};
use crate::store::Db;

/// The most messages one `sendBatch` takes (Cloudflare Queues).
pub const SEND_BATCH: usize = 100;
/// The largest message body accepted (an event is about 400 bytes).
pub const MAX_MESSAGE_BYTES: usize = 4096;

/// One message's body.
pub fn encode(e: &AuditEvent) -> Result<String, serde_json::Error> {
    serde_json::to_string(e)
}

/// How far ahead of the consumer's clock an event's time may be (clock skew between isolates).
const MAX_CLOCK_SKEW_MS: i64 = 86_400_000;

/// Reads one message's body, refusing what the hot path never sends. Errors name the problem,
/// never a field's value (they are logged).
pub fn decode(body: &str, now_ms: i64) -> Result<AuditEvent, String> {
    if body.len() > MAX_MESSAGE_BYTES {
        return Err(format!("a message of {} bytes (at most {MAX_MESSAGE_BYTES})", body.len()));
    }
    let e: AuditEvent = serde_json::from_str(body).map_err(|e| {
        format!("not an audit event ({:?} error at line {} column {})", e.classify(), e.line(), e.column())
    })?;
    let short = |name: &str, v: &str, max: usize| {
        if v.is_empty() || v.len() > max {
            Err(format!("`{name}` is empty or longer than {max} bytes"))
        } else {
            Ok(())
        }
    };
    short("id", &e.id, 64)?;
    if !e.id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err("`id` is not an event id".into());
    }
    short("workspace_id", &e.workspace_id, 128)?;
    short("server_id", &e.server_id, 128)?;
    short("tool_name", &e.tool_name, 256)?;
    if let Some(c) = &e.connection_hash {
        short("connection_hash", c, 64)?;
    }
    if e.target.as_ref().is_some_and(|t| t.len() > 512) {
        return Err("`target` is longer than 512 bytes".into());
    }
    if e.ts_ms < 0 || e.latency_ms < 0 || e.request_bytes < 0 || e.response_bytes < 0 {
        return Err("a negative time or size".into());
    }
    // A time the hot path cannot have made; it would also start a counter for a future month.
    if e.ts_ms > now_ms.saturating_add(MAX_CLOCK_SKEW_MS) {
        return Err("a time more than a day in the future".into());
    }
    Ok(e)
}

/// What the consumer does with each message of a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Written (or already written: a redelivery): acknowledge.
    Ack,
    /// Not written: deliver again later (after `max_retries`, to the dead-letter queue).
    Retry,
}

/// The outcome of one delivery, for the consumer's log line.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Delivery {
    /// One per message, in order.
    pub verdicts: Vec<Verdict>,
    /// Events handed to D1 in statements that succeeded (duplicates included).
    pub written: usize,
    /// Messages that could not be read.
    pub undecodable: usize,
    /// Events whose statement failed.
    pub failed: usize,
    /// The first problem, for the log (no event's content).
    pub first_error: Option<String>,
}

/// Writes one delivery: `bodies[i]` is message i's body (`None`: not text).
pub async fn consume(db: &impl Db, bodies: &[Option<String>], now_ms: i64) -> Delivery {
    let mut d = Delivery { verdicts: vec![Verdict::Retry; bodies.len()], ..Delivery::default() };
    let mut events = Vec::with_capacity(bodies.len());
    let mut index = Vec::with_capacity(bodies.len());
    for (i, body) in bodies.iter().enumerate() {
        let decoded = match body.as_deref() {
            Some(text) => decode(text, now_ms),
            None => Err("a message body that is not text".to_string()),
        };
        match decoded {
            Ok(e) => {
                events.push(e);
                index.push(i);
            }
            Err(e) => {
                d.undecodable += 1;
                d.first_error.get_or_insert(e);
            }
        }
    }
    for &i in &index {
        d.verdicts[i] = Verdict::Ack;
    }
    d.written = events.len();
    for (range, e) in audit::insert_chunks(db, &events).await {
        d.written -= range.len();
        d.failed += range.len();
        d.first_error.get_or_insert(e.to_string());
        for k in range {
            d.verdicts[index[k]] = Verdict::Retry;
        }
    }
    d
}
