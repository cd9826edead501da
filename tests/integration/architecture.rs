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

/// Module path (`api::servers`) -> file, for every file under `src/` but `lib.rs`.
fn modules(src: &Path) -> std::collections::BTreeMap<String, std::path::PathBuf> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    files
        .into_iter()
        .filter_map(|f| {
            let rel = f.strip_prefix(src).ok()?.with_extension("");
            let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
            if parts.last().is_some_and(|p| p == "mod") {
                parts.pop();
            }
            (parts != ["lib"] && !parts.iter().any(|p| p == "bin")).then(|| (parts.join("::"), f))
        })
        .collect()
}

/// What a module uses of its siblings (`super::x`) and of the crate (`crate::x::y`), outside
/// comments and test code, resolved to the longest known module path.
fn uses(name: &str, file: &Path, known: &std::collections::BTreeMap<String, std::path::PathBuf>) -> Vec<String> {
    let text = std::fs::read_to_string(file).expect("read");
    let code: String = text
        .split("#[cfg(test)]")
        .next()
        .unwrap_or("")
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let is_mod_rs = file.ends_with("mod.rs");
    let parent: Vec<&str> = {
        let mut p: Vec<&str> = name.split("::").collect();
        if !is_mod_rs {
            p.pop();
        }
        p
    };
    let resolve = |path: &str| -> Option<String> {
        let segs: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
        (1..=segs.len()).rev().map(|k| segs[..k].join("::")).find(|c| known.contains_key(c))
    };
    let ident =
        |s: &str| s.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':').collect::<String>();
    let mut out = Vec::new();
    for (i, _) in code.match_indices("crate::") {
        if let Some(m) = resolve(&ident(&code[i + 7..])) {
            out.push(m);
        }
    }
    for (i, _) in code.match_indices("super::") {
        let rest = &code[i + 7..];
        let names: Vec<String> = match rest.strip_prefix('{') {
            Some(group) => group.split('}').next().unwrap_or("").split(',').map(|s| ident(s.trim())).collect(),
            None => vec![ident(rest)],
        };
        let base = if is_mod_rs { &parent[..parent.len().saturating_sub(1)] } else { &parent[..] };
        for n in names.iter().filter(|n| n.starts_with(|c: char| c.is_ascii_lowercase())) {
            if let Some(m) = resolve(&format!("{}::{n}", base.join("::"))) {
                out.push(m);
            }
        }
    }
    out.retain(|m| m != name);
    out
}

/// No two modules depend on each other, directly or through others, except along the tree
/// (a module and its own submodules): the graph of sibling modules is acyclic.
#[test]
fn the_module_graph_has_no_cycles() {
    let known = modules(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/src")));
    assert!(known.contains_key("api::servers") && known.contains_key("store::users"), "{known:?}");
    assert_no_cycles(&known);
    let engine = modules(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/crates/engine/src")));
    assert!(engine.contains_key("openapi::load") && engine.contains_key("invoke::plan"), "{engine:?}");
    assert_no_cycles(&engine);
}

/// The engine is a crate of its own that depends on nothing of FlowCP's: its manifest names
/// no FlowCP crate and no Worker crate, so "the engine never touches the Worker" is checked by
/// the compiler.
#[test]
fn the_engine_depends_on_nothing_of_flowcp_or_the_worker() {
    let manifest = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/crates/engine/Cargo.toml")).unwrap();
    let deps: Vec<&str> = manifest
        .lines()
        .filter(|l| l.contains('=') && !l.starts_with('#'))
        .filter_map(|l| l.split('=').next())
        .collect();
    for dep in deps.iter().map(|d| d.trim()) {
        assert!(!dep.starts_with("flowcp") && !dep.starts_with("worker") && !dep.starts_with("wasm-bindgen"), "{dep}");
    }
    assert!(!manifest.contains("path ="), "the engine has a path dependency");
    assert!(!Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/src/openapi")).exists());
}

fn assert_no_cycles(known: &std::collections::BTreeMap<String, std::path::PathBuf>) {
    let related = |a: &str, b: &str| a.starts_with(&format!("{b}::")) || b.starts_with(&format!("{a}::"));
    let mut edges: std::collections::BTreeMap<String, std::collections::BTreeSet<String>> = Default::default();
    for (name, file) in known {
        for to in uses(name, file, known) {
            if !related(name, &to) {
                edges.entry(name.clone()).or_default().insert(to);
            }
        }
    }
    // Depth-first search for a back edge.
    fn visit(
        n: &str,
        edges: &std::collections::BTreeMap<String, std::collections::BTreeSet<String>>,
        state: &mut std::collections::BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        match state.get(n) {
            Some(2) => return None,
            Some(1) => {
                let from = stack.iter().position(|s| s == n).unwrap_or(0);
                let mut cycle = stack[from..].to_vec();
                cycle.push(n.to_string());
                return Some(cycle);
            }
            _ => {}
        }
        state.insert(n.to_string(), 1);
        stack.push(n.to_string());
        for m in edges.get(n).into_iter().flatten() {
            if let Some(c) = visit(m, edges, state, stack) {
                return Some(c);
            }
        }
        stack.pop();
        state.insert(n.to_string(), 2);
        None
    }
    let mut state = Default::default();
    for n in known.keys() {
        if let Some(cycle) = visit(n, &edges, &mut state, &mut Vec::new()) {
            panic!("module cycle: {}", cycle.join(" -> "));
        }
    }
}
