//! `docs/configuration.md`, every configuration key with its type, default and what it does, is
//! generated from the definitions themselves: the fields of `Config` and their doc comments in
//! `src/config/mod.rs`, and the values of `Config::default()`. This test regenerates it and fails
//! when the committed file is stale; `AGEGENDER_WRITE_DOCS=1 cargo test --release --test
//! config_doc` writes it.

use std::path::Path;

use agegender::config::Config;

/// (key, Rust type, doc comment) of each field of `pub struct Config`, in order.
fn fields(source: &str) -> Vec<(String, String, String)> {
    let start = source
        .find("pub struct Config {")
        .expect("src/config/mod.rs defines pub struct Config");
    let body = &source[start..];
    let body = &body[..body.find("\n}\n").expect("the struct ends")];
    let mut out = Vec::new();
    let mut doc: Vec<String> = Vec::new();
    for line in body.lines().skip(1) {
        let t = line.trim();
        if let Some(d) = t.strip_prefix("///") {
            doc.push(d.trim().to_string());
        } else if let Some(f) = t.strip_prefix("pub ") {
            let (name, ty) = f.split_once(':').expect("a field is `pub name: Type,`");
            out.push((
                name.trim().to_string(),
                ty.trim().trim_end_matches(',').to_string(),
                doc.join(" "),
            ));
            doc.clear();
        } else if !t.starts_with("//") && !t.is_empty() {
            doc.clear();
        }
    }
    out
}

/// A doc comment as Markdown a user reads: intra-doc links become code spans.
fn plain(doc: &str) -> String {
    let mut s = doc.to_string();
    while let Some(a) = s.find("[`") {
        let Some(b) = s[a..].find("`]") else { break };
        let inner = s[a + 2..a + b].to_string();
        let short = inner.rsplit("::").next().unwrap_or(&inner).to_string();
        s.replace_range(a..a + b + 2, &format!("`{short}`"));
    }
    s.replace('|', "\\|")
}

/// The type as a user writes it in the TOML file.
fn toml_type(ty: &str) -> String {
    let inner = ty
        .strip_prefix("Option<")
        .and_then(|t| t.strip_suffix('>'))
        .unwrap_or(ty);
    let base = match inner.rsplit("::").next().unwrap_or(inner) {
        "f32" | "f64" => "number",
        "u8" | "u32" | "u64" | "usize" => "integer ≥ 0",
        "bool" => "true / false",
        "String" => "string",
        "PathBuf" => "path",
        "FormSetting" => "`auto`, `f32`, `f16`, `int8`",
        "Workers" => "`auto` or an integer ≥ 1",
        "Table" => "table",
        other => other,
    };
    base.to_string()
}

fn render() -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let source = std::fs::read_to_string(root.join("src/config/mod.rs")).unwrap();
    let defaults = toml::Table::try_from(Config::default()).unwrap();
    let mut out = String::from(
        "# Configuration\n\n\
         Every key of the TOML file that `agegender run --config FILE` reads (and `image`, `eval`,\n\
         `bench`); each also has a flag (`--key-with-dashes`, seconds keys without `_s`).\n\
         Precedence: built-in defaults < the file < flags. An unknown key or a bad value is an\n\
         error that names the key and the file. The board's file: `board/config.toml`.\n\n\
         Generated from `src/config/mod.rs` (the fields of `Config`, their comments and\n\
         `Config::default()`) by `AGEGENDER_WRITE_DOCS=1 cargo test --release --test config_doc`;\n\
         a test fails when this file is stale.\n\n\
         | key | type | default | what it does |\n|---|---|---|---|\n",
    );
    for (key, ty, doc) in fields(&source) {
        let default = match defaults.get(&key) {
            None => "(none)".to_string(),
            Some(toml::Value::Float(f)) => format!("`{}`", *f as f32),
            Some(v) => format!("`{v}`"),
        };
        out.push_str(&format!(
            "| `{key}` | {} | {default} | {} |\n",
            toml_type(&ty),
            plain(&doc)
        ));
    }
    out
}

#[test]
fn docs_configuration_md_is_generated_from_the_config() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/configuration.md");
    let want = render();
    if std::env::var_os("AGEGENDER_WRITE_DOCS").is_some() {
        std::fs::write(&path, &want).unwrap();
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == want,
        "{} is stale: run AGEGENDER_WRITE_DOCS=1 cargo test --release --test config_doc",
        path.display()
    );
}

#[test]
fn every_key_of_the_config_is_documented_with_its_default() {
    let text = render();
    let defaults = toml::Table::try_from(Config::default()).unwrap();
    for key in defaults.keys() {
        assert!(
            text.contains(&format!("| `{key}` |")),
            "{key} is missing from the generated table"
        );
    }
    let source =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/config/mod.rs"))
            .unwrap();
    let undocumented: Vec<String> = fields(&source)
        .into_iter()
        .filter(|(_, _, doc)| doc.is_empty())
        .map(|(k, _, _)| k)
        .collect();
    assert!(
        undocumented.is_empty(),
        "keys without a doc comment in src/config/mod.rs: {undocumented:?}"
    );
    assert!(text.contains(&format!(
        "| `gender_min_p` | number | `{}` |",
        agegender::classify::DEFAULT_GENDER_MIN_P
    )));
}
