//! Vigil's runtime policy.
