//! The OpenAPI half of the engine: read a document, upgrade Swagger 2.0, resolve local
//! `$ref`s and normalise schemas to JSON Schema 2020-12.
//!
//! Invariants:
//! - The input is hostile. Nothing here panics, indexes blindly or recurses without a depth
//!   bound; a `$ref` cycle is cut into a permissive schema with a description.
//! - Only local JSON pointers (`#/...`) are followed; an external `$ref` becomes a permissive
//!   schema plus a warning.
//! - The document is handled as `serde_json::Value` (with `preserve_order`), never through a
//!   typed model of the whole input language, so 2.0, 3.0, 3.1 and 3.2 share one code path.
//! - No Worker types: all of this runs on the host under `cargo test`.

pub mod bundle;
pub mod doc;
pub mod lazy;
pub mod ledger;
pub mod load;
pub mod pointer;
pub mod portable;
pub mod schema;
pub mod swagger2;

pub use doc::{
    document_info, security_schemes, servers_of, ApiKeyLocation, DocumentInfo, OAuthFlowInfo, SecuritySchemeInfo,
    SecuritySchemeKind,
};
pub use ledger::{Ledger, IMPORT_OUTPUT_BYTES, IMPORT_TOTAL_OUTPUT_BYTES};
pub use load::{load_document, LoadError, SpecVersion, MAX_DOCUMENT_BYTES};
pub use pointer::{escape_token, Resolver};
pub use schema::{SchemaMode, SchemaNormaliser};

use serde::{Deserialize, Serialize};

/// How bad a problem found during import is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The operation was imported; something was approximated or ignored.
    Warning,
    /// The operation (or part of the document) was skipped.
    Error,
}

/// One problem, located by the JSON pointer of the node it concerns.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Problem {
    pub pointer: String,
    pub severity: Severity,
    pub message: String,
}

/// Longest pointer or message a problem keeps (bytes, cut on a character boundary): a
/// pointer holds a path and a message may quote a `$ref`, both document-controlled, and a
/// problem can be repeated per operation.
pub const MAX_PROBLEM_TEXT: usize = 512;

fn clip_text(s: impl Into<String>) -> String {
    let mut s = s.into();
    if s.len() > MAX_PROBLEM_TEXT {
        let mut cut = MAX_PROBLEM_TEXT - 3;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s
}

impl Problem {
    pub fn warning(pointer: impl Into<String>, message: impl Into<String>) -> Self {
        Problem { pointer: clip_text(pointer), severity: Severity::Warning, message: clip_text(message) }
    }
    pub fn error(pointer: impl Into<String>, message: impl Into<String>) -> Self {
        Problem { pointer: clip_text(pointer), severity: Severity::Error, message: clip_text(message) }
    }

    /// What the problem takes in memory (for the import ledger).
    pub fn size(&self) -> usize {
        self.pointer.len() + self.message.len() + 64
    }
}
