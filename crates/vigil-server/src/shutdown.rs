//! Shutdown phases, broadcast from the server loop to every session.

/// Where the server is in its shutdown. Sessions watch it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Running,
    /// No new connections; sessions end at their next idle point.
    Draining,
    /// The drain deadline passed: busy sessions are cancelled now.
    Cancelling,
}
