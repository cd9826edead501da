//! Peak heap while importing the amplifying documents (security review F3), measured by a
//! counting global allocator in this test binary of its own. Without the import ledger the
//! review's document alone allocates about a gigabyte.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use flowcp_engine::tools::{hostile_documents, import};

struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = CURRENT.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// What one import may add to the heap: the 72 MB output budget, a memo copy of what is
/// reused, the parsed document and transient copies. Without the ledger the first document
/// alone would need about a gigabyte.
const PEAK_BOUND: usize = 120 << 20;

// One test only: the counters are global to this binary.
#[test]
fn amplifying_documents_import_within_a_bounded_peak_heap() {
    for (name, bytes) in hostile_documents() {
        let base = CURRENT.load(Ordering::Relaxed);
        PEAK.store(base, Ordering::Relaxed);
        let result = import(&bytes).map(|r| r.tools.len());
        let peak = PEAK.load(Ordering::Relaxed) - base;
        println!("{name}: {} KB document, peak {} MB, {result:?}", bytes.len() / 1024, peak >> 20);
        assert!(peak < PEAK_BOUND, "{name}: peak heap {} MB", peak >> 20);
    }
    // Issue 18: a 20 MB document of 10,000 operations, imported as the Worker does (batches,
    // each tool kept only as its JSON). Held: the document's bytes (not counted here), an index
    // of its members, the tools' JSON (30 MB) and one batch.
    let bytes = flowcp_engine::tools::large_document(10_000);
    let base = CURRENT.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let ledger = flowcp_engine::openapi::Ledger::default();
    let mut importer = flowcp_engine::tools::Importer::new(&bytes, &ledger).expect("reads");
    let mut stored: Vec<String> = Vec::new();
    while let Some(batch) = importer.next_batch(flowcp_engine::tools::IMPORT_BATCH_TOOLS).expect("imports") {
        stored.extend(batch.iter().map(|t| serde_json::to_string(t).expect("json")));
    }
    let json: usize = stored.iter().map(String::len).sum();
    let peak = PEAK.load(Ordering::Relaxed) - base;
    println!(
        "large-10000: {} KB document, {} KB of tools as JSON, peak {} MB",
        bytes.len() / 1024,
        json / 1024,
        peak >> 20
    );
    assert_eq!(stored.len(), 10_000);
    assert!(peak < json + LARGE_WORKING_BOUND, "large-10000: peak heap {} MB", peak >> 20);
}

/// What a batched import holds besides the tools' JSON: the member index and one batch.
const LARGE_WORKING_BOUND: usize = 24 << 20;
