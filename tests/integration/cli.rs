//! The host CLI (`flowcp tools|plan`) as API owners and scripts use it.

use std::process::Command;

use serde_json::Value;

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/corpus/openapi");

fn flowcp(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_flowcp")).args(args).output().expect("run the CLI");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn tools_prints_mcp_tools_and_warnings_as_json() {
    let (ok, out, err) = flowcp(&["tools", &format!("{CORPUS}/examples/2.0/petstore-yaml.yaml")]);
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let names: Vec<&str> = v["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names.len(), 20);
    assert_eq!(names[..3], ["addPet", "updatePet", "findPetsByStatus"]);
    assert!(v["warnings"].is_array());
    let get = v["tools"].as_array().unwrap().iter().find(|t| t["name"] == "getPetById").unwrap();
    assert_eq!(get["inputSchema"]["required"], serde_json::json!(["petId"]));
    assert_eq!(get["annotations"]["readOnlyHint"], true);
}

#[test]
fn plan_prints_the_exact_request() {
    let (ok, out, err) =
        flowcp(&["plan", &format!("{CORPUS}/examples/2.0/petstore-yaml.yaml"), "getPetById", r#"{"petId":7}"#]);
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["method"], "GET");
    assert_eq!(v["url"], "http://petstore.swagger.io/v2/pet/7");
    assert_eq!(v["body"], Value::Null);
}

#[test]
fn gzip_input_is_read() {
    let (ok, out, err) = flowcp(&["tools", &format!("{CORPUS}/real/stripe.yaml.gz")]);
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["tools"].as_array().unwrap().len(), 588);
}

#[test]
fn unreadable_input_exits_non_zero_with_one_line() {
    let dir = std::env::temp_dir().join(format!("flowcp-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.json");
    std::fs::write(&bad, "{\"openapi\": \"3.0.0\", \"paths\": ").unwrap();
    for args in [vec!["tools", bad.to_str().unwrap()], vec!["tools", "/nonexistent/file.json"], vec!["nonsense"]] {
        let (ok, out, err) = flowcp(&args);
        assert!(!ok, "{args:?} should fail");
        assert!(out.is_empty());
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    }
}
