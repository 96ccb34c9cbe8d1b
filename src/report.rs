//! Report: one JSON line per face result and a periodic status line, written to a [`Sink`].

/// Where report lines go: stdout, a file, a serial port. A sink must not block the frame loop.
pub trait Sink {
    /// Write one line (without its newline). Returns Ok(false) if the line was dropped
    /// (for example a full queue to a slow serial port).
    fn write_line(&mut self, line: &[u8]) -> anyhow::Result<bool>;
    fn flush(&mut self) -> anyhow::Result<()> {
        Ok(())
    }
}
