//! The domain layer: the product's use cases and rules, between the HTTP handlers (`api/`,
//! which extract, call and render) and the tables (`store/`, which hold all SQL).
//!
//! Modules here never import `api/`; rules are pure functions, unit-tested as tables.

pub mod accounts;
pub mod curation;
pub mod lifecycle;
pub mod members;
pub mod reseal;
pub mod verify;
