//! The connection thread: rumqttc's event loop driven with blocking calls, reconnects with a
//! jittered backoff, and what it tells the publisher thread ([`ConnEvent`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rumqttc::{Connection, Event, Packet};

/// Reconnect backoff: the first wait, and the longest.
const BACKOFF_MIN: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(8);
/// A connection that lasted this long starts the backoff again from 0.5 s (`BACKOFF_MIN`); one
/// that broke sooner (a broker that takes the connection and drops it, another kiosk with the
/// same client id knocking this one off) goes on doubling it.
pub const CONNECTION_LASTED: Duration = Duration::from_secs(30);

/// How long a QoS 1 line may wait for its PUBACK before the broker is taken for stuck and the
/// connection is made again (the line is sent again then): the keep-alive, at least 10 s. A
/// broker that answers pings but never acknowledges would otherwise hold every QoS 1 line.
pub fn ack_deadline(keep_alive: Duration) -> Duration {
    keep_alive.max(Duration::from_secs(10))
}

/// A wait of `backoff` with jitter: uniform in `[backoff / 2, backoff]` ("equal jitter"), so
/// kiosks that lost one broker together do not come back in step.
fn jittered(backoff: Duration) -> Duration {
    use std::hash::BuildHasher;
    // std's per-process random keys, hashed with the time: no crate for one random number
    let r = std::collections::hash_map::RandomState::new().hash_one(Instant::now());
    let half = backoff / 2;
    half + half.mul_f64((r >> 11) as f64 / (1u64 << 53) as f64)
}

/// What the connection thread tells the publisher thread.
pub(super) enum ConnEvent {
    Connected,
    /// A PUBACK (the one QoS 1 line in flight).
    Acked,
    /// The connection failed or broke (why, in words); the connection thread waits out its
    /// backoff and tries again.
    Failed(String),
    /// Our DISCONNECT went out (closing).
    Disconnected,
    /// A message on a topic the kiosk subscribed to (the update command).
    Command {
        topic: String,
        payload: Vec<u8>,
        retained: bool,
    },
}

/// The connection thread: drives rumqttc's event loop with blocking calls only (a poll is never
/// cut short, so no packet is left half written), reconnects with a jittered backoff
/// ([`jittered`]) from 0.5 s doubling to 8 s, back to 0.5 s only after a connection that lasted
/// [`CONNECTION_LASTED`], and forwards what the publisher thread needs. Ends when the publisher
/// is done with it.
pub(super) fn drive(mut conn: Connection, events: mpsc::Sender<ConnEvent>, stop: Arc<AtomicBool>) {
    let mut backoff = BACKOFF_MIN;
    let mut connected_at: Option<Instant> = None;
    for event in conn.iter() {
        let forward = match event {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                connected_at = Some(Instant::now());
                Some(ConnEvent::Connected)
            }
            Ok(Event::Incoming(Packet::PubAck(_))) => Some(ConnEvent::Acked),
            Ok(Event::Incoming(Packet::Publish(p))) => Some(ConnEvent::Command {
                topic: p.topic,
                payload: p.payload.to_vec(),
                retained: p.retain,
            }),
            Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) => Some(ConnEvent::Disconnected),
            Ok(_) => None,
            Err(e) => {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                if connected_at
                    .take()
                    .is_some_and(|t| t.elapsed() >= CONNECTION_LASTED)
                {
                    backoff = BACKOFF_MIN;
                }
                let _ = events.send(ConnEvent::Failed(describe(&e)));
                // Sleep the backoff in steps, so a closing publisher is not held up.
                let until = Instant::now() + jittered(backoff);
                while Instant::now() < until && !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(50));
                }
                backoff = (backoff * 2).min(BACKOFF_MAX);
                None
            }
        };
        if let Some(ev) = forward {
            if events.send(ev).is_err() || stop.load(Ordering::Relaxed) {
                return;
            }
        }
    }
}

/// One line for a connection error: the broker's refusal in words, TLS and I/O errors as
/// rumqttc says them.
fn describe(e: &rumqttc::ConnectionError) -> String {
    use rumqttc::ConnectReturnCode as C;
    match e {
        rumqttc::ConnectionError::ConnectionRefused(code) => {
            let why = match code {
                C::BadUserNamePassword => {
                    "bad user name or password (mqtt_user, mqtt_password_file)"
                }
                C::NotAuthorized => {
                    "not authorized (mqtt_user, mqtt_password_file, client certificate)"
                }
                C::BadClientId => "client id rejected (mqtt_client_id)",
                C::ServiceUnavailable => "service unavailable",
                C::RefusedProtocolVersion => "protocol version refused (MQTT 3.1.1 needed)",
                C::Success => "success?",
            };
            format!("the broker refused the connection: {why}")
        }
        other => {
            let s = crate::one_line(&other.to_string());
            if s.contains("NotValidForName") || s.contains("not valid for name") {
                format!("TLS: the broker's certificate is not issued for the host in `mqtt`: {s}")
            } else if s.contains("certificate") || s.contains("Certificate") {
                format!("TLS: the broker's certificate is not trusted (mqtt_ca): {s}")
            } else {
                s
            }
        }
    }
}
