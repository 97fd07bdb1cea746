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
const SCRIPT: &str = include_str!("../../console/app.js");
const DOM_SCRIPT: &str = include_str!("../../console/dom.js");
const CHART_SCRIPT: &str = include_str!("../../console/chart.js");
const STYLE: &str = include_str!("../../console/app.css");

/// Scripts and styles from this origin only (no inline script, no `eval`),
/// API calls to this origin only, and the page never framed: whatever an
/// audit record or a statement text holds cannot run as code here.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; \
     base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The console's routes: `/` and `/console` serve the page; under
/// `/console/` are its script (`app.js`, an ES module, and the modules it
/// imports) and its style (`app.css`).
pub(super) fn routes() -> Router<Arc<State>> {
    pages()
}

/// The same routes over any state: they use none.
fn pages<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(index))
        .route("/console", get(index))
        .route("/console/", get(index))
        .route("/console/app.js", get(|| script(SCRIPT)))
        .route("/console/dom.js", get(|| script(DOM_SCRIPT)))
        .route("/console/chart.js", get(|| script(CHART_SCRIPT)))
        .route("/console/app.css", get(style))
}

/// An asset with its type and the console's security headers. `no-cache`:
/// the browser revalidates, so an upgraded server's console is used at once.
fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::X_FRAME_OPTIONS, "DENY"),
        ],
        body,
    )
}

async fn index() -> impl IntoResponse {
    asset("text/html; charset=utf-8", INDEX)
}

async fn script(body: &'static str) -> impl IntoResponse {
    asset("text/javascript; charset=utf-8", body)
}

async fn style() -> impl IntoResponse {
    asset("text/css; charset=utf-8", STYLE)
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use super::*;

    async fn get_page(path: &str) -> (StatusCode, header::HeaderMap, String) {
        let request = Request::get(path).body(Body::empty()).unwrap();
        let response = pages::<()>().oneshot(request).await.unwrap();
        let (parts, body) = response.into_parts();
        let bytes = body.collect().await.unwrap().to_bytes();
        (
            parts.status,
            parts.headers,
            String::from_utf8(bytes.to_vec()).unwrap(),
        )
    }

    #[tokio::test]
    async fn the_page_and_its_assets_have_their_types_and_a_strict_policy() {
        for (path, content_type, body) in [
            ("/", "text/html; charset=utf-8", INDEX),
            ("/console", "text/html; charset=utf-8", INDEX),
            ("/console/app.js", "text/javascript; charset=utf-8", SCRIPT),
            (
                "/console/dom.js",
                "text/javascript; charset=utf-8",
                DOM_SCRIPT,
            ),
            (
                "/console/chart.js",
                "text/javascript; charset=utf-8",
                CHART_SCRIPT,
            ),
            ("/console/app.css", "text/css; charset=utf-8", STYLE),
        ] {
            let (status, headers, text) = get_page(path).await;
            assert_eq!(status, StatusCode::OK, "{path}");
            assert_eq!(headers[header::CONTENT_TYPE], content_type, "{path}");
            assert_eq!(text, body, "{path}");
            let policy = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
            assert!(policy.starts_with("default-src 'self';"), "{policy}");
            assert!(!policy.contains("unsafe-inline"), "{policy}");
            assert!(!policy.contains("unsafe-eval"), "{policy}");
            assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        }
    }

    #[test]
    fn the_page_loads_its_script_and_style_from_files_and_has_no_inline_code() {
        assert!(INDEX.contains(r#"<script type="module" src="/console/app.js"></script>"#));
        assert!(INDEX.contains(r#"<link rel="stylesheet" href="/console/app.css">"#));
        // Every <script> has a src; no inline handlers or styles.
        assert_eq!(INDEX.matches("<script").count(), 1);
        for inline in [" onclick=", " onload=", " style=", "<style", "javascript:"] {
            assert!(!INDEX.contains(inline), "{inline}");
        }
        // Data goes in as text, never as markup.
        let scripts = [SCRIPT, DOM_SCRIPT, CHART_SCRIPT];
        for sink in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
        ] {
            assert!(
                scripts.iter().all(|s| !s.contains(sink)),
                "a script uses {sink}"
            );
        }
        // Modules import only each other (`./x.js`, served above).
        for script in scripts {
            for line in script.lines().filter(|l| l.contains(" from '")) {
                assert!(line.contains(" from './"), "{line}");
            }
        }
        // Nothing loaded from elsewhere.
        for text in [INDEX, SCRIPT, DOM_SCRIPT, CHART_SCRIPT, STYLE] {
            assert!(!text.contains("https://") && !text.contains("src=\"//"));
        }
    }
}
