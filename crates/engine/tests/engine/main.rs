//! OpenAPI engine tests (issue 3): corpus import + snapshots, schema validity, exact request
//! plans, argument validation, response mapping, hostile documents.

mod amplify;
mod conformance;
mod corpus;
mod hostile;
mod plans;
mod results;
mod support;
