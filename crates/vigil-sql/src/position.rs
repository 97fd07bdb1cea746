//! Where PostgreSQL's parser gave up on a text: the cursor position that
//! libpg_query reports and the pg_query crate's Rust API drops.
//!
//! Only the error path comes here, so it may parse the text a second time. The
//! declarations mirror `pg_query.h` of the libpg_query that pg_query links in
//! statically; the `syntax_error_positions` test fails if they ever drift.
#![allow(unsafe_code)]

use std::ffi::{c_char, c_int, CString};

#[repr(C)]
struct PgQueryError {
    message: *mut c_char,
    funcname: *mut c_char,
    filename: *mut c_char,
    lineno: c_int,
    cursorpos: c_int,
    context: *mut c_char,
}

#[repr(C)]
struct PgQuerySplitResult {
    stmts: *mut *mut std::ffi::c_void,
    n_stmts: c_int,
    stderr_buffer: *mut c_char,
    error: *mut PgQueryError,
}

extern "C" {
    fn pg_query_split_with_parser(input: *const c_char) -> PgQuerySplitResult;
    fn pg_query_free_split_result(result: PgQuerySplitResult);
}

/// The 1-based character position of the first syntax error in `sql`, if the
/// parser reports one. Splitting runs the grammar without building output, so
/// it fails at the same token a full parse does.
pub(crate) fn syntax_error_position(sql: &str) -> Option<usize> {
    let input = CString::new(sql).ok()?;
    // SAFETY: `input` is a valid NUL-terminated string that outlives the call;
    // the result is read only while it is alive and freed exactly once, by the
    // library's own free function.
    unsafe {
        let result = pg_query_split_with_parser(input.as_ptr());
        let position = if result.error.is_null() {
            None
        } else {
            usize::try_from((*result.error).cursorpos)
                .ok()
                .filter(|&p| p > 0)
        };
        pg_query_free_split_result(result);
        position
    }
}
