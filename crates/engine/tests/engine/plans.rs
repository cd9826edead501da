//! Request plans are exact for every parameter style and body kind (full requests compared).

use flowcp_engine::invoke::{build_request, validate_arguments, Credential, PlanError, RequestPlan};
use flowcp_engine::tools::{import_value, BodyArgs, ToolDef};
use serde_json::{json, Value};

fn doc() -> Value {
    json!({
        "openapi": "3.1.0",
        "info": {"title": "Plans", "version": "1"},
        "servers": [{"url": "https://{region}.api.test/{base}/", "variables": {
            "region": {"default": "eu"}, "base": {"default": "v1"}}}],
        "paths": {
            "/items/{id}/{labels}/{coords}": {
                "parameters": [
                    {"name": "id", "in": "path", "required": true, "schema": {"type": "integer"}}
                ],
                "get": {
                    "operationId": "getItem",
                    "parameters": [
                        {"name": "labels", "in": "path", "required": true, "style": "label", "schema": {"type": "array", "items": {"type": "string"}}},
                        {"name": "coords", "in": "path", "required": true, "style": "matrix", "explode": true, "schema": {"type": "object"}},
                        {"name": "tag", "in": "query", "schema": {"type": "array", "items": {"type": "string"}}},
                        {"name": "ids", "in": "query", "explode": false, "schema": {"type": "array", "items": {"type": "integer"}}},
                        {"name": "words", "in": "query", "style": "spaceDelimited", "explode": false, "schema": {"type": "array"}},
                        {"name": "pipes", "in": "query", "style": "pipeDelimited", "explode": false, "schema": {"type": "array"}},
                        {"name": "filter", "in": "query", "style": "deepObject", "explode": true, "schema": {"type": "object"}},
                        {"name": "point", "in": "query", "schema": {"type": "object"}},
                        {"name": "raw", "in": "query", "allowReserved": true, "schema": {"type": "string"}},
                        {"name": "q", "in": "query", "content": {"application/json": {"schema": {"type": "object"}}}},
                        {"name": "X-Trace", "in": "header", "schema": {"type": "array"}},
                        {"name": "session", "in": "cookie", "schema": {"type": "string"}},
                        {"name": "prefs", "in": "cookie", "explode": false, "schema": {"type": "object"}},
                        {"name": "user id", "in": "query", "schema": {"type": "string"}}
                    ],
                    "responses": {"200": {"description": "ok"}}
                }
            },
            "/pets/{petId}": {
                "post": {
                    "operationId": "addToy",
                    "parameters": [{"name": "petId", "in": "path", "required": true, "schema": {"type": "string"}}],
                    "requestBody": {"required": true, "content": {"application/json": {"schema": {
                        "type": "object", "required": ["name"],
                        "properties": {"name": {"type": "string"}, "tags": {"type": "array", "items": {"type": "string"}}}
                    }}}},
                    "responses": {"201": {"description": "ok"}}
                },
                "put": {
                    "operationId": "replacePet",
                    "parameters": [{"name": "petId", "in": "path", "required": true, "schema": {"type": "string"}}],
                    "requestBody": {"required": true, "content": {"application/json": {"schema": {
                        "type": "object", "properties": {"petId": {"type": "string"}, "name": {"type": "string"}}
                    }}}},
                    "responses": {"200": {"description": "ok"}}
                }
            },
            "/form": {
                "post": {
                    "operationId": "submitForm",
                    "parameters": [{"name": "theme", "in": "cookie", "schema": {"type": "string"}}],
                    "requestBody": {"content": {"application/x-www-form-urlencoded": {
                        "schema": {"type": "object", "properties": {
                            "name": {"type": "string"},
                            "colors": {"type": "array", "items": {"type": "string"}},
                            "metadata": {"type": "object"},
                            "items": {"type": "array", "items": {"type": "object"}}
                        }},
                        "encoding": {"colors": {"style": "form", "explode": false}}
                    }}},
                    "responses": {"200": {"description": "ok"}}
                }
            },
            "/upload": {
                "post": {
                    "operationId": "upload",
                    "requestBody": {"content": {"multipart/form-data": {
                        "schema": {"type": "object", "properties": {
                            "file": {"type": "string", "format": "binary"},
                            "note": {"type": "string"},
                            "meta": {"type": "object"},
                            "keywords": {"type": "array", "items": {"type": "string"}}
                        }},
                        "encoding": {"file": {"contentType": "image/png"}}
                    }}},
                    "responses": {"200": {"description": "ok"}}
                }
            },
            "/notes": {
                "post": {
                    "operationId": "addNote",
                    "requestBody": {"required": true, "content": {"text/plain": {"schema": {"type": "string"}}}},
                    "responses": {"200": {"description": "ok"}}
                }
            },
            "/raw": {
                "put": {
                    "operationId": "putRaw",
                    "requestBody": {"content": {"application/octet-stream": {}}},
                    "responses": {"200": {"description": "ok"}}
                }
            }
        }
    })
}

fn tool(name: &str) -> ToolDef {
    let report = import_value(doc()).expect("import");
    report.tools.into_iter().find(|t| t.name == name).expect("tool")
}

fn headers(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[test]
fn server_variables_take_their_defaults() {
    assert_eq!(tool("getItem").request.servers, vec!["https://eu.api.test/v1"]);
}

#[test]
fn every_parameter_style_is_serialised_exactly() {
    let t = tool("getItem");
    let args = json!({
        "id": 7,
        "labels": ["a b", "c"],
        "coords": {"x": 1, "y": 2},
        "tag": ["red", "blue"],
        "ids": [1, 2, 3],
        "words": ["hello", "world"],
        "pipes": ["a", "b"],
        "filter": {"status": "open", "created": {"gt": 10}},
        "point": {"lat": 1.5, "lon": 2},
        "raw": "a/b:c?d&e",
        "q": {"k": "v"},
        "X-Trace": ["t1", "t2"],
        "session": "s 1;",
        "prefs": {"lang": "en", "tz": "UTC"},
        "user_id": "u/1"
    });
    assert!(validate_arguments(&t.input_schema, &args).is_empty());
    let plan = build_request(&t, &args, &Credential::Query { name: "api_key".into(), value: "k&1".into() }, None)
        .expect("plan");
    assert_eq!(
        plan,
        RequestPlan {
            method: "GET".into(),
            url: "https://eu.api.test/v1/items/7/.a%20b,c/;x=1;y=2?tag=red&tag=blue&ids=1,2,3&words=hello%20world&pipes=a%7Cb&filter[status]=open&filter[created][gt]=10&lat=1.5&lon=2&raw=a/b:c?d%26e&q=%7B%22k%22%3A%22v%22%7D&user%20id=u%2F1&api_key=k%261".into(),
            headers: headers(&[("X-Trace", "t1,t2"), ("Cookie", "session=s%201%3B; prefs=lang,en,tz,UTC")]),
            body: None,
            content_type: None,
        }
    );
}

#[test]
fn json_body_properties_sit_next_to_path_parameters() {
    let t = tool("addToy");
    assert_eq!(
        t.request.body.as_ref().map(|b| &b.args),
        Some(&BodyArgs::Spread { fields: vec!["name".into(), "tags".into()], extra: false })
    );
    assert_eq!(t.input_schema["required"], json!(["petId", "name"]));
    let plan = build_request(
        &t,
        &json!({"petId": "p 1", "name": "ball", "tags": ["x"], "stray": 1}),
        &Credential::Bearer("tok".into()),
        None,
    )
    .expect("plan");
    assert_eq!(
        plan,
        RequestPlan {
            method: "POST".into(),
            url: "https://eu.api.test/v1/pets/p%201".into(),
            headers: headers(&[("Authorization", "Bearer tok"), ("Content-Type", "application/json")]),
            body: Some(br#"{"name":"ball","tags":["x"]}"#.to_vec()),
            content_type: Some("application/json".into()),
        }
    );
}

#[test]
fn clashing_body_goes_under_body_argument() {
    let t = tool("replacePet");
    assert_eq!(t.request.body.as_ref().map(|b| &b.args), Some(&BodyArgs::Wrapped { arg: "body".into() }));
    let plan = build_request(
        &t,
        &json!({"petId": "1", "body": {"petId": "1", "name": "Rex"}}),
        &Credential::Header { name: "X-Api-Key".into(), value: "secret".into() },
        Some("http://localhost:8080/"),
    )
    .expect("plan");
    assert_eq!(
        plan,
        RequestPlan {
            method: "PUT".into(),
            url: "http://localhost:8080/pets/1".into(),
            headers: headers(&[("X-Api-Key", "secret"), ("Content-Type", "application/json")]),
            body: Some(br#"{"petId":"1","name":"Rex"}"#.to_vec()),
            content_type: Some("application/json".into()),
        }
    );
}

#[test]
fn form_body_uses_brackets_for_nested_values_and_one_cookie_header() {
    let t = tool("submitForm");
    let args = json!({
        "theme": "dark",
        "name": "A&B",
        "colors": ["r", "g"],
        "metadata": {"k": "v"},
        "items": [{"price": "p1", "qty": 2}]
    });
    let plan =
        build_request(&t, &args, &Credential::Cookie { name: "sid".into(), value: "abc".into() }, None).expect("plan");
    assert_eq!(
        plan,
        RequestPlan {
            method: "POST".into(),
            url: "https://eu.api.test/v1/form".into(),
            headers: headers(&[
                ("Cookie", "theme=dark; sid=abc"),
                ("Content-Type", "application/x-www-form-urlencoded")
            ]),
            body: Some(b"name=A%26B&colors=r,g&metadata[k]=v&items[0][price]=p1&items[0][qty]=2".to_vec()),
            content_type: Some("application/x-www-form-urlencoded".into()),
        }
    );
}

#[test]
fn multipart_body_has_file_text_and_json_parts() {
    let t = tool("upload");
    let args = json!({
        "file": "data:image/png;base64,iVBORw==",
        "note": "hi",
        "meta": {"a": 1},
        "keywords": ["x", "y"]
    });
    let plan = build_request(&t, &args, &Credential::None, None).expect("plan");
    let ct = plan.content_type.clone().expect("content type");
    let boundary = ct.strip_prefix("multipart/form-data; boundary=").expect("boundary").to_string();
    assert!(boundary.starts_with("flowcp-") && boundary.len() == 31);
    let mut body = Vec::new();
    body.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"file\"\r\nContent-Type: image/png\r\n\r\n").as_bytes());
    body.extend_from_slice(&[0x89, b'P', b'N', b'G']);
    body.extend_from_slice(
        format!("\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhi\r\n").as_bytes(),
    );
    body.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"meta\"\r\nContent-Type: application/json\r\n\r\n{{\"a\":1}}\r\n").as_bytes());
    body.extend_from_slice(
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"keywords\"\r\n\r\nx\r\n").as_bytes(),
    );
    body.extend_from_slice(
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"keywords\"\r\n\r\ny\r\n--{boundary}--\r\n")
            .as_bytes(),
    );
    assert_eq!(
        plan,
        RequestPlan {
            method: "POST".into(),
            url: "https://eu.api.test/v1/upload".into(),
            headers: headers(&[("Content-Type", &ct)]),
            body: Some(body),
            content_type: Some(ct.clone()),
        }
    );
    // Deterministic: same arguments, same bytes.
    assert_eq!(build_request(&t, &args, &Credential::None, None).expect("plan"), plan);
}

#[test]
fn text_and_binary_bodies_are_sent_verbatim() {
    let plan =
        build_request(&tool("addNote"), &json!({"body": "line1\nline2"}), &Credential::None, None).expect("plan");
    assert_eq!(
        plan,
        RequestPlan {
            method: "POST".into(),
            url: "https://eu.api.test/v1/notes".into(),
            headers: headers(&[("Content-Type", "text/plain")]),
            body: Some(b"line1\nline2".to_vec()),
            content_type: Some("text/plain".into()),
        }
    );
    let plan = build_request(
        &tool("putRaw"),
        &json!({"body": "data:application/octet-stream;base64,AAEC"}),
        &Credential::None,
        None,
    )
    .expect("plan");
    assert_eq!(plan.body, Some(vec![0, 1, 2]));
    assert_eq!(plan.headers, headers(&[("Content-Type", "application/octet-stream")]));
}

#[test]
fn missing_required_path_param_is_a_clear_error() {
    let err = build_request(&tool("addToy"), &json!({"name": "x"}), &Credential::None, None).unwrap_err();
    assert_eq!(err, PlanError::MissingPathParam { arg: "petId".into() });
    assert_eq!(err.to_string(), "missing required path parameter `petId`");
}

#[test]
fn header_injection_is_refused() {
    let args = json!({"id": 1, "labels": ["a"], "coords": {}, "X-Trace": ["a\r\nEvil: 1"]});
    let err = build_request(&tool("getItem"), &args, &Credential::None, None).unwrap_err();
    assert_eq!(err, PlanError::InvalidHeaderValue { name: "X-Trace".into() });
}

#[test]
fn relative_server_needs_a_base_url_override() {
    let mut t = tool("addNote");
    t.request.servers = vec!["/api".into()];
    let err = build_request(&t, &json!({"body": "x"}), &Credential::None, None).unwrap_err();
    assert_eq!(err, PlanError::NoBaseUrl);
    let plan = build_request(&t, &json!({"body": "x"}), &Credential::None, Some("https://h.test/api")).expect("plan");
    assert_eq!(plan.url, "https://h.test/api/notes");
}

#[test]
fn arguments_are_validated_with_readable_messages() {
    let t = tool("addToy");
    let problems = validate_arguments(&t.input_schema, &json!({"name": 5, "tags": "x"}));
    assert_eq!(
        problems,
        vec![
            "arguments: missing required property `petId`".to_string(),
            "`name`: expected string, got integer 5".to_string(),
            "`tags`: expected array, got string \"x\"".to_string(),
        ]
    );
    let enum_schema = json!({"type": "object", "properties": {"s": {"type": "string", "enum": ["a", "b"]}, "n": {"type": "integer", "minimum": 1}}});
    assert_eq!(
        validate_arguments(&enum_schema, &json!({"s": "c", "n": 0})),
        vec!["`s`: \"c\" is not one of \"a\", \"b\"".to_string(), "`n`: must be at least 1".to_string()]
    );
    assert!(validate_arguments(&enum_schema, &Value::Null).is_empty());
}

#[test]
fn annotations_follow_the_method() {
    let get = tool("getItem").annotations;
    assert_eq!((get.read_only_hint, get.destructive_hint, get.idempotent_hint), (Some(true), None, None));
    let post = tool("addToy").annotations;
    assert_eq!((post.read_only_hint, post.destructive_hint, post.idempotent_hint), (Some(false), Some(false), None));
    let put = tool("replacePet").annotations;
    assert_eq!((put.read_only_hint, put.destructive_hint, put.idempotent_hint), (Some(false), None, Some(true)));
}

/// Security review S2: a document cannot make FlowCP send `Host`, framing, cookie, forwarding
/// or method-override headers. The parameter is dropped at import with a warning, and a stored
/// tool that still has one (imported before the rule) never sends it.
#[test]
fn header_parameters_with_forbidden_names_are_dropped_and_never_sent() {
    let forbidden = [
        "Host",
        "Content-Length",
        "Transfer-Encoding",
        "Cookie",
        "X-Forwarded-Host",
        "Forwarded",
        "X-HTTP-Method-Override",
        "CF-Connecting-IP",
        "Proxy-Authorization",
        "Sec-Fetch-Site",
        "X_Forwarded_Host",
        "X-Original-URL",
        "X-Rewrite-URL",
        "Max-Forwards",
        "X-Middleware-Subrequest",
    ];
    let params: Vec<Value> = forbidden
        .iter()
        .map(|n| json!({"name": n, "in": "header", "schema": {"type": "string"}}))
        .chain([json!({"name": "X-Trace", "in": "header", "schema": {"type": "string"}})])
        .collect();
    let doc = json!({"openapi": "3.0.3", "info": {"title": "t", "version": "1"},
        "servers": [{"url": "https://api.example.com"}],
        "paths": {"/x": {"get": {"operationId": "getX", "parameters": params, "responses": {"200": {"description": "ok"}}}}}});
    let report = import_value(doc).expect("import");
    let tool = &report.tools[0];
    let args: Vec<&String> = tool.request.params.iter().map(|p| &p.wire).collect();
    assert_eq!(args, ["X-Trace"], "only the ordinary header stays");
    for n in forbidden {
        assert!(
            report.problems.iter().any(|p| p.message.contains(&format!("{n:?}")) && p.message.contains("ignored")),
            "no warning for {n}: {:?}",
            report.problems
        );
    }
    // A tool stored before the rule, with a Host parameter, sends no Host header.
    let mut old = tool.clone();
    let mut host = old.request.params[0].clone();
    host.wire = "Host".into();
    host.arg = "Host".into();
    old.request.params.push(host);
    old.input_schema["properties"]["Host"] = json!({"type": "string"});
    let plan =
        build_request(&old, &json!({"X-Trace": "t", "Host": "evil.example"}), &Credential::None, None).expect("plan");
    assert!(plan.headers.iter().all(|(k, _)| !k.eq_ignore_ascii_case("host")), "{:?}", plan.headers);
    assert!(plan.headers.iter().any(|(k, v)| k == "X-Trace" && v == "t"));
}

/// Issue 16: a required parameter whose schema allows one value is fixed: left out of the input
/// schema and always sent with that value, whatever the model sends; an optional one, or one
/// with two values, stays an argument.
#[test]
fn a_required_single_value_parameter_is_fixed_and_never_asked_of_the_model() {
    let doc = json!({
        "openapi": "3.0.3",
        "info": {"title": "Fixed", "version": "1"},
        "servers": [{"url": "https://api.test"}],
        "paths": {"/flows/{op}": {"post": {
            "operationId": "setState",
            "parameters": [
                {"name": "op", "in": "path", "required": true, "schema": {"type": "string", "enum": ["start", "stop"]}},
                {"name": "api-version", "in": "query", "required": true, "schema": {"type": "string", "enum": ["2016-11-01"]}},
                {"name": "$filter", "in": "query", "required": true, "schema": {"const": "status eq 'Failed'"}},
                {"name": "mode", "in": "query", "schema": {"type": "string", "enum": ["admin"]}},
                {"name": "X-Version", "in": "header", "required": true, "schema": {"type": "integer", "enum": [2]}}
            ],
            "responses": {"200": {"description": "ok"}}
        }}}
    });
    let t = import_value(doc).expect("import").tools.remove(0);
    let props = t.input_schema["properties"].as_object().unwrap();
    let mut names: Vec<&str> = props.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(names, ["mode", "op"], "{}", t.input_schema);
    assert_eq!(t.input_schema["required"], json!(["op"]));
    let args = json!({"op": "stop", "api-version": "1999-01-01", "filter": "everything"});
    let plan = build_request(&t, &args, &Credential::None, None).expect("plan");
    assert_eq!(plan.url, "https://api.test/flows/stop?api-version=2016-11-01&%24filter=status%20eq%20%27Failed%27");
    assert_eq!(plan.headers, headers(&[("X-Version", "2")]));
}
