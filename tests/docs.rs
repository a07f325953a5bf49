//! The documents name files that exist: every repository path in backticks
//! (`src/engine/table.rs`, `tests/binlog/`) and every relative link
//! (`[spec](docs/binlog-format.md)`) in the Markdown files a reader starts
//! from. A file that moves takes its mentions with it, or this fails.

use std::path::Path;

/// The Markdown files checked, from the repository's root.
const DOCUMENTS: [&str; 5] =
    ["README.md", "BENCHMARKS.md", "protocol.md", "docs/binlog-format.md", "tests/differential/README.md"];

/// Where a path in backticks counts as a repository path.
const ROOTS: [&str; 6] = ["src/", "tests/", "benches/", "docs/", "packaging/", ".ci/"];

/// The repository paths and relative link targets `text` names.
fn named_paths(text: &str) -> Vec<String> {
    let mut paths = Vec::new();
    for (i, quoted) in text.split('`').enumerate() {
        // Odd pieces are inside backticks.
        let is_path = quoted.chars().all(|c| c.is_ascii_alphanumeric() || "/._-".contains(c));
        if i % 2 == 1 && is_path && ROOTS.iter().any(|root| quoted.starts_with(root)) {
            paths.push(quoted.to_string());
        }
    }
    for link in text.split("](").skip(1) {
        let target = link.split([')', '#']).next().unwrap_or_default();
        if !target.is_empty() && !target.contains("://") && !target.starts_with("mailto:") {
            paths.push(target.to_string());
        }
    }
    paths
}

#[test]
fn documents_name_files_that_exist() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut missing = Vec::new();
    for document in DOCUMENTS {
        let path = root.join(document);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {document}: {e}"));
        for named in named_paths(&text) {
            // Links are relative to the document; backticked paths to the root.
            let from_document = path.parent().unwrap().join(&named);
            if !root.join(&named).exists() && !from_document.exists() {
                missing.push(format!("{document} names {named}, which does not exist"));
            }
        }
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}

#[test]
fn paths_are_found_in_backticks_and_links() {
    let text = "see `src/engine/table.rs`, `table.rs`, `cargo test`, [spec](docs/x.md#layout), \
                [site](https://example.org) and `tests/binlog/`";
    assert_eq!(named_paths(text), ["src/engine/table.rs", "tests/binlog/", "docs/x.md"]);
}
