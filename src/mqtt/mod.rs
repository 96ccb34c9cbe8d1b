//! MQTT publisher (off unless `mqtt` is set): the report's lines, one topic per type, to a
//! broker, from a thread of its own so the frame loop never waits for the network.
//!
//! Topics: `<mqtt_topic_prefix>/<client id>/{face,visit,counts,status}` carry the JSON lines
//! (faces only with `mqtt_faces`); `<prefix>/<id>/availability` is `online` (retained, sent at
//! every connect) or `offline` (retained: the Last Will the broker sends when the kiosk dies or
//! its network goes, and what a clean exit sends before it disconnects).
//!
//! Updates (the SD-card image, `mqtt_update_request`; [`update`]): the kiosk subscribes to
//! `<prefix>/<id>/cmd/update` (QoS 1), answers on `<prefix>/<id>/update` (`accepted`, retained;
//! `refused` with the reason, not retained) and publishes there, retained, the line of the
//! update-state file (`mqtt_update_state`) at every connect and when it changes (looked at
//! every 2 s). An accepted command sets the frame loop's stop flag ([`UpdateHandle`]).
//!
//! Queueing: the frame loop hands each line to a bounded channel (`mqtt_queue` lines) and never
//! blocks; a full channel drops the line and counts it (`mqtt_dropped` in the status line). The
//! publisher thread keeps up to `mqtt_queue` more in its own queue. QoS 1 lines (visits and
//! counts by default) are sent one at a time and kept until the broker acknowledges them: while
//! the broker is away they wait in the queue and go out, oldest first, once it is back (at least
//! once: a line in flight when the connection broke is sent again). A QoS 1 line not
//! acknowledged within [`ack_deadline`] (the keep-alive, at least 10 s) means a broker that
//! answers pings but is stuck: the connection is made again and the line sent again. QoS 0
//! lines (faces, status) are sent only while connected, and never wait behind a QoS 1 line that
//! waits for its acknowledgement; while away they are dropped and counted. A second thread
//! drives the connection with blocking calls (a poll is never cut short) and reconnects with a
//! jittered backoff, 0.5 s doubling to 8 s, that starts again from 0.5 s only after a
//! connection lasted [`CONNECTION_LASTED`] (two kiosks with one client id knock each other off
//! less and less often, not every half second). Each new kind of connection error is one
//! warning line on stderr; the serial log goes on.
//!
//! TLS (`mqtts://`): rustls with the ring provider; the CA from `mqtt_ca` (else the system's
//! roots); a client certificate from `mqtt_cert` + `mqtt_key`; a user name from `mqtt_user`
//! with the password read from `mqtt_password_file` (never a flag, never the URL; its first
//! line; refused when others may read it, and over plain `mqtt://` unless
//! `mqtt_allow_plain_password`). The default
//! client id is derived from `/etc/machine-id` (an HMAC of it, not the id itself, which systemd
//! asks programs not to expose).

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;
use rumqttc::{Client, Connection, LastWill, MqttOptions, QoS, Transport};

use crate::report::{LineKind, Publish};

mod connection;
mod settings;
mod tls;
pub mod update;

pub use connection::{ack_deadline, CONNECTION_LASTED};
use connection::{drive, ConnEvent};
pub use settings::{check_topic_part, default_client_id, BrokerUrl, MqttSettings, MAX_TOPIC_PART};
use tls::read_file;
pub use tls::tls_config;

/// How long a closing publisher keeps trying to deliver what is queued.
pub const LINGER: Duration = Duration::from_secs(5);

/// The password in `p`: its first line. A file others may read or change is refused (as ssh
/// refuses a private key others can read): `chmod 600` it, owned by the kiosk's user.
fn read_password(p: &std::path::Path) -> anyhow::Result<String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(p)
            .with_context(|| format!("mqtt_password_file {}: cannot read it", p.display()))?
            .permissions()
            .mode();
        if mode & 0o007 != 0 {
            anyhow::bail!(
                "mqtt_password_file {}: others may read or change it (mode {:03o}): chmod 600 it",
                p.display(),
                mode & 0o777
            );
        }
    }
    let bytes = read_file("mqtt_password_file", p)?;
    let text = String::from_utf8(bytes)
        .map_err(|_| anyhow::anyhow!("mqtt_password_file {}: not UTF-8 text", p.display()))?;
    let first = text.lines().next().unwrap_or("");
    if first.is_empty() {
        anyhow::bail!(
            "mqtt_password_file {}: the first line (the password) is empty",
            p.display()
        );
    }
    Ok(first.to_string())
}

/// QoS of a setting (0 or 1; checked in `Config::validate`).
fn qos(n: u8) -> QoS {
    if n == 0 {
        QoS::AtMostOnce
    } else {
        QoS::AtLeastOnce
    }
}

/// Counters shared by the frame loop's side and the publisher thread.
#[derive(Debug, Default)]
struct Shared {
    dropped: AtomicU64,
    connected: AtomicBool,
    /// Lines the broker has taken (QoS 0 written, QoS 1 acknowledged).
    sent: AtomicU64,
    /// Set by [`MqttPublisher::close`]: the publisher thread notices it even with a full queue
    /// (when it does not read the channel, so never sees the channel close).
    closing: AtomicBool,
    /// An update command was accepted (its URL handed over): the run ends.
    update_requested: AtomicBool,
    /// The frame loop's stop flag, set once an update is accepted ([`UpdateHandle::stop_with`]).
    stop: OnceLock<Arc<AtomicBool>>,
}

/// The frame loop's side of updates over MQTT: whether one was accepted, and the flag that
/// ends the run when one is.
#[derive(Clone)]
pub struct UpdateHandle(Arc<Shared>);

impl UpdateHandle {
    /// The flag to set when an update is accepted (the frame loop's stop flag: the run ends as
    /// a stop does, visits in progress written).
    pub fn stop_with(&self, stop: Arc<AtomicBool>) {
        let _ = self.0.stop.set(stop);
    }

    /// An update command was accepted and handed over.
    pub fn requested(&self) -> bool {
        self.0.update_requested.load(Ordering::Relaxed)
    }
}

/// One line on its way: which topic, and its bytes (buffers are recycled).
struct Msg {
    /// [`LineKind`] as usize, or [`AVAILABILITY`].
    topic: usize,
    buf: Vec<u8>,
}

const AVAILABILITY: usize = 4;
/// The update result topic, retained (the update's state) and not (a refused command).
const UPDATE_STATE: usize = 5;
const UPDATE_ANSWER: usize = 6;
/// How often the update-state file is looked at.
const STATE_POLL: Duration = Duration::from_secs(2);

/// A report line (not availability or an update message): counted in `sent` and `dropped`.
fn is_line(topic: usize) -> bool {
    topic < AVAILABILITY
}

/// The frame loop's handle: [`Publish`] into a bounded channel to the publisher thread.
pub struct MqttPublisher {
    tx: Option<SyncSender<Msg>>,
    /// Buffers coming back from the thread, for the next lines.
    free: Receiver<Vec<u8>>,
    shared: Arc<Shared>,
    faces: bool,
    thread: Option<JoinHandle<()>>,
    url: String,
}

impl MqttPublisher {
    /// Check the settings (TLS files, password file), then start the publisher thread; it
    /// connects in the background. Errors name the key and the file.
    pub fn start(s: MqttSettings) -> anyhow::Result<MqttPublisher> {
        let mut opts = MqttOptions::new(s.client_id.clone(), s.url.host.clone(), s.url.port);
        opts.set_keep_alive(s.keep_alive);
        opts.set_clean_session(true);
        opts.set_max_packet_size(64 * 1024, 64 * 1024);
        opts.set_last_will(LastWill::new(
            s.topic("availability"),
            "offline",
            QoS::AtLeastOnce,
            true,
        ));
        if let Some(user) = &s.user {
            let password = match &s.password_file {
                Some(p) => read_password(p)?,
                None => String::new(),
            };
            opts.set_credentials(user.clone(), password);
        }
        if s.url.tls {
            opts.set_transport(Transport::tls_with_config(
                rumqttc::TlsConfiguration::Rustls(tls_config(&s)?),
            ));
        }
        // The worker hands rumqttc at most one QoS 1 line and a few QoS 0 ones at a time.
        let (client, connection) = Client::new(opts, 64);
        let (tx, rx) = mpsc::sync_channel::<Msg>(s.queue);
        let (free_tx, free) = mpsc::sync_channel::<Vec<u8>>(2 * s.queue + 8);
        let shared = Arc::new(Shared::default());
        let url = s.url.to_string();
        let faces = s.faces;
        let worker = Worker {
            topics: [
                s.topic("face"),
                s.topic("visit"),
                s.topic("counts"),
                s.topic("status"),
                s.topic("availability"),
                s.topic("update"),
                s.topic("update"),
            ],
            qos: [s.qos[0], s.qos[1], s.qos[2], s.qos[3], 1, 1, 1],
            updates: Updates {
                command_topic: s.update_request.as_ref().map(|_| s.topic("cmd/update")),
                request: s.update_request.clone(),
                state: s.update_state.clone(),
                published: None,
                next_poll: Instant::now(),
            },
            rx,
            free: free_tx,
            client,
            shared: shared.clone(),
            cap: s.queue,
            url: url.clone(),
            ack_deadline: ack_deadline(s.keep_alive),
        };
        let thread = std::thread::Builder::new()
            .name("mqtt".into())
            .spawn(move || worker.run(connection))
            .context("cannot start the MQTT thread")?;
        Ok(MqttPublisher {
            tx: Some(tx),
            free,
            shared,
            faces,
            thread: Some(thread),
            url,
        })
    }

    /// The broker, as `mqtt[s]://host:port`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The frame loop's side of updates over MQTT.
    pub fn updates(&self) -> UpdateHandle {
        UpdateHandle(self.shared.clone())
    }

    /// Lines the broker has taken so far.
    pub fn sent(&self) -> u64 {
        self.shared.sent.load(Ordering::Relaxed)
    }

    /// Stop: deliver what is queued (up to [`LINGER`]), mark the kiosk offline, disconnect.
    pub fn close(&mut self) {
        self.shared.closing.store(true, Ordering::Relaxed);
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for MqttPublisher {
    fn drop(&mut self) {
        self.close();
    }
}

impl Publish for MqttPublisher {
    fn publish(&mut self, kind: LineKind, line: &[u8]) {
        if kind == LineKind::Face && !self.faces {
            return;
        }
        let Some(tx) = &self.tx else { return };
        let mut buf = self.free.try_recv().unwrap_or_default();
        buf.clear();
        buf.extend_from_slice(line);
        match tx.try_send(Msg {
            topic: kind as usize,
            buf,
        }) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn state(&self) -> (&'static str, u64) {
        let state = if self.shared.connected.load(Ordering::Relaxed) {
            "connected"
        } else {
            "disconnected"
        };
        (state, self.shared.dropped.load(Ordering::Relaxed))
    }
}

/// Updates over MQTT, on the publisher thread.
struct Updates {
    /// `<prefix>/<id>/cmd/update`, when `mqtt_update_request` is set.
    command_topic: Option<String>,
    request: Option<PathBuf>,
    state: Option<PathBuf>,
    /// The update-state line last published on this connection.
    published: Option<String>,
    next_poll: Instant,
}

/// The publisher thread.
struct Worker {
    topics: [String; 7],
    qos: [u8; 7],
    updates: Updates,
    rx: Receiver<Msg>,
    free: SyncSender<Vec<u8>>,
    client: Client,
    shared: Arc<Shared>,
    cap: usize,
    url: String,
    /// A QoS 1 line unacknowledged this long means a broker that is stuck: reconnect.
    ack_deadline: Duration,
}

impl Worker {
    fn recycle(&self, buf: Vec<u8>) {
        let _ = self.free.try_send(buf);
    }

    fn drop_msg(&self, m: Msg) {
        self.shared.dropped.fetch_add(1, Ordering::Relaxed);
        self.recycle(m.buf);
    }

    fn run(mut self, conn: Connection) {
        let (ev_tx, events) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let spawned = std::thread::Builder::new()
            .name("mqtt-connection".into())
            .spawn(move || drive(conn, ev_tx, stop2));
        if spawned.is_err() {
            eprintln!(
                "agegender: warning: mqtt: cannot start the connection thread; not publishing"
            );
            return;
        }
        let mut queue: VecDeque<Msg> = VecDeque::with_capacity(self.cap + 1);
        // The QoS 1 line sent and not yet acknowledged.
        let mut inflight: Option<Msg> = None;
        // When the line in flight was sent.
        let mut inflight_since: Option<Instant> = None;
        let mut connected = false;
        let mut closing: Option<Instant> = None;
        let mut last_error = String::new();
        // The frame loop's side is gone and its channel read to the end.
        let mut rx_closed = false;
        loop {
            // 1. Take the frame loop's lines while there is room (also while closing: they are
            // still delivered within the linger).
            if closing.is_none() && self.shared.closing.load(Ordering::Relaxed) {
                closing = Some(Instant::now() + LINGER);
            }
            while queue.len() < self.cap {
                match self.rx.try_recv() {
                    Ok(m) => self.accept(m, connected, &mut queue),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        closing.get_or_insert(Instant::now() + LINGER);
                        rx_closed = true;
                        break;
                    }
                }
            }
            // An accepted update ends the run (the stop flag may be given after the command).
            if self.shared.update_requested.load(Ordering::Relaxed) {
                if let Some(stop) = self.shared.stop.get() {
                    stop.store(true, Ordering::Relaxed);
                }
            } else if connected && closing.is_none() {
                self.poll_state(&mut queue);
            }
            // 2. Closing: once everything is out (or the linger is over), say offline and go.
            if let Some(deadline) = closing {
                if (rx_closed && queue.is_empty() && inflight.is_none())
                    || Instant::now() >= deadline
                {
                    self.finish(&events, connected, queue, inflight);
                    stop.store(true, Ordering::Relaxed);
                    return;
                }
            }
            // 3. Connected: hand rumqttc what may go now, in order, until a QoS 1 line must
            // wait for the one in flight; the QoS 0 lines behind it go on (a slow or stuck
            // acknowledgement holds only the QoS 1 lines).
            if connected {
                while let Some(front) = queue.front() {
                    if self.qos[front.topic] == 1 && inflight.is_some() {
                        break;
                    }
                    let m = queue.pop_front().unwrap();
                    match self.send(m, &mut inflight) {
                        Ok(()) => {}
                        Err(m) => {
                            queue.push_front(m);
                            break;
                        }
                    }
                }
                if inflight.is_some() && queue.iter().any(|m| self.qos[m.topic] == 0) {
                    let mut i = 0;
                    while i < queue.len() {
                        if self.qos[queue[i].topic] != 0 {
                            i += 1;
                            continue;
                        }
                        let m = queue.remove(i).unwrap();
                        if let Err(m) = self.send(m, &mut inflight) {
                            queue.insert(i, m);
                            break;
                        }
                    }
                }
                // A broker that keeps the connection (answers pings) but never acknowledges:
                // make the connection again; the line goes again then.
                if inflight_since.is_some_and(|t| t.elapsed() >= self.ack_deadline) {
                    let why = format!(
                        "no acknowledgement within {} s",
                        self.ack_deadline.as_secs()
                    );
                    if why != last_error {
                        eprintln!(
                            "agegender: warning: mqtt {}: {why}; connecting again (the serial log goes on)",
                            self.url
                        );
                    }
                    last_error = why;
                    let _ = self.client.try_disconnect();
                    connected = false;
                    self.shared.connected.store(false, Ordering::Relaxed);
                    self.away(&mut queue, &mut inflight);
                }
            }
            if inflight.is_none() {
                inflight_since = None;
            } else if inflight_since.is_none() {
                inflight_since = Some(Instant::now());
            }
            // 4. What the connection says (new lines are looked at every 20 ms).
            match events.recv_timeout(Duration::from_millis(20)) {
                Ok(ConnEvent::Connected) => {
                    connected = true;
                    self.shared.connected.store(true, Ordering::Relaxed);
                    if last_error.is_empty() {
                        eprintln!("agegender: mqtt: connected to {}", self.url);
                    } else {
                        eprintln!("agegender: mqtt: connected to {} again", self.url);
                    }
                    last_error.clear();
                    // `online` first, retained, then what waited.
                    queue.push_front(Msg {
                        topic: AVAILABILITY,
                        buf: b"online".to_vec(),
                    });
                    // (a clean session: subscribe at every connect)
                    if let Some(t) = &self.updates.command_topic {
                        if let Err(e) = self.client.try_subscribe(t.as_str(), QoS::AtLeastOnce) {
                            eprintln!("agegender: warning: mqtt: cannot subscribe to {t}: {e}");
                        }
                    }
                    // the update state again, at once (a broker without persistence forgot it)
                    self.updates.published = None;
                    self.updates.next_poll = Instant::now();
                }
                Ok(ConnEvent::Command {
                    topic,
                    payload,
                    retained,
                }) => {
                    if closing.is_none() && self.updates.command_topic.as_ref() == Some(&topic) {
                        self.command(&payload, retained, &mut queue);
                    }
                }
                Ok(ConnEvent::Acked) => {
                    if let Some(m) = inflight.take() {
                        if is_line(m.topic) {
                            self.shared.sent.fetch_add(1, Ordering::Relaxed);
                        }
                        self.recycle(m.buf);
                    }
                }
                Ok(ConnEvent::Failed(why)) => {
                    // (after our own DISCONNECT for a missing acknowledgement, `connected` is
                    // already false and the error is the broker closing: not news)
                    if (connected || why != last_error) && !last_error.starts_with("no ack") {
                        eprintln!(
                            "agegender: warning: mqtt {}: {why}; retrying with backoff (the serial log goes on; further errors of this kind are not logged)",
                            self.url
                        );
                    }
                    last_error = why;
                    connected = false;
                    self.shared.connected.store(false, Ordering::Relaxed);
                    self.away(&mut queue, &mut inflight);
                }
                Ok(ConnEvent::Disconnected) | Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    // the connection thread is gone (it ends only when told to)
                    return;
                }
            }
        }
    }

    /// Hand `m` to rumqttc: a QoS 1 line becomes the one in flight, a QoS 0 line is counted as
    /// sent. `Err(m)`: rumqttc's queue is full, try again later.
    fn send(&self, m: Msg, inflight: &mut Option<Msg>) -> Result<(), Msg> {
        let q = self.qos[m.topic];
        let retain = m.topic == AVAILABILITY || m.topic == UPDATE_STATE;
        match self
            .client
            .try_publish(self.topics[m.topic].as_str(), qos(q), retain, m.buf.clone())
        {
            Ok(()) if q == 1 => {
                *inflight = Some(m);
                Ok(())
            }
            Ok(()) => {
                if is_line(m.topic) {
                    self.shared.sent.fetch_add(1, Ordering::Relaxed);
                }
                self.recycle(m.buf);
                Ok(())
            }
            Err(_) => Err(m),
        }
    }

    /// The connection is gone: the line in flight goes again first; QoS 0 lines are not kept
    /// while away (dropped and counted), nor is the `online` not yet sent.
    fn away(&self, queue: &mut VecDeque<Msg>, inflight: &mut Option<Msg>) {
        if let Some(m) = inflight.take() {
            queue.push_front(m);
        }
        let mut kept = VecDeque::with_capacity(self.cap + 1);
        for m in queue.drain(..) {
            if m.topic == AVAILABILITY {
                self.recycle(m.buf);
            } else if self.qos[m.topic] == 1 {
                kept.push_back(m);
            } else {
                self.drop_msg(m);
            }
        }
        *queue = kept;
    }

    /// Every [`STATE_POLL`]: the update-state file's line, published (retained) when it is not
    /// the one last published on this connection.
    fn poll_state(&mut self, queue: &mut VecDeque<Msg>) {
        let Some(path) = &self.updates.state else {
            return;
        };
        let now = Instant::now();
        if now < self.updates.next_poll {
            return;
        }
        self.updates.next_poll = now + STATE_POLL;
        let Some(line) = update::read_state(path) else {
            return;
        };
        if self.updates.published.as_deref() == Some(line.as_str()) {
            return;
        }
        queue.push_back(Msg {
            topic: UPDATE_STATE,
            buf: update::state_message(&line),
        });
        self.updates.published = Some(line);
    }

    /// An update command: checked, handed over to /init and answered `accepted` (the run then
    /// ends), or answered `refused` with the reason.
    /// An empty message (how a retained command is cleared) is no command: not answered.
    fn command(&mut self, payload: &[u8], retained: bool, queue: &mut VecDeque<Msg>) {
        if payload.is_empty() {
            return;
        }
        let decided = if self.shared.update_requested.load(Ordering::Relaxed) {
            Err("an update is already under way: this run is ending for it".to_string())
        } else {
            update::parse_command(payload, retained).and_then(|url| {
                let state = self.updates.state.as_deref().and_then(update::read_state);
                if let Some(why) = update::busy(state.as_deref()) {
                    return Err(why);
                }
                let request = self.updates.request.as_deref().ok_or("updates are off")?;
                update::hand_off(request, &url)
                    .map(|()| url)
                    .map_err(|e| crate::one_line(&format!("{e:#}")))
            })
        };
        match decided {
            Ok(url) => {
                eprintln!(
                    "agegender: update over MQTT: {url} accepted; ending the run for /init to install it"
                );
                self.shared.update_requested.store(true, Ordering::Relaxed);
                queue.push_back(Msg {
                    topic: UPDATE_STATE,
                    buf: update::accepted_message(&url),
                });
            }
            Err(why) => {
                eprintln!("agegender: update over MQTT refused: {why}");
                queue.push_back(Msg {
                    topic: UPDATE_ANSWER,
                    buf: update::refused_message(&why),
                });
            }
        }
    }

    /// A new line: queued, or (QoS 0 while away) dropped and counted.
    fn accept(&self, m: Msg, connected: bool, queue: &mut VecDeque<Msg>) {
        if !connected && self.qos[m.topic] == 0 {
            self.drop_msg(m);
        } else {
            queue.push_back(m);
        }
    }

    /// Count what could not be delivered; when connected, publish `offline` (retained), wait
    /// for its PUBACK and disconnect cleanly (so the broker does not send the Last Will).
    fn finish(
        &self,
        events: &Receiver<ConnEvent>,
        connected: bool,
        queue: VecDeque<Msg>,
        inflight: Option<Msg>,
    ) {
        // what is still in the channel (a full queue stopped the publisher reading it)
        let mut lost = self.rx.try_iter().count() as u64;
        lost += queue.iter().filter(|m| is_line(m.topic)).count() as u64
            + inflight.iter().filter(|m| is_line(m.topic)).count() as u64;
        if lost > 0 {
            self.shared.dropped.fetch_add(lost, Ordering::Relaxed);
            eprintln!(
                "agegender: warning: mqtt {}: {lost} lines not delivered at exit",
                self.url
            );
        }
        if !connected {
            return;
        }
        let _ = self.client.try_publish(
            self.topics[AVAILABILITY].as_str(),
            QoS::AtLeastOnce,
            true,
            b"offline".to_vec(),
        );
        // An ack still owed to the line in flight may come first: wait for the last one.
        let mut acks_owed = 1 + inflight.is_some() as u32;
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut disconnect_sent = false;
        while Instant::now() < deadline {
            match events.recv_timeout(Duration::from_millis(50)) {
                Ok(ConnEvent::Acked) => {
                    acks_owed = acks_owed.saturating_sub(1);
                    if acks_owed == 0 && !disconnect_sent {
                        let _ = self.client.try_disconnect();
                        disconnect_sent = true;
                    }
                }
                Ok(ConnEvent::Disconnected) | Ok(ConnEvent::Failed(_)) => return,
                Err(RecvTimeoutError::Disconnected) => return,
                Ok(ConnEvent::Connected)
                | Ok(ConnEvent::Command { .. })
                | Err(RecvTimeoutError::Timeout) => {}
            }
        }
    }
}
