//! `agegender`: the command line.
//!
//! Exit codes: 0 success; 1 runtime or input error (an unreadable image or source, a write
//! that failed); 2 usage or configuration error (bad flag, bad config file); 3 model error
//! (a model file missing, unreadable or not the expected network); 4 `run` ended for an update
//! accepted over MQTT (`mqtt_update_request`: the SD-card image's /init installs it). Every error is one line
//! on stderr, `agegender: error: ...`, naming the input. JSON lines go to stdout only.
//!
//! One file per command (`run.rs`, `image.rs`, `eval.rs`, `bench.rs`), the flags in `args.rs`,
//! what the commands open in `load.rs`.

use std::process::ExitCode;

use agegender::classify::{choose_form, CpuFacts};
use agegender::config::Config;
use agegender::heap::PoolAlloc;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

mod args;
mod bench;
mod eval;
mod image;
mod load;
mod run;

use args::*;

/// Serves tract's per-inference blocks from a pool (no page faults, no fragmentation) and
/// counts allocations per thread for `agegender bench`; see `agegender::heap`.
#[global_allocator]
static ALLOCATOR: PoolAlloc = PoolAlloc;

#[derive(Parser, Debug)]
#[command(
    name = "agegender",
    version,
    about = "Offline age/gender kiosk camera",
    propagate_version = true
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// The live loop: frames from a camera, a directory of images or an .mjpeg file.
    Run(Box<RunArgs>),
    /// Label still pictures: an annotated PNG per input (in --out), JSON lines on stdout.
    Image(ImageArgs),
    /// Measure the model on a directory of UTKFace-named faces; prints one JSON object.
    Eval(EvalArgs),
    /// Per-stage times, fps and allocations of the live loop on a replayed stream.
    Bench(BenchArgs),
}

/// An error with its exit code.
pub(crate) enum Fail {
    /// 1: runtime or input.
    Runtime(anyhow::Error),
    /// 2: usage or configuration.
    Usage(anyhow::Error),
    /// 3: a model.
    Model(anyhow::Error),
}

impl Fail {
    pub(crate) fn code(&self) -> u8 {
        match self {
            Fail::Runtime(_) => 1,
            Fail::Usage(_) => 2,
            Fail::Model(_) => 3,
        }
    }
    pub(crate) fn error(&self) -> &anyhow::Error {
        match self {
            Fail::Runtime(e) | Fail::Usage(e) | Fail::Model(e) => e,
        }
    }
}

/// Print one error line: the whole context chain, newlines folded.
pub(crate) fn print_error(e: &anyhow::Error) {
    let msg = format!("{e:#}");
    eprintln!("agegender: error: {}", agegender::one_line(&msg));
}

fn main() -> ExitCode {
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!(
            "agegender: error: internal error{at}: {} (please report this)",
            agegender::one_line(&msg)
        );
    }));
    // `--version` also says which classifier form this CPU gets, and why.
    let long_version = match choose_form(Default::default(), CpuFacts::native()) {
        Ok(c) => format!(
            "{}\nclassifier form on this CPU ({}): {}: {}",
            env!("CARGO_PKG_VERSION"),
            std::env::consts::ARCH,
            c.form.name(),
            c.why
        ),
        Err(e) => format!("{}\n{e}", env!("CARGO_PKG_VERSION")),
    };
    let parsed = with_config_defaults(Cli::command())
        .long_version(&*Box::leak(long_version.into_boxed_str()))
        .try_get_matches()
        .and_then(|m| Cli::from_arg_matches(&m));
    let cli = match parsed {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                let _ = e.print();
                return ExitCode::SUCCESS;
            }
            if matches!(
                e.kind(),
                ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                let _ = e.print();
                return ExitCode::from(2);
            }
            // clap's first line is "error: ..."; keep it, drop the usage block.
            let rendered = e.render().to_string();
            let msg: Vec<&str> = rendered
                .lines()
                .take_while(|l| !l.starts_with("Usage:"))
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with("tip:"))
                .collect();
            let msg = msg.join(" ");
            eprintln!(
                "agegender: error: {} (see agegender --help)",
                msg.trim_start_matches("error: ")
            );
            return ExitCode::from(2);
        }
    };
    agegender::heap::fix_mmap_threshold();
    let result = match cli.cmd {
        Cmd::Run(a) => run::cmd_run(*a),
        Cmd::Image(a) => image::cmd_image(a),
        Cmd::Eval(a) => eval::cmd_eval(a),
        Cmd::Bench(a) => bench::cmd_bench(a),
    };
    match result {
        Ok(code) => code,
        Err(f) => {
            print_error(f.error());
            ExitCode::from(f.code())
        }
    }
}

/// The config key a flag sets: its own name, or with `_s` for a flag in seconds
/// (`--min-dwell` sets `min_dwell_s`); `None` for a flag that is no config key.
fn config_key<'a>(
    defaults: &'a toml::Table,
    flag_id: &str,
) -> Option<(&'a String, &'a toml::Value)> {
    defaults
        .get_key_value(flag_id)
        .or_else(|| defaults.get_key_value(&format!("{flag_id}_s")))
}

/// Every flag that sets a config key says the key's default in its help, taken from
/// `Config::default()`, the one place a default is written (a flag whose default is "none" or
/// "off" says so in its own words).
fn with_config_defaults(cmd: clap::Command) -> clap::Command {
    let defaults = toml::Table::try_from(Config::default()).expect("the defaults serialize");
    cmd.mut_subcommands(|sc| {
        // (a flag with a default of its own, such as `eval --fps`, says that one)
        let ids: Vec<String> = sc
            .get_arguments()
            .filter(|a| a.get_default_values().is_empty())
            .map(|a| a.get_id().to_string())
            .collect();
        ids.into_iter().fold(sc, |sc, id| {
            let shown = match config_key(&defaults, &id) {
                Some((_, toml::Value::Boolean(_))) | None => return sc,
                Some((_, toml::Value::Float(f))) => (*f as f32).to_string(),
                Some((_, toml::Value::String(t))) => t.clone(),
                Some((_, v)) => v.to_string(),
            };
            sc.mut_arg(&id, |a| {
                let help = a.get_help().map(ToString::to_string).unwrap_or_default();
                let long = a.get_long_help().map(ToString::to_string);
                let a = a.help(format!("{help} [default: {shown}]"));
                match long {
                    Some(l) => a.long_help(format!("{l} [default: {shown}]")),
                    None => a,
                }
            })
        })
    })
}
