//! What an import may produce: a byte ledger charged for everything the engine copies or
//! generates, checked while generating, and a memo of normalised `$ref` targets.
//!
//! Why: a schema node budget bounds how many nodes are produced, not how big they are. One
//! 400 KB `enum` referenced from 2,500 properties is 5,000 nodes and a gigabyte of copies
//! (security review F3). The ledger charges the memory of every value it copies, so the
//! total output of one import is bounded whatever the document does; once it
//! is spent, every later copy is refused at once and the import ends with
//! [`super::LoadError::OutputTooLarge`].
//!
//! Sizes are bytes of memory (`Value` nodes, strings, object entries), estimated by a walk
//! that stops as soon as it passes what is left, so a refused copy costs no more than the
//! budget.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};

use serde_json::Value;

/// Bytes of memory one import may produce (as `Value`s): see `docs/openapi-engine.md` for
/// what the largest real documents take.
pub const IMPORT_OUTPUT_BYTES: usize = 72 << 20;

/// Bytes charged for each schema node produced (the node; its keyword values are charged as
/// they are copied).
pub const NODE_BYTES: usize = VALUE_BYTES + ENTRY_BYTES;

/// One normalised `$ref` expansion kept for reuse.
pub(crate) struct Memo {
    pub value: Value,
    /// Node budget it took.
    pub nodes: usize,
    /// Bytes it was charged.
    pub bytes: usize,
    pub warnings: Vec<String>,
}

/// A memo key: the ref, the schema mode, the depth it was expanded at and the refs open
/// around it. Everything a `$ref` expansion depends on, besides the budgets, is in it, so a
/// hit gives exactly what a fresh expansion would.
pub(crate) type MemoKey = (String, bool, usize, Vec<String>);

/// The byte budget of one import, shared by every schema normaliser and tool builder.
pub struct Ledger {
    limit: usize,
    used: Cell<usize>,
    over: Cell<bool>,
    seen: RefCell<HashSet<MemoKey>>,
    memo: RefCell<HashMap<MemoKey, std::rc::Rc<Memo>>>,
    /// The parts (operations) that were charged the most, largest first.
    largest: RefCell<Vec<(String, usize)>>,
    memo_hits: Cell<usize>,
    /// Bytes copied only for the time of one step (a `$ref` target overlaid with siblings).
    transient: Cell<usize>,
    /// Bytes charged by earlier batches (handed over and dropped by the caller), and their limit.
    total: Cell<usize>,
    total_limit: usize,
    over_total: Cell<bool>,
}

/// Bytes (as `Value`s) one import may produce over all its batches, when the caller stores
/// and drops each batch ([`crate::tools::Importer`]): the bound of what one import writes.
/// The generated 10,000-operation document takes about 100 MB.
pub const IMPORT_TOTAL_OUTPUT_BYTES: usize = 256 << 20;

/// Bytes an import may copy transiently (not kept, so not charged, but work all the same): the
/// largest real documents copy under 100 MB this way.
pub const IMPORT_TRANSIENT_BYTES: usize = 1 << 30;

/// How many of the largest parts an over-budget error names.
const LARGEST_KEPT: usize = 3;

impl Default for Ledger {
    fn default() -> Self {
        Ledger::new(IMPORT_OUTPUT_BYTES)
    }
}

impl Ledger {
    pub fn new(limit: usize) -> Self {
        Ledger {
            limit,
            used: Cell::new(0),
            over: Cell::new(false),
            seen: RefCell::new(HashSet::new()),
            memo: RefCell::new(HashMap::new()),
            largest: RefCell::new(Vec::new()),
            memo_hits: Cell::new(0),
            transient: Cell::new(0),
            total: Cell::new(0),
            total_limit: IMPORT_TOTAL_OUTPUT_BYTES.max(limit),
            over_total: Cell::new(false),
        }
    }

    /// A batch of output was handed over (and will be dropped): its bytes move to the import's
    /// total and the batch budget starts again, with an empty memo. False (and the ledger is
    /// over) once the total passes [`IMPORT_TOTAL_OUTPUT_BYTES`].
    pub fn end_batch(&self) -> bool {
        let total = self.total.get().saturating_add(self.used.get());
        self.total.set(total);
        self.used.set(0);
        self.clear_memo();
        if total > self.total_limit {
            self.over.set(true);
            self.over_total.set(true);
        }
        !self.over.get()
    }

    /// Bytes charged over every batch so far.
    pub fn total(&self) -> usize {
        self.total.get() + self.used.get()
    }

    /// Account a transient copy of `v` against the work limit ([`IMPORT_TRANSIENT_BYTES`]);
    /// false (and the ledger is over) past it.
    pub fn copy_transient(&self, v: &Value) -> bool {
        let left = IMPORT_TRANSIENT_BYTES.saturating_sub(self.transient.get());
        match value_size_within(v, left).filter(|_| !self.over.get()) {
            Some(n) => {
                self.transient.set(self.transient.get() + n);
                true
            }
            None => {
                self.over.set(true);
                false
            }
        }
    }

    /// Bytes copied transiently so far.
    pub fn transient(&self) -> usize {
        self.transient.get()
    }

    /// How many `$ref` expansions were taken from the memo.
    pub fn memo_hits(&self) -> usize {
        self.memo_hits.get()
    }

    /// Record what one part (an operation, by JSON pointer) was charged since `used_before`;
    /// a part that tripped the limit is recorded with at least what was left for it.
    pub fn note_part(&self, pointer: &str, used_before: usize) {
        let mut bytes = self.used().saturating_sub(used_before);
        if self.is_over() {
            bytes = bytes.max(self.limit.saturating_sub(used_before));
        }
        let mut largest = self.largest.borrow_mut();
        if largest.len() == LARGEST_KEPT && largest.last().is_some_and(|(_, n)| *n >= bytes) {
            return;
        }
        largest.push((pointer.to_string(), bytes));
        largest.sort_by_key(|p| std::cmp::Reverse(p.1));
        largest.truncate(LARGEST_KEPT);
    }

    /// The error an import ends with once the ledger is over.
    pub fn too_large(&self) -> super::LoadError {
        let limit = if self.over_total.get() { self.total_limit } else { self.limit };
        super::LoadError::OutputTooLarge { limit, largest: self.largest.borrow().clone() }
    }

    /// Bytes charged so far.
    pub fn used(&self) -> usize {
        self.used.get()
    }

    /// True once a charge was refused: the import's output is incomplete.
    pub fn is_over(&self) -> bool {
        self.over.get()
    }

    /// Bytes still available.
    pub fn remaining(&self) -> usize {
        if self.over.get() {
            0
        } else {
            self.limit - self.used.get()
        }
    }

    /// Charge `bytes`; false (and the ledger is over for good) when they do not fit.
    pub fn charge(&self, bytes: usize) -> bool {
        if self.over.get() {
            return false;
        }
        match self.used.get().checked_add(bytes) {
            Some(total) if total <= self.limit => {
                self.used.set(total);
                true
            }
            _ => {
                self.over.set(true);
                false
            }
        }
    }

    /// Charge a copy of `v`; false when it does not fit (the walk stops there).
    pub fn charge_value(&self, v: &Value) -> bool {
        let left = self.remaining();
        match value_size_within(v, left) {
            Some(n) => self.charge(n),
            None => {
                self.over.set(true);
                false
            }
        }
    }

    /// Forget every memoised expansion (they belong to one document).
    pub fn clear_memo(&self) {
        self.memo.borrow_mut().clear();
        self.seen.borrow_mut().clear();
    }

    pub(crate) fn memo_get(&self, key: &MemoKey) -> Option<std::rc::Rc<Memo>> {
        let hit = self.memo.borrow().get(key).cloned();
        if hit.is_some() {
            self.memo_hits.set(self.memo_hits.get() + 1);
        }
        hit
    }

    /// Remember that `key` was expanded once; true if it had been before (worth keeping).
    /// The key is charged (its refs can be long and the stack is copied into it).
    pub(crate) fn memo_seen(&self, key: &MemoKey) -> bool {
        if self.seen.borrow().contains(key) {
            return true;
        }
        let size = key.0.len() + key.3.iter().map(|r| r.len() + 24).sum::<usize>() + 96;
        if self.charge(size) {
            self.seen.borrow_mut().insert(key.clone());
        }
        false
    }

    pub(crate) fn memo_put(&self, key: MemoKey, memo: Memo) {
        self.memo.borrow_mut().insert(key, std::rc::Rc::new(memo));
    }
}

/// Bytes of memory one `Value` node takes besides what it points to (80 with
/// `preserve_order`, whose maps are index maps).
const VALUE_BYTES: usize = std::mem::size_of::<Value>();
/// Bytes of memory one object entry takes besides its key's text and its value: the entry
/// (hash, key `String`, value) and its slot in the index table.
const ENTRY_BYTES: usize = 8 + std::mem::size_of::<String>() + 8;

/// The memory a copy of `v` takes (its nodes, strings, keys and entries), or `None` as soon as
/// it passes `max`.
pub fn value_size_within(v: &Value, max: usize) -> Option<usize> {
    let mut total = 0usize;
    let mut stack = vec![v];
    while let Some(v) = stack.pop() {
        total += VALUE_BYTES;
        match v {
            Value::String(s) => total += s.len(),
            Value::Array(a) => stack.extend(a.iter()),
            Value::Object(m) => {
                for (k, x) in m {
                    total += ENTRY_BYTES + k.len();
                    stack.push(x);
                }
            }
            _ => {}
        }
        if total > max {
            return None;
        }
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_ledger_refuses_past_its_limit_and_stays_refused() {
        let l = Ledger::new(100);
        assert!(l.charge(60));
        assert!(!l.charge(41));
        assert!(l.is_over());
        assert!(!l.charge(1), "once over, nothing more is charged");
        assert_eq!(l.remaining(), 0);
    }

    #[test]
    fn sizes_count_every_node_and_the_walk_stops_early() {
        let v = json!({"a": [1, "xyz", null], "bb": {"c": true}});
        // 7 nodes, 3 entries with 4 key bytes, 3 string bytes.
        let expected = 7 * VALUE_BYTES + 3 * ENTRY_BYTES + 4 + 3;
        assert_eq!(value_size_within(&v, usize::MAX), Some(expected));
        assert_eq!(value_size_within(&v, 10), None);
    }
}
