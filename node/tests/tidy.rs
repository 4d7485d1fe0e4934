//! Tree hygiene as an ordinary test: every Rust source file opens with a `//!` module doc and
//! stays under the length limit, so the code stays one concept per file.

use std::path::{Path, PathBuf};

/// Longest accepted source file, in lines (style.md: files under ~500 lines).
const FILE_LINES_MAX: usize = 550;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn sources_have_module_docs_and_bounded_length() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root");
    let mut files = Vec::new();
    for krate in ["ledger/src", "node/src", "readmodel/src", "chaos/src"] {
        rust_files(&root.join(krate), &mut files);
    }
    assert!(
        files.len() > 10,
        "expected source files, found {}",
        files.len()
    );
    let mut problems = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).expect("read source");
        if !text.trim_start().starts_with("//!") {
            problems.push(format!("{}: missing //! module doc", f.display()));
        }
        let lines = text.lines().count();
        if lines > FILE_LINES_MAX {
            problems.push(format!("{}: {lines} lines > {FILE_LINES_MAX}", f.display()));
        }
    }
    assert!(
        problems.is_empty(),
        "tidy problems:\n{}",
        problems.join("\n")
    );
}
