//! Vigil's audit trail (being built for issue 5).
