//! A default is written once, in `Config::default()` (and the constants it takes), and every place
//! that states one says the same: the command line's help, and the documents a user reads (the
//! READMEs, the model card, the board's config files, docs/).

mod common;

use std::path::Path;

use agegender::classify::{DEFAULT_BUCKET_MIN_P, DEFAULT_GENDER_MIN_P};
use agegender::config::Config;

/// The help of `agegender SUBCOMMAND --help`, one flag's entry (from its name to the next flag).
fn flag_help(subcommand: &str, flag: &str) -> String {
    let out = common::agegender_command()
        .args([subcommand, "--help"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let start = text
        .find(&format!("{flag} "))
        .unwrap_or_else(|| panic!("{flag} not in `{subcommand} --help`:\n{text}"));
    let rest = &text[start..];
    let end = rest[2..].find("\n      -").map_or(rest.len(), |e| e + 2);
    rest[..end].split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn the_help_states_the_defaults_of_the_config() {
    let d = Config::default();
    for sub in ["run", "image", "eval", "bench"] {
        for (flag, value) in [
            ("--gender-min-p", d.gender_min_p),
            ("--bucket-min-p", d.bucket_min_p),
        ] {
            let help = flag_help(sub, flag);
            assert!(
                help.contains(&format!("[default: {value}]")),
                "{sub} {flag}: {help}"
            );
        }
    }
    for (flag, value) in [
        ("--min-dwell", d.min_dwell_s.to_string()),
        ("--counts-interval", d.counts_interval_s.to_string()),
        ("--motion-threshold", d.motion_threshold.to_string()),
        ("--mqtt-queue", d.mqtt_queue.to_string()),
        ("--mqtt-topic-prefix", d.mqtt_topic_prefix.clone()),
    ] {
        let help = flag_help("run", flag);
        assert!(
            help.contains(&format!("[default: {value}]")),
            "run {flag}: {help}"
        );
    }
    assert_eq!(d.gender_min_p, DEFAULT_GENDER_MIN_P);
    assert_eq!(d.bucket_min_p, DEFAULT_BUCKET_MIN_P);
}

/// Every "`KEY` ... default **V**" (or "default V") a document states for `key`, with where.
fn stated_defaults(text: &str, key: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let needle = format!("{key}`");
    for (at, _) in text.match_indices(&needle) {
        let after = &text[at + needle.len()..];
        let window: String = after.chars().take(40).collect();
        // within the sentence: up to a full stop (not a decimal point) or a semicolon
        let end = [window.find(". "), window.find(';')]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(window.len());
        let window = &window[..end];
        if let Some(d) = window.find("default") {
            let value: String = window[d + "default".len()..]
                .trim_start_matches([' ', '*', ':'])
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.')
                .collect();
            if !value.is_empty() {
                let line = text[..at].lines().count();
                out.push((line, value.trim_end_matches('.').to_string()));
            }
        }
    }
    out
}

#[test]
fn the_documents_state_the_abstention_defaults_of_the_code() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![
        root.join("README.md"),
        root.join("models/README.md"),
        root.join("board/README.md"),
    ];
    for dir in ["docs", "board"] {
        for e in std::fs::read_dir(root.join(dir)).unwrap() {
            let p = e.unwrap().path();
            if matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("md" | "toml" | "txt")
            ) && !files.contains(&p)
            {
                files.push(p);
            }
        }
    }
    let mut seen = 0;
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        for (key, value) in [
            ("gender_min_p", DEFAULT_GENDER_MIN_P),
            ("bucket_min_p", DEFAULT_BUCKET_MIN_P),
        ] {
            for (line, stated) in stated_defaults(&text, key) {
                seen += 1;
                assert_eq!(
                    stated.parse::<f32>().ok(),
                    Some(value),
                    "{}:{line} states the default of {key} as {stated}; the code's is {value}",
                    f.display()
                );
            }
        }
    }
    assert!(
        seen >= 2,
        "the README states both thresholds' defaults ({seen} statements found)"
    );
}

#[test]
fn a_stated_default_is_found_in_a_sentence() {
    let text = "Below `gender_min_p` (default **0.64**, `--gender-min-p`) and `bucket_min_p` \
                (default 0.5). `gender_min_p` alone. Not `bucket_min_p`: a default here.";
    assert_eq!(
        stated_defaults(text, "gender_min_p"),
        vec![(1, "0.64".to_string())]
    );
    assert_eq!(
        stated_defaults(text, "bucket_min_p"),
        vec![(1, "0.5".to_string())]
    );
}
