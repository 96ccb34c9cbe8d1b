//! What the publisher is told: the broker's address ([`BrokerUrl`]), the checked topic parts,
//! the client id derived from the machine, and [`MqttSettings`] (built by `Config::mqtt`).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;

/// A broker address from `mqtt://host[:port]` or `mqtts://host[:port]` (ports 1883 / 8883 by
/// default).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerUrl {
    pub tls: bool,
    pub host: String,
    pub port: u16,
}

impl BrokerUrl {
    pub fn parse(s: &str) -> Result<BrokerUrl, String> {
        let (tls, rest) = if let Some(r) = s.strip_prefix("mqtts://") {
            (true, r)
        } else if let Some(r) = s.strip_prefix("mqtt://") {
            (false, r)
        } else {
            return Err(format!(
                "`{s}` is not mqtt://HOST[:PORT] or mqtts://HOST[:PORT]"
            ));
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains('@') {
            return Err(format!(
                "`{s}`: no user or password in the URL (mqtt_user, mqtt_password_file)"
            ));
        }
        if rest.contains('/') || rest.contains('?') {
            return Err(format!("`{s}`: no path or query after the host and port"));
        }
        let default_port = if tls { 8883 } else { 1883 };
        // [v6]:port, host:port, host
        let (host, port) = if let Some(r) = rest.strip_prefix('[') {
            let (h, after) = r
                .split_once(']')
                .ok_or_else(|| format!("`{s}`: unclosed [ in the host"))?;
            match after.strip_prefix(':') {
                Some(p) => (h, Some(p)),
                None if after.is_empty() => (h, None),
                None => return Err(format!("`{s}`: expected :PORT after ]")),
            }
        } else {
            match rest.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (rest, None),
            }
        };
        if host.is_empty() {
            return Err(format!("`{s}` has no host"));
        }
        // A name or IPv4 address (letters, digits, - . _), or an IPv6 address in [ ].
        let bracketed = rest.starts_with('[');
        let fits = if bracketed {
            host.contains(':')
                && host
                    .chars()
                    .all(|c| c.is_ascii_hexdigit() || ":.".contains(c))
        } else {
            host.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-._".contains(c))
        };
        if !fits {
            return Err(format!(
                "`{s}`: `{host}` is not a host name or an IP address (IPv6 in [ ])"
            ));
        }
        let port = match port {
            None => default_port,
            Some(p) => match p.parse::<u16>() {
                Ok(p) if p > 0 => p,
                _ => return Err(format!("`{s}`: port `{p}` is not in 1..=65535")),
            },
        };
        Ok(BrokerUrl {
            tls,
            host: host.to_string(),
            port,
        })
    }
}

impl std::fmt::Display for BrokerUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.tls { "mqtts" } else { "mqtt" };
        if self.host.contains(':') {
            write!(f, "{scheme}://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{scheme}://{}:{}", self.host, self.port)
        }
    }
}

/// Longest topic part (prefix or client id) accepted, in bytes: far below MQTT's 65 535 for a
/// whole topic, and long enough for any real prefix.
pub const MAX_TOPIC_PART: usize = 256;

/// Whether `s` may stand in a topic level (the client id) or be the prefix (levels joined by
/// `/`): not empty, at most [`MAX_TOPIC_PART`] bytes, no wildcard, no NUL or other control
/// character, no empty level, and no level starting with `$` (topics the broker reserves, as
/// `$SYS`, which a subscription to `#` does not see).
pub fn check_topic_part(s: &str, levels: bool) -> Result<(), String> {
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    if s.len() > MAX_TOPIC_PART {
        return Err(format!(
            "is {} bytes long, more than {MAX_TOPIC_PART}",
            s.len()
        ));
    }
    if s.contains(['+', '#']) {
        return Err(format!("`{s}` holds a wildcard (+, #)"));
    }
    if s.chars().any(char::is_control) {
        return Err(format!("{s:?} holds a control character"));
    }
    if !levels && s.contains('/') {
        return Err(format!("`{s}` holds a /"));
    }
    if levels && s.split('/').any(str::is_empty) {
        return Err(format!(
            "`{s}` has an empty level (a leading, trailing or double /)"
        ));
    }
    if s.split('/').any(|level| level.starts_with('$')) {
        return Err(format!(
            "`{s}` has a level starting with $ (topics the broker reserves, like $SYS)"
        ));
    }
    Ok(())
}

/// The default client id: 12 hex digits of HMAC-SHA256(machine id, "agegender"): stable per
/// machine, says nothing about the machine id itself.
pub fn default_client_id() -> anyhow::Result<String> {
    let id = ["/etc/machine-id", "/var/lib/dbus/machine-id"]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .context("no /etc/machine-id to derive the MQTT client id from: set mqtt_client_id (--mqtt-client-id)")?;
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, id.as_bytes());
    let tag = ring::hmac::sign(&key, b"agegender");
    Ok(tag.as_ref()[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// Everything the publisher needs (`Config::mqtt` builds it from the file and flags).
#[derive(Clone, Debug)]
pub struct MqttSettings {
    pub url: BrokerUrl,
    pub client_id: String,
    pub prefix: String,
    pub faces: bool,
    /// QoS of face, visit, counts and status lines (index: [`crate::report::LineKind`] as usize).
    pub qos: [u8; 4],
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub user: Option<String>,
    pub password_file: Option<PathBuf>,
    pub queue: usize,
    pub keep_alive: Duration,
    /// Updates over MQTT: where an accepted command's URL is handed over (`None`: no command
    /// is listened for), and the update-state file whose line is published.
    pub update_request: Option<PathBuf>,
    pub update_state: Option<PathBuf>,
}

impl MqttSettings {
    /// `<prefix>/<id>/<leaf>`.
    pub fn topic(&self, leaf: &str) -> String {
        format!("{}/{}/{leaf}", self.prefix, self.client_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_urls() {
        let u = BrokerUrl::parse("mqtt://broker.local").unwrap();
        assert_eq!(
            (u.tls, u.host.as_str(), u.port),
            (false, "broker.local", 1883)
        );
        let u = BrokerUrl::parse("mqtts://10.0.0.2:18883/").unwrap();
        assert_eq!((u.tls, u.host.as_str(), u.port), (true, "10.0.0.2", 18883));
        let u = BrokerUrl::parse("mqtt://[::1]:2000").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", 2000));
        // found by the fuzz smoke: a host that prints as a URL that does not parse back
        assert!(BrokerUrl::parse("mqtt://Y:81]:2000").is_err());
        assert!(BrokerUrl::parse("mqtt://[broker]:1883").is_err());
        assert!(BrokerUrl::parse("mqtt://bro ker").is_err());
        assert!(BrokerUrl::parse("mqtt://kiosk-hub_1.local:1883").is_ok());
        assert_eq!(u.to_string(), "mqtt://[::1]:2000");
        for bad in [
            "tcp://x",
            "mqtt://",
            "mqtt://h:0",
            "mqtt://h:99999",
            "mqtt://u:p@h",
            "mqtt://h/topic",
            "mqtt://[::1",
        ] {
            assert!(BrokerUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn topic_parts() {
        assert!(check_topic_part("agegender", true).is_ok());
        assert!(check_topic_part("shop/floor1", true).is_ok());
        assert!(check_topic_part("shop//x", true).is_err());
        assert!(check_topic_part("/x", true).is_err());
        assert!(check_topic_part("a+b", false).is_err());
        assert!(check_topic_part("a/b", false).is_err());
        assert!(check_topic_part("", false).is_err());
        assert!(check_topic_part("$SYS", true).is_err());
        assert!(check_topic_part("shop/$share", true).is_err());
        assert!(check_topic_part("$kiosk", false).is_err());
        assert!(check_topic_part("a\u{7}b", false).is_err());
        assert!(check_topic_part("a\nb", true).is_err());
        assert!(check_topic_part("a\0b", false).is_err());
        assert!(check_topic_part("price$", false).is_ok());
        assert!(check_topic_part(&"x".repeat(MAX_TOPIC_PART), true).is_ok());
        assert!(check_topic_part(&"x".repeat(MAX_TOPIC_PART + 1), true).is_err());
    }
}
