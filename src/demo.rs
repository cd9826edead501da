//! A small demo API the Worker serves itself under `/demo/`, so a new local user can import,
//! publish and call a tool with no outside API (`make dev` seeds an app from it).
//!
//! Stateless and deterministic: a fixed catalogue of books; `POST /demo/books` validates and
//! echoes what a real API would create.

use serde_json::{json, Value};

const BOOKS: &[(i64, &str, &str, i64, &str)] = &[
    (1, "The Pragmatic Programmer", "Andrew Hunt, David Thomas", 1999, "software"),
    (2, "Designing Data-Intensive Applications", "Martin Kleppmann", 2017, "software"),
    (3, "The Left Hand of Darkness", "Ursula K. Le Guin", 1969, "fiction"),
    (4, "A Wizard of Earthsea", "Ursula K. Le Guin", 1968, "fiction"),
    (5, "Structure and Interpretation of Computer Programs", "Harold Abelson, Gerald Jay Sussman", 1985, "software"),
    (6, "The Dispossessed", "Ursula K. Le Guin", 1974, "fiction"),
];

fn book(b: &(i64, &str, &str, i64, &str)) -> Value {
    json!({ "id": b.0, "title": b.1, "author": b.2, "year": b.3, "genre": b.4 })
}

/// The demo API's OpenAPI 3.1 document; `origin` is where the Worker is reachable.
pub fn openapi(origin: &str) -> Value {
    let book_schema = json!({
        "type": "object",
        "required": ["id", "title", "author"],
        "properties": {
            "id": { "type": "integer" },
            "title": { "type": "string" },
            "author": { "type": "string" },
            "year": { "type": "integer" },
            "genre": { "type": "string", "enum": ["software", "fiction"] }
        }
    });
    json!({
        "openapi": "3.1.0",
        "info": { "title": "FlowCP Demo Bookshop", "version": "1.0.0", "description": "A tiny catalogue served by FlowCP itself for the local demo." },
        "servers": [{ "url": format!("{origin}/demo") }],
        "paths": {
            "/books": {
                "get": {
                    "operationId": "listBooks",
                    "summary": "List books",
                    "description": "Lists books in the catalogue, optionally filtered by genre or a text query.",
                    "tags": ["books"],
                    "parameters": [
                        { "name": "genre", "in": "query", "schema": { "type": "string", "enum": ["software", "fiction"] } },
                        { "name": "q", "in": "query", "description": "Text to find in title or author", "schema": { "type": "string" } },
                        { "name": "limit", "in": "query", "schema": { "type": "integer", "minimum": 1, "maximum": 50, "default": 10 } }
                    ],
                    "responses": { "200": { "description": "Books", "content": { "application/json": { "schema": {
                        "type": "object", "properties": { "items": { "type": "array", "items": { "$ref": "#/components/schemas/Book" } } }
                    } } } } }
                },
                "post": {
                    "operationId": "createBook",
                    "summary": "Add a book",
                    "tags": ["books"],
                    "requestBody": { "required": true, "content": { "application/json": { "schema": {
                        "type": "object", "required": ["title", "author"],
                        "properties": { "title": { "type": "string" }, "author": { "type": "string" }, "year": { "type": "integer" } }
                    } } } },
                    "responses": { "201": { "description": "Created", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Book" } } } } }
                }
            },
            "/books/{bookId}": {
                "get": {
                    "operationId": "getBook",
                    "summary": "Get one book",
                    "tags": ["books"],
                    "parameters": [{ "name": "bookId", "in": "path", "required": true, "schema": { "type": "integer" } }],
                    "responses": {
                        "200": { "description": "The book", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Book" } } } },
                        "404": { "description": "No such book" }
                    }
                }
            }
        },
        "components": { "schemas": { "Book": book_schema } }
    })
}

/// Handles a `/demo/...` request: (status, JSON body).
pub fn handle(method: &str, path: &str, query: &[(String, String)], body: &[u8], origin: &str) -> (u16, Value) {
    let q = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    match (method, path.trim_end_matches('/')) {
        ("GET", "/demo/openapi.json") => (200, openapi(origin)),
        ("GET", "/demo/books") => {
            let limit = match q("limit").map(str::parse::<usize>) {
                None => 10,
                Some(Ok(n)) if (1..=50).contains(&n) => n,
                Some(_) => return (400, json!({ "error": "limit must be an integer from 1 to 50" })),
            };
            let text = q("q").map(str::to_lowercase);
            let items: Vec<Value> = BOOKS
                .iter()
                .filter(|b| q("genre").is_none_or(|g| g == b.4))
                .filter(|b| {
                    text.as_ref().is_none_or(|t| b.1.to_lowercase().contains(t) || b.2.to_lowercase().contains(t))
                })
                .take(limit)
                .map(book)
                .collect();
            (200, json!({ "items": items }))
        }
        ("POST", "/demo/books") => match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(o))
                if o.get("title").is_some_and(Value::is_string) && o.get("author").is_some_and(Value::is_string) =>
            {
                let mut created =
                    json!({ "id": 1000, "title": o["title"], "author": o["author"], "genre": "software" });
                if let Some(y) = o.get("year").and_then(Value::as_i64) {
                    created["year"] = json!(y);
                }
                (201, created)
            }
            _ => (400, json!({ "error": "send a JSON object with string title and author" })),
        },
        ("GET", p) if p.starts_with("/demo/books/") => {
            match p["/demo/books/".len()..].parse::<i64>().ok().and_then(|id| BOOKS.iter().find(|b| b.0 == id)) {
                Some(b) => (200, book(b)),
                None => (404, json!({ "error": "no such book" })),
            }
        }
        (_, "/demo/books" | "/demo/openapi.json") => (405, json!({ "error": "method not allowed" })),
        _ => (404, json!({ "error": "not found" })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_document_imports_into_three_tools() {
        let doc = serde_json::to_vec(&openapi("http://127.0.0.1:8787")).unwrap();
        let report = crate::tools::import(&doc).unwrap();
        let mut names: Vec<&str> = report.tools.iter().map(|t| t.name.as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, ["createBook", "getBook", "listBooks"]);
    }

    #[test]
    fn demo_api_filters_and_validates() {
        let (s, v) =
            handle("GET", "/demo/books", &[("q".into(), "le guin".into()), ("limit".into(), "2".into())], b"", "");
        assert_eq!(s, 200);
        assert_eq!(v["items"].as_array().unwrap().len(), 2);
        assert_eq!(handle("GET", "/demo/books/3", &[], b"", "").1["title"], "The Left Hand of Darkness");
        assert_eq!(handle("GET", "/demo/books/99", &[], b"", "").0, 404);
        assert_eq!(handle("GET", "/demo/books", &[("limit".into(), "0".into())], b"", "").0, 400);
        assert_eq!(handle("POST", "/demo/books", &[], b"{\"title\":1}", "").0, 400);
        assert_eq!(handle("POST", "/demo/books", &[], b"{\"title\":\"T\",\"author\":\"A\"}", "").0, 201);
    }
}
