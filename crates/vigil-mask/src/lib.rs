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
//!
//! ```
//! use std::sync::Arc;
//! use bytes::BytesMut;
//! use vigil_mask::value::oid;
//! use vigil_mask::{ColumnMask, ColumnPlan, Detectors, MaskKey, RowPlan, Strategy};
//!
//! let key = Arc::new(MaskKey::new(&[7; 32]).unwrap());
//! let detectors = Arc::new(Detectors::all_builtin(Strategy::Redact));
//! // Built once per RowDescription: column 1 keeps its last 4 characters.
//! let mut plan = RowPlan::new(
//!     vec![
//!         ColumnPlan::Clear,
//!         ColumnPlan::Mask(ColumnMask { strategy: Strategy::KeepLast(4), type_oid: oid::TEXT, binary: false }),
//!     ],
//!     key,
//!     detectors,
//! );
//! // DataRow: 'D', length, 2 values ("7", "123-45-6789").
//! let row = b"D\0\0\0\x1a\0\x02\0\0\0\x017\0\0\0\x0b123-45-6789";
//! let mut out = BytesMut::new();
//! assert_eq!(plan.rewrite(row, &mut out).unwrap(), 1);
//! assert_eq!(&out[..], b"D\0\0\0\x1a\0\x02\0\0\0\x017\0\0\0\x0b*******6789");
//! assert_eq!(plan.counts(), &[0, 1]);
//! ```

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
