//! Structure the code promises, checked: SQL lives only in `store/` (the D1 adapter in the glue
//! only passes it through), so handlers and the domain layer cannot grow queries of their own.

use std::path::Path;

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).expect("src dir") {
        let p = e.expect("entry").path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn no_sql_outside_the_store() {
    let src = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/src"));
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let allowed = |p: &Path| p.starts_with(src.join("store")) || p.ends_with("glue/adapters.rs");
    let sql = sql_markers();
    let mut found = Vec::new();
    for f in files.iter().filter(|f| !allowed(f)) {
        for (i, line) in std::fs::read_to_string(f).expect("read").lines().enumerate() {
            let code = line.trim_start();
            if code.starts_with("//") {
                continue;
            }
            if sql.iter().any(|k| code.contains(k)) {
                found.push(format!("{}:{}: {}", f.strip_prefix(src).unwrap().display(), i + 1, code));
            }
        }
    }
    assert!(files.len() > 40, "only {} source files found", files.len());
    assert!(found.is_empty(), "SQL outside src/store:\n{}", found.join("\n"));
}

/// The statement openings and port calls that mean "this module talks SQL".
fn sql_markers() -> [&'static str; 8] {
    ["\"SELECT ", "\"INSERT ", "\"UPDATE ", "\"DELETE ", "db.query(", "db.execute(", ".query(&sql", ".execute(&sql"]
}

#[test]
fn the_check_sees_sql_when_there_is_some() {
    // A control, so the test above cannot pass by finding nothing to look at.
    let sample = r#"    let rows = svc.db.query("SELECT 1", &[]).await?;"#;
    assert!(sql_markers().iter().any(|k| sample.contains(k)));
    let store = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/store/secrets.rs")).unwrap();
    assert!(sql_markers().iter().any(|k| store.contains(k)));
}
