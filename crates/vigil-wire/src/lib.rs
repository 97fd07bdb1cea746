//! PostgreSQL v3 wire protocol for Vigil: frame reading over buffers, the
//! untyped startup packets, and builders for the messages the proxy itself sends.
//!
//! Nothing here does I/O or depends on tokio, and no input makes it panic: every
//! length field is checked against the bytes present and against a cap before
//! anything is sized by it.

pub mod backend;
mod error;
pub mod fields;
pub mod frame;
pub mod startup;
pub mod tags;

pub use error::WireError;
pub use frame::{FrameReader, Next, TagSet};
pub use startup::{decode_startup, StartupPacket};
