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

pub mod doc;
pub mod ledger;
pub mod load;
pub mod pointer;
pub mod schema;
pub mod swagger2;

pub use doc::{
    document_info, security_schemes, servers_of, ApiKeyLocation, DocumentInfo, OAuthFlowInfo, SecuritySchemeInfo,
    SecuritySchemeKind,
};
pub use ledger::{Ledger, IMPORT_OUTPUT_BYTES};
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

impl Problem {
    pub fn warning(pointer: impl Into<String>, message: impl Into<String>) -> Self {
        Problem { pointer: pointer.into(), severity: Severity::Warning, message: message.into() }
    }
    pub fn error(pointer: impl Into<String>, message: impl Into<String>) -> Self {
        Problem { pointer: pointer.into(), severity: Severity::Error, message: message.into() }
    }
}
