//! Dynamic data masking for PostgreSQL wire-protocol results.
//!
//! The proxy decides *what* to mask (per column, from policy) and hands this
//! crate a plan per result; this crate decides *how*, byte for byte, keeping
//! every value valid for its type and format. Nothing here knows SQL or
//! configuration files, and everything is pure and synchronous.
//!
//! - [`detect`]: content detectors (email, card, SSN, IBAN, keys, …) with validators.
//! - [`strategy`]: what Redact, KeepLast, EmailDomain, Hash, Null, Preserve do to text.
//! - [`value`]: the same strategies for typed values in text and binary format.
//! - [`row`]: the DataRow rewriter, the hot path.
//! - [`copy`]: the `COPY … TO STDOUT` rewriter (text, csv, binary).
//! - [`scrub`]: scrubbing values echoed in ErrorResponse/NoticeResponse.

pub mod copy;
pub mod detect;
mod error;
pub mod row;
pub mod scrub;
pub mod strategy;
pub mod value;

pub use copy::{CopyFormat, CopyPlan};
pub use detect::{DetectorKind, DetectorPattern, DetectorSpec, Detectors, Span};
pub use error::MaskError;
pub use row::{ColumnMask, ColumnPlan, RowPlan};
pub use scrub::{scrub_report, MaskedColumn};

pub use strategy::{MaskKey, Strategy};
pub use value::{mask_value, Masked};
