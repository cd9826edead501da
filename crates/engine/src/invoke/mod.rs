//! ToolDef + arguments + credential -> the exact upstream HTTP request ([`RequestPlan`]);
//! argument validation against the input schema; upstream response -> MCP tool result.
//!
//! Invariants:
//! - Works from a [`crate::tools::ToolDef`] alone: never parses an OpenAPI document.
//! - Argument names (schema properties) and wire names are mapped explicitly through
//!   `ParamDef { arg, wire }`; nothing is guessed from the argument's spelling.
//! - Header values never contain CR/LF/NUL (refused, not stripped).
//! - Deterministic: the same inputs give byte-identical requests (multipart boundary too).
//! - An upstream failure is a tool result with `isError: true`, not a protocol error.

/// The percent and cookie encodings of request values (redaction matches them too).
pub mod encode;
mod plan;
mod response;
mod validate;

pub use plan::{build_request, Credential, PlanError, RequestPlan};
pub use response::{
    invalid_arguments_result, map_response, map_response_with, CallToolResult, Content, ResponseBudget, ResponseOutcome,
};
pub use validate::{
    compile_pattern, format_ok, validate_arguments, validate_response, validate_tool_arguments, validate_value,
    MAX_PROBLEMS,
};
