//! Serial-port sink: raw termios, a bounded queue and a writer thread so the frame loop never blocks.
