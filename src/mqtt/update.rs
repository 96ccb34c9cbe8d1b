//! Updates over MQTT (issue 33; docs/updates.md), the kiosk's part. The kiosk runs as a user
//! that cannot write the boot partition's system slots, so it only takes the command: a JSON
//! object `{"url": "http(s)://..."}` on `<prefix>/<id>/cmd/update` (QoS 1, not retained),
//! checked here ([`parse_command`]); an accepted URL is written to the hand-off file
//! ([`hand_off`], `mqtt_update_request`), the kiosk answers `accepted` on `<prefix>/<id>/update`
//! and ends its run as a stop does, with exit status [`EXIT_UPDATE`]. The SD-card image's /init
//! (root) then downloads the bundle and installs it as it installs one from the card. What the
//! update did next (the line of `update-state.txt`, `mqtt_update_state`) is published, retained,
//! on the same topic by the kiosk that runs after it ([`state_message`]).
//!
//! Everything here runs on the MQTT thread, never in the frame loop.

use std::io::Write;
use std::path::Path;

use serde_json::{json, Value};

/// The exit status of a run that ended because an update was accepted over MQTT: the URL is in
/// the hand-off file, for /init.
pub const EXIT_UPDATE: u8 = 4;

/// Longest command payload taken, in bytes.
pub const MAX_COMMAND: usize = 4096;
/// Longest URL taken, in bytes.
pub const MAX_URL: usize = 2048;
/// Longest update-state line read.
const MAX_STATE: u64 = 4096;

/// The example a refusal shows.
const EXAMPLE: &str = r#"{"url": "https://HOST/PATH.swu"}"#;

/// The bundle URL a command payload asks for, or why the command is refused (in words that
/// name what was wrong). A retained command is refused: it would be obeyed again at every
/// connect.
pub fn parse_command(payload: &[u8], retained: bool) -> Result<String, String> {
    if retained {
        return Err(
            "a retained command is not obeyed (it would run again at every connect): publish it without retain"
                .into(),
        );
    }
    if payload.len() > MAX_COMMAND {
        return Err(format!(
            "the command is {} bytes, more than {MAX_COMMAND}",
            payload.len()
        ));
    }
    let text = std::str::from_utf8(payload)
        .map_err(|_| format!("the command is not UTF-8 text; send {EXAMPLE}"))?;
    if text.trim().is_empty() {
        return Err(format!("the command is empty; send {EXAMPLE}"));
    }
    let v: Value = serde_json::from_str(text).map_err(|e| {
        format!(
            "the command is not JSON ({}); send {EXAMPLE}",
            crate::one_line(&e.to_string())
        )
    })?;
    let Value::Object(map) = v else {
        return Err(format!("the command is not a JSON object; send {EXAMPLE}"));
    };
    if let Some(k) = map.keys().find(|k| k.as_str() != "url") {
        return Err(format!(
            "unknown key `{}` in the command (only `url`): send {EXAMPLE}",
            clip(k, 64)
        ));
    }
    match map.get("url") {
        None => Err(format!("the command has no `url`; send {EXAMPLE}")),
        Some(Value::String(u)) => {
            check_url(u)?;
            Ok(u.clone())
        }
        Some(_) => Err(format!("`url` is not a string; send {EXAMPLE}")),
    }
}

/// An `http://` or `https://` URL with a host, in printable ASCII without spaces, quotes or
/// angle brackets, no user or password, at most [`MAX_URL`] bytes. Errors name the URL.
pub fn check_url(u: &str) -> Result<(), String> {
    if u.len() > MAX_URL {
        return Err(format!(
            "`url` is {} bytes long, more than {MAX_URL}",
            u.len()
        ));
    }
    let shown = clip(u, 200);
    let rest = u
        .strip_prefix("http://")
        .or_else(|| u.strip_prefix("https://"))
        .ok_or_else(|| format!("`{shown}` is not an http:// or https:// URL"))?;
    if let Some(c) = u
        .chars()
        .find(|c| !c.is_ascii_graphic() || "\"'<>\\`{}|^".contains(*c))
    {
        return Err(format!(
            "`{shown}` holds {}: not allowed in the URL (percent-encode it)",
            match c {
                ' ' => "a space".to_string(),
                c if c.is_control() => "a control character".to_string(),
                c => format!("`{c}`"),
            }
        ));
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.contains('@') {
        return Err(format!(
            "`{shown}`: no user or password in the URL (it would be published and logged)"
        ));
    }
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    if host.is_empty() {
        return Err(format!("`{shown}` has no host"));
    }
    Ok(())
}

/// Write `url` (and a newline) to `request` for /init: through a new file beside it, renamed
/// over it, so /init never reads half a URL. Readable and writable by the kiosk's user alone
/// (and root). Errors name the file.
pub fn hand_off(request: &Path, url: &str) -> anyhow::Result<()> {
    use anyhow::Context;
    let mut tmp = request.as_os_str().to_owned();
    tmp.push(".new");
    let tmp = std::path::PathBuf::from(tmp);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(&tmp)
        .with_context(|| format!("mqtt_update_request: cannot write {}", tmp.display()))?;
    f.write_all(url.as_bytes())
        .and_then(|_| f.write_all(b"\n"))
        .and_then(|_| f.sync_all())
        .with_context(|| format!("mqtt_update_request: cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, request).with_context(|| {
        format!(
            "mqtt_update_request: cannot rename {} to {}",
            tmp.display(),
            request.display()
        )
    })
}

/// The first line of the update-state file, trimmed; `None` when it is missing, empty or
/// unreadable.
pub fn read_state(path: &Path) -> Option<String> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(path)
        .ok()?
        .take(MAX_STATE)
        .read_to_string(&mut text)
        .ok()?;
    let line = text.lines().next()?.trim();
    (!line.is_empty()).then(|| line.to_string())
}

/// Why a command must wait, from the update-state line: a try boot is under way (its slot
/// has not committed or failed yet).
pub fn busy(state: Option<&str>) -> Option<String> {
    let mut w = state?.split_whitespace();
    if w.next()? != "trying" {
        return None;
    }
    let slot = w.next().unwrap_or("?");
    let version = w.next().unwrap_or("?");
    Some(format!(
        "slot {slot} (version {version}) is on trial (a try boot): send the command again once it has committed or fallen back"
    ))
}

/// The result topic's message for an update-state line (`WORD SLOT VERSION [REASON...]`, as
/// board/image/update.sh writes it): `{"state": WORD, "slot": .., "version": .., "reason": ..}`.
pub fn state_message(line: &str) -> Vec<u8> {
    let mut parts = line.splitn(4, char::is_whitespace);
    let mut m = serde_json::Map::new();
    for key in ["state", "slot", "version", "reason"] {
        match parts.next().map(str::trim) {
            Some(v) if !v.is_empty() && v != "-" => {
                m.insert(key.into(), Value::String(v.to_string()));
            }
            _ => {}
        }
    }
    Value::Object(m).to_string().into_bytes()
}

/// The answer to an accepted command.
pub fn accepted_message(url: &str) -> Vec<u8> {
    json!({"state": "accepted", "url": url})
        .to_string()
        .into_bytes()
}

/// The answer to a refused command.
pub fn refused_message(reason: &str) -> Vec<u8> {
    json!({"state": "refused", "reason": reason})
        .to_string()
        .into_bytes()
}

/// At most `n` characters of `s` (with … when cut), control characters escaped: one line.
fn clip(s: &str, n: usize) -> String {
    let cut = match s.char_indices().nth(n) {
        Some((i, _)) => &s[..i],
        None => s,
    };
    let shown = cut.escape_debug().to_string();
    if cut.len() < s.len() {
        shown + "…"
    } else {
        shown
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_good_command_gives_its_url() {
        for u in [
            "http://10.0.2.2:8000/exits.swu",
            "https://updates.example.com/fleet/agegender-rpi-arm64.swu?t=1%20x",
            "http://[fd00::1]:8080/a.swu",
            "http://host",
        ] {
            let payload = json!({ "url": u }).to_string();
            assert_eq!(parse_command(payload.as_bytes(), false).as_deref(), Ok(u));
        }
        // whitespace around the JSON is fine
        assert!(parse_command(b"  {\"url\":\"http://h/x\"}\n", false).is_ok());
    }

    #[test]
    fn bad_commands_are_refused_naming_what_was_wrong() {
        let cases: &[(&[u8], bool, &str)] = &[
            (b"{\"url\":\"http://h/x\"}", true, "retained"),
            (b"", false, "empty"),
            (b"not json", false, "not JSON"),
            (b"[1,2]", false, "not a JSON object"),
            (b"{\"uri\":\"http://h/x\"}", false, "unknown key `uri`"),
            (b"{}", false, "no `url`"),
            (b"{\"url\":5}", false, "`url` is not a string"),
            (
                b"{\"url\":\"ftp://h/x.swu\"}",
                false,
                "`ftp://h/x.swu` is not an http",
            ),
            (b"{\"url\":\"/boot/x.swu\"}", false, "not an http"),
            (b"{\"url\":\"http:///x.swu\"}", false, "has no host"),
            (b"{\"url\":\"http://:80/x\"}", false, "has no host"),
            (
                b"{\"url\":\"http://u:p@h/x\"}",
                false,
                "no user or password",
            ),
            (b"{\"url\":\"http://h/a b\"}", false, "a space"),
            (
                b"{\"url\":\"http://h/a\\nb\"}",
                false,
                "a control character",
            ),
            (b"{\"url\":\"http://h/a\\\"b\"}", false, "`\"`"),
            (b"{\"url\":\"http://h/\xc3\xa9\"}", false, "`\u{e9}`"),
            (b"\xff\xfe", false, "not UTF-8"),
        ];
        for (payload, retained, want) in cases {
            let e = parse_command(payload, *retained).unwrap_err();
            assert!(
                e.contains(want),
                "{:?}: {e:?} does not say {want:?}",
                String::from_utf8_lossy(payload)
            );
            assert!(!e.contains('\n'), "{e:?}");
        }
        let long = format!("{{\"url\":\"http://h/{}\"}}", "a".repeat(MAX_URL));
        assert!(parse_command(long.as_bytes(), false)
            .unwrap_err()
            .contains("more than 2048"));
        let huge = vec![b' '; MAX_COMMAND + 1];
        assert!(parse_command(&huge, false)
            .unwrap_err()
            .contains("more than 4096"));
    }

    #[test]
    fn no_panic_on_any_short_input() {
        // every 1- and 2-byte payload, and truncations of a good one
        for a in 0..=255u8 {
            let _ = parse_command(&[a], false);
            for b in 0..=255u8 {
                let _ = parse_command(&[a, b], false);
            }
        }
        let good = br#"{"url":"http://[fd00::1]:8/x"}"#;
        for n in 0..good.len() {
            let _ = parse_command(&good[..n], false);
        }
        for u in [
            "http://[",
            "http://[]",
            "https://:",
            "http://@",
            "http://a:b:c",
        ] {
            let _ = check_url(u);
        }
    }

    #[test]
    fn the_hand_off_file_holds_the_url_and_nobody_else_may_read_it() {
        let dir = tempfile::tempdir().unwrap();
        let req = dir.path().join("url");
        hand_off(&req, "http://h/x.swu").unwrap();
        assert_eq!(std::fs::read_to_string(&req).unwrap(), "http://h/x.swu\n");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&req).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "mode {mode:o}");
        }
        assert!(!dir.path().join("url.new").exists());
        // again: replaced, not appended
        hand_off(&req, "http://h/y.swu").unwrap();
        assert_eq!(std::fs::read_to_string(&req).unwrap(), "http://h/y.swu\n");
        let e = hand_off(&dir.path().join("no/such/url"), "http://h/x").unwrap_err();
        let e = format!("{e:#}");
        assert!(
            e.contains("mqtt_update_request") && e.contains("no/such/url.new"),
            "{e}"
        );
    }

    #[test]
    fn state_lines_become_result_messages() {
        let m = |l: &str| serde_json::from_slice::<Value>(&state_message(l)).unwrap();
        assert_eq!(
            m("committed b 1.2+good"),
            json!({"state": "committed", "slot": "b", "version": "1.2+good"})
        );
        assert_eq!(
            m("failed a 1.2+exits agegender exited with status 1 after 0 s during the try"),
            json!({"state": "failed", "slot": "a", "version": "1.2+exits",
                   "reason": "agegender exited with status 1 after 0 s during the try"})
        );
        assert_eq!(
            m("fetch-failed a - http://h/x.swu: wget: server returned error: HTTP/1.0 404 File not found"),
            json!({"state": "fetch-failed", "slot": "a",
                   "reason": "http://h/x.swu: wget: server returned error: HTTP/1.0 404 File not found"})
        );
        assert_eq!(m("odd"), json!({"state": "odd"}));
    }

    #[test]
    fn a_try_in_progress_makes_commands_wait() {
        assert!(busy(Some("trying b 1.2+good"))
            .unwrap()
            .contains("slot b (version 1.2+good)"));
        for s in [
            None,
            Some("committed b 1.2"),
            Some("failed a 1.2 why"),
            Some(""),
        ] {
            assert_eq!(busy(s), None, "{s:?}");
        }
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("update-state.txt");
        assert_eq!(read_state(&f), None);
        std::fs::write(&f, "trying b 1.2\n").unwrap();
        assert_eq!(read_state(&f).as_deref(), Some("trying b 1.2"));
        std::fs::write(&f, "\n").unwrap();
        assert_eq!(read_state(&f), None);
    }
}
