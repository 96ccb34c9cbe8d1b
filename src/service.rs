//! Service integration: systemd READY/WATCHDOG notifications from a timer thread. Owned by the board work.
