//! What the runtime fuzz targets share: a small API document whose operations use every kind
//! of parameter and body the request builder places, and its tools.

#![allow(dead_code)]

use serde_json::{json, Value};

/// The API's base: every request built from arguments must stay under it.
pub const BASE: &str = "https://api.example.com/v1";
/// The owner's upstream secret (sealed in KV): it must never reach a client.
pub const SECRET: &str = "upstream-secret-value";

pub fn doc() -> Value {
    let pet = json!({ "type": "object", "required": ["name"], "properties": {
        "id": { "type": "integer" }, "name": { "type": "string", "maxLength": 64 },
        "tags": { "type": "array", "items": { "type": "string" }, "maxItems": 8 },
        "status": { "type": "string", "enum": ["available", "sold"] },
        "meta": { "type": "object", "additionalProperties": { "type": "string" } } } });
    json!({ "openapi": "3.0.3", "info": { "title": "Fuzz", "version": "1" },
      "servers": [{ "url": BASE }],
      "paths": {
        "/pets/{petId}": {
          "parameters": [{ "name": "petId", "in": "path", "required": true, "schema": { "type": "string" } }],
          "get": { "operationId": "getPet",
            "parameters": [
              { "name": "limit", "in": "query", "schema": { "type": "integer", "minimum": 1, "maximum": 100 } },
              { "name": "X-Trace", "in": "header", "schema": { "type": "string" } },
              { "name": "pref", "in": "cookie", "schema": { "type": "string" } }],
            "responses": { "200": { "description": "ok", "content": { "application/json": { "schema": pet } } } } },
          "put": { "operationId": "putPet",
            "requestBody": { "required": true, "content": { "application/json": { "schema": pet } } },
            "responses": { "200": { "description": "ok" } } } },
        "/pets/{petId}/photo/{file}.{ext}": {
          "post": { "operationId": "uploadPhoto",
            "parameters": [
              { "name": "petId", "in": "path", "required": true, "schema": { "type": "integer" } },
              { "name": "file", "in": "path", "required": true, "schema": { "type": "string" } },
              { "name": "ext", "in": "path", "required": true, "schema": { "type": "string", "enum": ["png", "jpg"] } }],
            "requestBody": { "content": { "multipart/form-data": { "schema": { "type": "object", "properties": {
              "caption": { "type": "string" }, "data": { "type": "string", "format": "binary" } } } } } },
            "responses": { "201": { "description": "created" } } } },
        "/search": {
          "get": { "operationId": "search",
            "parameters": [
              { "name": "q", "in": "query", "schema": { "type": "string", "pattern": "^[a-z ]{0,32}$" } },
              { "name": "filter", "in": "query", "style": "deepObject", "explode": true,
                "schema": { "type": "object", "additionalProperties": { "type": "string" } } },
              { "name": "ids", "in": "query", "explode": false, "schema": { "type": "array", "items": { "type": "integer" } } },
              { "name": "api_key", "in": "query", "schema": { "type": "string" } }],
            "responses": { "200": { "description": "ok", "content": { "application/json": {
              "schema": { "type": "array", "items": pet } } } } } } },
        "/forms": {
          "post": { "operationId": "submitForm",
            "requestBody": { "content": { "application/x-www-form-urlencoded": { "schema": { "type": "object",
              "properties": { "a": { "type": "string" }, "b": { "type": "array", "items": { "type": "number" } },
                "c": { "type": "object", "properties": { "x": { "type": "boolean" } } } } } } } },
            "responses": { "204": { "description": "done" } } } }
      } })
}

/// The document's tools, as the importer makes them.
pub fn tools() -> Vec<flowcp::tools::ToolDef> {
    let bytes = serde_json::to_vec(&doc()).expect("the document serialises");
    flowcp::tools::import(&bytes).expect("the fuzz document imports").tools
}
