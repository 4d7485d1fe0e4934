//! Tree hygiene as an ordinary test: every Rust source file opens with a `//!` module doc and
//! stays under the length limit, so the code stays one concept per file; and no source, test or
//! document cites a file outside the repository (it must be readable on its own).

use std::path::{Path, PathBuf};

/// Longest accepted source file, in lines (keep files under ~500 lines).
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
    for krate in [
        "ledger/src",
        "node/src",
        "readmodel/src",
        "chaos/src",
        "netserve/src",
    ] {
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

/// Names of documents that live outside the repository (split so this file does not match).
const OUTSIDE_DOCS: [&str; 3] = [
    concat!("design", ".md"),
    concat!("style", ".md"),
    concat!("../", "shared"),
];

#[test]
fn nothing_cites_a_file_outside_the_repository() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root");
    let mut files = Vec::new();
    for dir in [
        "ledger",
        "node",
        "readmodel",
        "chaos",
        "netserve",
        "scripts",
        "deploy",
    ] {
        rust_files(&root.join(dir), &mut files);
    }
    for entry in std::fs::read_dir(root).expect("read root").flatten() {
        if entry.path().extension().is_some_and(|x| x == "md") {
            files.push(entry.path());
        }
    }
    assert!(
        files.iter().any(|f| f.ends_with("README.md")),
        "README.md scanned"
    );
    let mut problems = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).expect("read file");
        for (n, line) in text.lines().enumerate() {
            if let Some(doc) = OUTSIDE_DOCS.iter().find(|d| line.contains(*d)) {
                problems.push(format!("{}:{}: cites {doc}", f.display(), n + 1));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
