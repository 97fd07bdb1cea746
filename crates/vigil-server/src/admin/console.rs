//! The web console: static assets compiled into the binary and served from the
//! admin port, so the console needs no separate server, no Node at run time
//! and no CDN. The page talks to the JSON API with the token the user enters.

use std::sync::Arc;

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use crate::State;

const INDEX: &str = include_str!("../../console/index.html");

/// The console's routes: `/` and `/console` serve the page.
pub(super) fn routes() -> Router<Arc<State>> {
    Router::new()
        .route("/", get(index))
        .route("/console", get(index))
}

async fn index() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        INDEX,
    )
}
