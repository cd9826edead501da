//! FlowCP's OpenAPI engine: an OpenAPI 3.x or Swagger 2.0 document in, MCP tool definitions
//! out ([`tools::import`]); a tool call's arguments in, an exact upstream request plan out
//! ([`invoke::build_request`]); an upstream answer in, an MCP tool result out
//! ([`invoke::map_response`]).
//!
//! - `openapi`: read (JSON or YAML), upgrade 2.0 to 3.x, resolve `$ref`s, normalise schemas;
//! - `tools`: operations to `ToolDef`s, names, the import report;
//! - `invoke`: request plans, argument validation, response mapping.
//!
//! It never touches the Worker, storage or the network: callers bring bytes and send what it
//! plans. The host CLI, the fuzz targets and the Worker all use it the same way.

pub mod invoke;
pub mod openapi;
pub mod tools;
