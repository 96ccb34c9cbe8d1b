//! The crate's shape: no import circle between the files of `src/` (a file in a circle cannot be
//! read, tested or changed alone). Checked with the shared `module-circles` tool, which reads
//! `crate::` and `super::` paths (unit-test modules left out).

mod common;

use std::process::Command;

#[test]
fn no_import_circle_between_the_files_of_src() {
    let tool = common::require_shared().join("tools/module-circles/module-circles");
    assert!(tool.is_file(), "{} is missing", tool.display());
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let out = Command::new("python3")
        .arg(&tool)
        .arg(&src)
        .output()
        .unwrap_or_else(|e| panic!("cannot run python3 {}: {e}", tool.display()));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "import circles under src/ (a stage must not import config; config turns the file \
         into each stage's settings):\n{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("no import circle"), "{text}");
}
