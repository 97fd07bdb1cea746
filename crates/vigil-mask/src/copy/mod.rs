//! COPY rewriting.
