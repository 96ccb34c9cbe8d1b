//! The serial sink against a real pseudo-terminal pair: raw mode and baud are applied, lines arrive
//! intact and in order, and with a reader that stops reading `write_line` stays non-blocking while
//! lines are dropped and counted (and none of the accepted ones is lost).
#![cfg(target_os = "linux")]

use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use agegender::report::Sink;
use agegender::serial::SerialSink;
use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::pty::{grantpt, openpt, ptsname, unlockpt, OpenptFlags};
use rustix::termios::{tcgetattr, LocalModes, OutputModes};

/// A pty pair: the master (our "host" end) and the slave's path (the "serial port").
fn pty() -> (OwnedFd, String) {
    let master =
        openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC).expect("openpt");
    grantpt(&master).expect("grantpt");
    unlockpt(&master).expect("unlockpt");
    let name = ptsname(&master, Vec::new()).expect("ptsname");
    (master, name.into_string().expect("utf-8 pty name"))
}

/// Read from the master until `want` newline-terminated lines arrived or `timeout` passed.
fn read_lines(master: &OwnedFd, want: usize, timeout: Duration) -> Vec<String> {
    let deadline = Instant::now() + timeout;
    let mut bytes = Vec::new();
    let mut buf = [0u8; 4096];
    while bytes.iter().filter(|&&b| b == b'\n').count() < want && Instant::now() < deadline {
        let mut fds = [PollFd::new(master, PollFlags::IN)];
        let ts = Timespec {
            tv_sec: 0,
            tv_nsec: 100_000_000,
        };
        if poll(&mut fds, Some(&ts)).expect("poll") == 0 {
            continue;
        }
        let n = rustix::io::read(master, &mut buf).expect("read master");
        bytes.extend_from_slice(&buf[..n]);
    }
    assert!(
        !bytes.contains(&b'\r'),
        "raw mode: output processing must not turn \\n into \\r\\n"
    );
    String::from_utf8(bytes)
        .expect("utf-8")
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn lines_arrive_in_raw_mode_at_the_configured_baud() {
    let (master, slave) = pty();
    let mut sink = SerialSink::open(&slave, 115_200, 16).expect("open pty slave");

    // The slave side now has the settings the sink applied.
    let probe = std::fs::File::open(&slave).expect("open slave for tcgetattr");
    let tio = tcgetattr(probe.as_fd()).expect("tcgetattr");
    assert!(
        !tio.local_modes.contains(LocalModes::ICANON),
        "ICANON still on"
    );
    assert!(!tio.local_modes.contains(LocalModes::ECHO), "ECHO still on");
    assert!(
        !tio.output_modes.contains(OutputModes::OPOST),
        "OPOST still on"
    );
    assert_eq!(tio.output_speed(), 115_200);
    assert_eq!(tio.input_speed(), 115_200);

    let sent: Vec<String> = (0..10)
        .map(|i| format!(r#"{{"frame":{i},"gender":"F","age":27.5}}"#))
        .collect();
    for line in &sent {
        assert!(sink.write_line(line.as_bytes()).expect("write_line"));
    }
    let got = read_lines(&master, sent.len(), Duration::from_secs(5));
    assert_eq!(got, sent);
    assert_eq!(sink.dropped(), 0);
    assert!(sink.drain(Duration::from_secs(2)));
    assert_eq!(sink.written(), 10);
}

#[test]
fn stalled_reader_never_blocks_writes_and_drops_are_counted() {
    let (master, slave) = pty();
    let queue = 32;
    let mut sink = SerialSink::open(&slave, 9600, queue).expect("open pty slave");

    // Nobody reads the master: the pty buffer fills, the writer thread blocks in write(2),
    // the queue fills, and from then on lines must be dropped, not waited for.
    let total = 20_000usize;
    let line = "x".repeat(200);
    // 4 MB cannot pass through a stalled pty: if write_line waited for the port, the writes
    // would never end. They run on a thread; the only bound is one that catches a hang (how
    // fast they go is the machine's speed, not this test's business).
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let writer = std::thread::spawn(move || {
        let mut accepted = Vec::new();
        for i in 0..total {
            let text = format!("{i:06} {line}");
            if sink.write_line(text.as_bytes()).expect("write_line") {
                accepted.push(text);
            }
        }
        let _ = done_tx.send(());
        (sink, accepted)
    });
    assert!(
        done_rx.recv_timeout(Duration::from_secs(300)).is_ok(),
        "write_line blocked on a stalled reader: 20k writes did not end"
    );
    let (sink, accepted) = writer.join().unwrap();
    let dropped = sink.dropped() as usize;
    assert!(
        dropped > 0,
        "4 MB into a stalled pty must overflow the queue"
    );
    assert_eq!(
        accepted.len() + dropped,
        total,
        "every line is either queued or counted"
    );

    // The reader comes back: every accepted line arrives intact and in order.
    let got = read_lines(&master, accepted.len(), Duration::from_secs(20));
    assert_eq!(got.len(), accepted.len(), "accepted lines lost");
    assert_eq!(got, accepted);
    assert!(sink.drain(Duration::from_secs(5)));
    assert_eq!(sink.written() as usize, accepted.len());
    assert_eq!(sink.errors(), 0);
}
