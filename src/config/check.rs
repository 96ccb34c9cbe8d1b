//! The checks of a [`Config`]: value ranges and the rules between keys, and the typed error
//! that names the key, where its value came from (the built-in default, a file, a flag) and
//! what is wrong with it.

use std::fmt;
use std::path::{Path, PathBuf};

use super::{Config, Workers};

/// Where a setting's value came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// The built-in default ([`Config::default`]).
    Default,
    /// A config file.
    File(PathBuf),
    /// A command-line flag, as the user types it (`--score-threshold`).
    Flag(String),
}

/// A bad value found by [`Config::validate`]: the key and why, before anyone knows where the
/// value came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invalid {
    /// The config key (`max_faces`).
    pub key: &'static str,
    /// What is wrong with its value, as a user reads it.
    pub why: String,
    /// The other key of a rule between two keys (`mqtt_ca` needs an `mqtt` of mqtts://):
    /// when a flag set that one over a file that passed, the error is the flag's.
    pub with: Option<&'static str>,
}

impl Invalid {
    pub(crate) fn of(key: &'static str, why: impl Into<String>) -> Invalid {
        Invalid {
            key,
            why: why.into(),
            with: None,
        }
    }

    pub(crate) fn with(self, other: &'static str) -> Invalid {
        Invalid {
            with: Some(other),
            ..self
        }
    }

    /// The error, once the origin of `key` is known.
    pub fn at(self, origin: Origin) -> ConfigError {
        ConfigError::Value {
            key: self.key,
            origin,
            message: self.why,
        }
    }
}

/// A configuration problem. Its message is one line that names the file (and line) or the
/// flag, and the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file cannot be read.
    #[error("cannot read config file {}: {message}", path.display())]
    Read { path: PathBuf, message: String },
    /// Not TOML, an unknown key, or a value of the wrong type.
    #[error("config file {}{}: {message}", path.display(), line.map(|l| format!(", line {l}")).unwrap_or_default())]
    Syntax {
        path: PathBuf,
        /// 1-based, where TOML says where.
        line: Option<usize>,
        message: String,
    },
    /// A value out of its range, or against a rule between keys.
    #[error("{}", ValueMessage(key, origin, message))]
    Value {
        key: &'static str,
        origin: Origin,
        message: String,
    },
}

impl ConfigError {
    /// The key at fault, where there is one.
    pub fn key(&self) -> Option<&'static str> {
        match self {
            ConfigError::Value { key, .. } => Some(key),
            _ => None,
        }
    }
}

struct ValueMessage<'a>(&'a str, &'a Origin, &'a str);

impl fmt::Display for ValueMessage<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ValueMessage(key, origin, message) = *self;
        match origin {
            Origin::File(p) => write!(
                f,
                "config file {}: bad value for `{key}`: {message}",
                p.display()
            ),
            Origin::Flag(flag) => write!(f, "bad value for {flag}: {message}"),
            Origin::Default => write!(f, "built-in default of `{key}`: {message}"),
        }
    }
}

/// A config and where each of its values came from: the defaults, then a file, then flags.
/// The command line builds one, and its errors name the flag a user typed, not a key cut into
/// a flag's shape.
#[derive(Clone, Debug)]
pub struct Layered {
    config: Config,
    file: Option<PathBuf>,
    /// Config key -> the flag that set it.
    flags: Vec<(&'static str, String)>,
}

impl Layered {
    /// The defaults, overlaid with `file` when there is one (checked: a bad file is an error
    /// naming it).
    pub fn new(file: Option<&Path>) -> Result<Layered, ConfigError> {
        let config = match file {
            Some(p) => Config::from_file(p)?,
            None => Config::default(),
        };
        Ok(Layered {
            config,
            file: file.map(Path::to_path_buf),
            flags: Vec::new(),
        })
    }

    /// The config as it stands.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Set `key`'s value from `flag` when the flag was given: `set(|c| &mut c.fps, "fps",
    /// "--fps", flags.fps)`.
    pub fn set<T>(
        &mut self,
        slot: impl FnOnce(&mut Config) -> &mut T,
        key: &'static str,
        flag: &str,
        value: Option<T>,
    ) {
        if let Some(v) = value {
            *slot(&mut self.config) = v;
            self.flags.retain(|(k, _)| *k != key);
            self.flags.push((key, flag.to_string()));
        }
    }

    /// Where `key`'s value came from.
    pub fn origin(&self, key: &str) -> Origin {
        if let Some((_, flag)) = self.flags.iter().find(|(k, _)| *k == key) {
            return Origin::Flag(flag.clone());
        }
        match &self.file {
            Some(p) => Origin::File(p.clone()),
            None => Origin::Default,
        }
    }

    /// Check the whole config; a bad value names its origin.
    pub fn check(self) -> Result<Config, ConfigError> {
        match self.config.validate() {
            Ok(()) => Ok(self.config),
            Err(bad) => {
                let mut origin = self.origin(bad.key);
                if let Some(other) = bad.with {
                    let theirs = self.origin(other);
                    if matches!(theirs, Origin::Flag(_)) && !matches!(origin, Origin::Flag(_)) {
                        origin = theirs;
                    }
                }
                Err(bad.at(origin))
            }
        }
    }
}

impl Config {
    /// Check value ranges and the rules between keys: the first bad key and why.
    pub fn validate(&self) -> Result<(), Invalid> {
        fn unit(key: &'static str, v: f32) -> Result<(), Invalid> {
            if (0.0..=1.0).contains(&v) {
                Ok(())
            } else {
                Err(Invalid::of(key, format!("{v} is not between 0 and 1")))
            }
        }
        if self.source.is_empty() {
            return Err(Invalid::of("source", "must not be empty"));
        }
        if !(self.fps.is_finite() && self.fps >= 0.0) {
            return Err(Invalid::of(
                "fps",
                format!("{} is not a rate ≥ 0", self.fps),
            ));
        }
        if self.width == 0 || self.height == 0 || self.width > 8192 || self.height > 8192 {
            return Err(Invalid::of(
                "width",
                format!(
                    "{}x{} is not a frame size (1..=8192)",
                    self.width, self.height
                ),
            ));
        }
        if self.baud == 0 {
            return Err(Invalid::of("baud", "must be > 0"));
        }
        if !(1..=1_000_000).contains(&self.save_max_files) {
            return Err(Invalid::of(
                "save_max_files",
                format!("{} is not in 1..=1000000", self.save_max_files),
            ));
        }
        for (key, mb) in [
            ("save_max_mb", self.save_max_mb),
            ("report_max_mb", self.report_max_mb),
        ] {
            if !(1..=1_000_000).contains(&mb) {
                return Err(Invalid::of(
                    key,
                    format!("{mb} is not a number of megabytes in 1..=1000000"),
                ));
            }
        }
        if self.serial_queue == 0 {
            return Err(Invalid::of("serial_queue", "must be > 0"));
        }
        unit("score_threshold", self.score_threshold)?;
        unit("nms_iou", self.nms_iou)?;
        unit("track_iou", self.track_iou)?;
        if !(1..=64).contains(&self.max_faces) {
            return Err(Invalid::of(
                "max_faces",
                format!("{} is not in 1..=64", self.max_faces),
            ));
        }
        if !(0.0..=2.0).contains(&self.closeup_margin) {
            return Err(Invalid::of(
                "closeup_margin",
                format!("{} is not in 0..=2", self.closeup_margin),
            ));
        }
        if !(self.age_alpha > 0.0 && self.age_alpha <= 1.0) {
            return Err(Invalid::of(
                "age_alpha",
                format!("{} is not in (0, 1]", self.age_alpha),
            ));
        }
        if !(self.gender_alpha > 0.0 && self.gender_alpha <= 1.0) {
            return Err(Invalid::of(
                "gender_alpha",
                format!("{} is not in (0, 1]", self.gender_alpha),
            ));
        }
        for (key, v) in [
            ("classify_grow", self.classify_grow),
            ("classify_quality_gain", self.classify_quality_gain),
        ] {
            if !(v.is_finite() && (1.0..=100.0).contains(&v)) {
                return Err(Invalid::of(key, format!("{v} is not a factor in 1..=100")));
            }
        }
        if !(self.classify_refresh_s.is_finite()
            && (0.0..=86_400.0).contains(&self.classify_refresh_s))
        {
            return Err(Invalid::of(
                "classify_refresh_s",
                format!(
                    "{} is not a number of seconds in 0..=86400",
                    self.classify_refresh_s
                ),
            ));
        }
        if !(0.5..=1.0).contains(&self.gender_min_p) {
            return Err(Invalid::of(
                "gender_min_p",
                format!(
                    "{} is not between 0.5 and 1 (the more likely gender's probability is ≥ 0.5)",
                    self.gender_min_p
                ),
            ));
        }
        unit("bucket_min_p", self.bucket_min_p)?;
        for (key, v) in [
            ("min_dwell_s", self.min_dwell_s),
            ("visit_end_s", self.visit_end_s),
            ("counts_interval_s", self.counts_interval_s),
        ] {
            if !(v.is_finite() && (0.0..=86_400.0).contains(&v)) {
                return Err(Invalid::of(
                    key,
                    format!("{v} is not a number of seconds in 0..=86400"),
                ));
            }
        }
        self.validate_mqtt()?;
        if !(self.gender_logodds_clamp > 0.0 && self.gender_logodds_clamp.is_finite()) {
            return Err(Invalid::of(
                "gender_logodds_clamp",
                format!("{} is not > 0", self.gender_logodds_clamp),
            ));
        }
        if !(self.status_interval_s.is_finite() && self.status_interval_s >= 0.0) {
            return Err(Invalid::of(
                "status_interval_s",
                format!("{} is not ≥ 0", self.status_interval_s),
            ));
        }
        if self.detect_every == 0 {
            return Err(Invalid::of("detect_every", "must be ≥ 1"));
        }
        if !(0.0..=1.0).contains(&self.motion_threshold) {
            return Err(Invalid::of(
                "motion_threshold",
                format!(
                    "{} is not a fraction of the grid between 0 and 1 (0: off)",
                    self.motion_threshold
                ),
            ));
        }
        if !(self.detect_max_interval_s.is_finite()
            && self.detect_max_interval_s > 0.0
            && self.detect_max_interval_s <= 3600.0)
        {
            return Err(Invalid::of(
                "detect_max_interval_s",
                format!(
                    "{} is not a number of seconds in (0, 3600]",
                    self.detect_max_interval_s
                ),
            ));
        }
        if !(self.full_detect_interval_s.is_finite()
            && (0.0..=3600.0).contains(&self.full_detect_interval_s))
        {
            return Err(Invalid::of(
                "full_detect_interval_s",
                format!(
                    "{} is not a number of seconds in [0, 3600] (0: off)",
                    self.full_detect_interval_s
                ),
            ));
        }
        if !(self.follow_interval_s.is_finite() && (0.0..=60.0).contains(&self.follow_interval_s)) {
            return Err(Invalid::of(
                "follow_interval_s",
                format!(
                    "{} is not a number of seconds in [0, 60] (0: off)",
                    self.follow_interval_s
                ),
            ));
        }
        if !(1..=3600).contains(&self.watchdog_timeout_s) {
            return Err(Invalid::of(
                "watchdog_timeout_s",
                format!("{} is not in 1..=3600", self.watchdog_timeout_s),
            ));
        }
        if !(1..=64).contains(&self.threads) {
            return Err(Invalid::of(
                "threads",
                format!("{} is not in 1..=64", self.threads),
            ));
        }
        if let Workers::Count(n) = self.workers {
            if !(1..=64).contains(&n) {
                return Err(Invalid::of(
                    "workers",
                    format!("{n} is not \"auto\" or in 1..=64"),
                ));
            }
        }
        if let Some(n) = &self.screen_notice {
            if n.len() > 100 || !n.bytes().all(|b| (b' '..=b'~').contains(&b)) {
                return Err(Invalid::of(
                    "screen_notice",
                    "must be printable ASCII (the screen's font) and at most 100 characters",
                ));
            }
        }
        if !(self.display == "none"
            || self.display.starts_with("png:")
            || self.display.starts_with("fb:")
            || self.display.starts_with("spi"))
        {
            return Err(Invalid::of(
                "display",
                format!(
                    "`{}` is not one of none, png:DIR, fb:PATH, spi:",
                    self.display
                ),
            ));
        }
        Ok(())
    }
}

impl Config {
    /// The MQTT keys (only `mqtt`'s own syntax and the others' ranges; files are read when the
    /// publisher starts).
    fn validate_mqtt(&self) -> Result<(), Invalid> {
        use crate::mqtt::{check_topic_part, BrokerUrl};
        let url = match &self.mqtt {
            Some(u) => Some(BrokerUrl::parse(u).map_err(|e| Invalid::of("mqtt", e))?),
            None => None,
        };
        check_topic_part(&self.mqtt_topic_prefix, true)
            .map_err(|e| Invalid::of("mqtt_topic_prefix", e))?;
        if let Some(id) = &self.mqtt_client_id {
            check_topic_part(id, false).map_err(|e| Invalid::of("mqtt_client_id", e))?;
            if id.len() > 64 {
                return Err(Invalid::of(
                    "mqtt_client_id",
                    format!("`{id}` is longer than 64 bytes"),
                ));
            }
        }
        for (key, q) in [
            ("mqtt_qos_face", self.mqtt_qos_face),
            ("mqtt_qos_visit", self.mqtt_qos_visit),
            ("mqtt_qos_counts", self.mqtt_qos_counts),
            ("mqtt_qos_status", self.mqtt_qos_status),
        ] {
            if q > 1 {
                return Err(Invalid::of(key, format!("{q} is not a QoS of 0 or 1")));
            }
        }
        if !(1..=100_000).contains(&self.mqtt_queue) {
            return Err(Invalid::of(
                "mqtt_queue",
                format!("{} is not in 1..=100000", self.mqtt_queue),
            ));
        }
        if !(5..=3600).contains(&self.mqtt_keep_alive_s) {
            return Err(Invalid::of(
                "mqtt_keep_alive_s",
                format!("{} is not in 5..=3600 seconds", self.mqtt_keep_alive_s),
            ));
        }
        if self.mqtt_cert.is_some() != self.mqtt_key.is_some() {
            let (missing, set) = if self.mqtt_cert.is_some() {
                ("mqtt_key", "mqtt_cert")
            } else {
                ("mqtt_cert", "mqtt_key")
            };
            return Err(Invalid::of(
                missing,
                "a client certificate needs both mqtt_cert and mqtt_key",
            )
            .with(set));
        }
        if self.mqtt_password_file.is_some() && self.mqtt_user.is_none() {
            return Err(
                Invalid::of("mqtt_user", "mqtt_password_file is set without a user name")
                    .with("mqtt_password_file"),
            );
        }
        let plain = url.as_ref().is_some_and(|u| !u.tls);
        if plain && self.mqtt_password_file.is_some() && !self.mqtt_allow_plain_password {
            return Err(Invalid::of(
                "mqtt_password_file",
                "a password over mqtt:// (plain) crosses the network readable by anyone on the \
                 way: use mqtts://, or set mqtt_allow_plain_password = true on a network you trust",
            )
            .with("mqtt"));
        }
        for (key, set) in [
            ("mqtt_ca", self.mqtt_ca.is_some()),
            ("mqtt_cert", self.mqtt_cert.is_some()),
        ] {
            if set && plain {
                return Err(Invalid::of(
                    key,
                    format!("`{key}` is set but `mqtt` is mqtt:// (plain): use mqtts://"),
                )
                .with("mqtt"));
            }
        }
        Ok(())
    }
}
