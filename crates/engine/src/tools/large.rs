//! A generated API document the size of the biggest public ones (issue 18): `operations`
//! operations over `operations / 4` resources, about 2 KB of document per operation, shaped
//! like real APIs (shared parameters, `$ref`s to component schemas two levels deep, a ref with
//! sibling keywords, enums, examples, a shared error). For the import-memory tests, the
//! benchmark and the publish-at-scale e2e test (`flowcp large-doc N FILE`).

use serde_json::{json, Map, Value};

/// The operations of one resource: list, create, get, update.
const OPS_PER_RESOURCE: usize = 4;
/// Resources per tag (and per parent schema).
const GROUP: usize = 10;

fn prose(what: &str, i: usize) -> String {
    format!(
        "{what} {i}. Returns the representation the service keeps for it, with every field the caller \
         may read; fields marked read-only are set by the service. Rate limits apply per token."
    )
}

fn resource_schema(r: usize) -> Value {
    let mut props = json!({
        "id": {"type": "string", "format": "uuid", "readOnly": true, "description": "Unique identifier, set by the service."},
        "name": {"type": "string", "maxLength": 200, "description": prose("Display name of resource", r), "example": format!("resource {r}")},
        "status": {"type": "string", "enum": ["active", "pending", "suspended", "archived", "deleted"], "description": "Lifecycle state."},
        "created_at": {"type": "string", "format": "date-time", "readOnly": true},
        "updated_at": {"type": "string", "format": "date-time", "readOnly": true},
        "owner": {"$ref": "#/components/schemas/User"},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 64}, "maxItems": 50},
        "metadata": {"type": "object", "additionalProperties": {"type": "string"}, "description": "Free-form key/value pairs."},
        "quota": {"type": "integer", "minimum": 0, "maximum": 1_000_000, "default": 100},
    });
    if !r.is_multiple_of(GROUP) {
        props["parent"] = json!({"$ref": format!("#/components/schemas/Res{}", r - r % GROUP), "description": "The group's root resource."});
    }
    json!({"type": "object", "required": ["id", "name"], "description": prose("A resource of kind", r), "properties": props})
}

fn input_schema(r: usize) -> Value {
    json!({"type": "object", "required": ["name"], "properties": {
        "name": {"type": "string", "maxLength": 200, "description": "Display name."},
        "status": {"type": "string", "enum": ["active", "pending", "suspended", "archived"]},
        "tags": {"type": "array", "items": {"type": "string"}},
        "metadata": {"type": "object", "additionalProperties": {"type": "string"}},
        "quota": {"type": "integer", "minimum": 0},
        "owner_id": {"type": "string", "format": "uuid"},
    }, "example": {"name": format!("resource {r}"), "status": "active", "tags": ["a", "b"]}})
}

fn operation(id: String, tag: &str, summary: String, extra: Value) -> Value {
    let mut op = json!({
        "operationId": id,
        "tags": [tag],
        "summary": summary,
        "description": format!("{} {} {} {} {}", prose("See the guide for", 0), prose("Errors are described in", 1), prose("Pagination follows", 2), prose("Webhooks report changes to", 3), prose("Audit events record", 4)),
        "responses": {"default": {"description": "An error.", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}},
    });
    if let (Value::Object(o), Value::Object(e)) = (&mut op, extra) {
        for (k, v) in e {
            if k == "responses" {
                if let (Some(Value::Object(r)), Value::Object(add)) = (o.get_mut("responses"), v) {
                    r.extend(add);
                }
            } else {
                o.insert(k, v);
            }
        }
    }
    op
}

fn ok(status: &str, schema: Value) -> Value {
    json!({"responses": {status: {"description": "OK", "content": {"application/json": {"schema": schema}}}}})
}

/// The document as JSON bytes.
pub fn large_document(operations: usize) -> Vec<u8> {
    let resources = operations.div_ceil(OPS_PER_RESOURCE);
    let mut schemas = Map::new();
    schemas.insert(
        "User".into(),
        json!({"type": "object", "properties": {"id": {"type": "string"}, "login": {"type": "string"}, "email": {"type": "string", "format": "email"}}}),
    );
    schemas.insert(
        "Error".into(),
        json!({"type": "object", "required": ["code", "message"], "properties": {"code": {"type": "string"}, "message": {"type": "string"}, "details": {"type": "array", "items": {"type": "object"}}}}),
    );
    let mut paths = Map::new();
    let mut made = 0;
    for r in 0..resources {
        schemas.insert(format!("Res{r}"), resource_schema(r));
        schemas.insert(format!("Res{r}Input"), input_schema(r));
        let tag = format!("group{}", r / GROUP);
        let one = json!({"$ref": format!("#/components/schemas/Res{r}")});
        let input = json!({"$ref": format!("#/components/schemas/Res{r}Input")});
        let body = |schema: Value| json!({"required": true, "content": {"application/json": {"schema": schema}}});
        let ops = [
            (
                "get",
                false,
                operation(
                    format!("listRes{r}"),
                    &tag,
                    format!("List resources of kind {r}"),
                    json!({"parameters": [
                    {"$ref": "#/components/parameters/PerPage"}, {"$ref": "#/components/parameters/Page"},
                    {"name": "q", "in": "query", "description": "Filter expression.", "schema": {"type": "string"}},
                    {"name": "sort", "in": "query", "schema": {"type": "string", "enum": ["created", "updated", "name"]}}],
                    "responses": ok("200", json!({"type": "array", "items": one}))["responses"]}),
                ),
            ),
            (
                "post",
                false,
                operation(
                    format!("createRes{r}"),
                    &tag,
                    format!("Create a resource of kind {r}"),
                    json!({"requestBody": body(input.clone()), "responses": ok("201", one.clone())["responses"]}),
                ),
            ),
            (
                "get",
                true,
                operation(
                    format!("getRes{r}"),
                    &tag,
                    format!("Get a resource of kind {r}"),
                    json!({"parameters": [{"$ref": "#/components/parameters/Id"}], "responses": ok("200", one.clone())["responses"]}),
                ),
            ),
            (
                "patch",
                true,
                operation(
                    format!("updateRes{r}"),
                    &tag,
                    format!("Update a resource of kind {r}"),
                    json!({"parameters": [{"$ref": "#/components/parameters/Id"}],
                    "requestBody": body(json!({"$ref": format!("#/components/schemas/Res{r}Input"), "description": "Only the fields given change."})),
                    "responses": ok("200", one.clone())["responses"]}),
                ),
            ),
        ];
        for (method, item, op) in ops {
            if made == operations {
                break;
            }
            made += 1;
            let path = if item { format!("/g{}/res{r}/{{id}}", r / GROUP) } else { format!("/g{}/res{r}", r / GROUP) };
            if let Value::Object(m) = paths.entry(path).or_insert_with(|| json!({})) {
                m.insert(method.into(), op);
            }
        }
    }
    let doc = json!({
        "openapi": "3.0.3",
        "info": {"title": "Generated large API", "version": "1.0.0", "description": "A generated document the size of the biggest public APIs."},
        "servers": [{"url": "https://api.example.com/v1"}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "parameters": {
                "PerPage": {"name": "per_page", "in": "query", "description": "Results per page (max 100).", "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 30}},
                "Page": {"name": "page", "in": "query", "description": "Page number of the results.", "schema": {"type": "integer", "minimum": 1, "default": 1}},
                "Id": {"name": "id", "in": "path", "required": true, "description": "The resource's id.", "schema": {"type": "string", "format": "uuid"}},
            },
            "schemas": schemas,
        },
    });
    serde_json::to_vec(&doc).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generated_document_has_the_operations_asked_for_and_imports() {
        let bytes = large_document(40);
        let report = crate::tools::import(&bytes).expect("imports");
        assert_eq!((report.operations_total, report.tools.len()), (40, 40));
        assert!(report.problems.iter().all(|p| p.severity != crate::openapi::Severity::Error), "{:?}", report.problems);
        let odd = large_document(7);
        assert_eq!(crate::tools::import(&odd).expect("imports").tools.len(), 7);
    }
}
