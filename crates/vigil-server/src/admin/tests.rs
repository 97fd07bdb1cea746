//! The admin API without a socket: the router over a real state, called
//! request by request.

use axum::body::Body;
use axum::http::Request;
use http_body_util::BodyExt;
use tower::ServiceExt;

use super::*;

const APPROVER: &str = "approver-token";
const VIEWER: &str = "viewer-token";

fn state() -> Arc<State> {
    let hash = |t: &str| crate::approvals::hex(&Sha256::digest(t.as_bytes()));
    let verifier = vigil_auth::Verifier::generate("bob-pw", 4096);
    let toml = format!(
        r#"
[server]
listen = "127.0.0.1:0"

[auth]
failure_delay_ms = 10

[[databases]]
name = "prod"
upstream = "127.0.0.1:5432"
database = "postgres"
user = "postgres"

[[identities]]
name = "bob"
groups = ["dba"]
password = "{verifier}"

[audit]
mode = "off"

[[approvals.grants]]
group = "writers"
databases = ["prod"]
max_secs = 600

[[admin.tokens]]
name = "bob"
identity = "bob"
role = "approver"
sha256 = "{}"

[[admin.tokens]]
name = "bob-viewer"
identity = "bob"
role = "viewer"
sha256 = "{}"
"#,
        hash(APPROVER),
        hash(VIEWER)
    );
    let config =
        vigil_config::Config::from_toml(&toml, std::path::Path::new("/tmp/vigil-admin-test.toml"))
            .unwrap_or_else(|e| panic!("{e}"));
    State::new(config).unwrap()
}

async fn call(
    state: &Arc<State>,
    method: &str,
    path: &str,
    auth: Option<&str>,
    body: &str,
) -> (StatusCode, Value) {
    let mut request = Request::builder().method(method).uri(path);
    if let Some(auth) = auth {
        request = request.header(header::AUTHORIZATION, auth);
    }
    let request = request.body(Body::from(body.to_owned())).unwrap();
    let response = app(Arc::clone(state)).oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, value)
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn basic(user: &str, password: &str) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {encoded}")
}

#[tokio::test]
async fn health_needs_nothing_and_everything_else_a_token() {
    let state = state();
    let (status, body) = call(&state, "GET", "/api/v1/health", None, "").await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("ok"))
    );
    for path in ["/api/v1/approvals", "/api/v1/grants", "/api/v1/approvals/x"] {
        let (status, body) = call(&state, "GET", path, None, "").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
        assert!(body["error"].is_string(), "{path}: {body}");
        let (status, _) = call(&state, "GET", path, Some(&bearer("guess")), "").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
    }
    let (status, body) = call(
        &state,
        "GET",
        "/api/v1/approvals",
        Some(&bearer(VIEWER)),
        "",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["requests"], json!([]));
    let (status, _) = call(&state, "GET", "/api/v1/nothing", Some(&bearer(VIEWER)), "").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn bad_input_gets_a_400_with_a_reason() {
    let state = state();
    let token = bearer(APPROVER);
    let (status, body) = call(
        &state,
        "GET",
        "/api/v1/approvals?state=odd",
        Some(&token),
        "",
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = call(
        &state,
        "POST",
        "/api/v1/approvals/x/deny",
        Some(&token),
        "{}",
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = call(
        &state,
        "POST",
        "/api/v1/approvals/x/approve",
        Some(&token),
        "{not json",
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = call(
        &state,
        "POST",
        "/api/v1/approvals/x/approve",
        Some(&token),
        r#"{"because": 1}"#,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "unknown fields: {body}");
    let (status, _) = call(
        &state,
        "POST",
        "/api/v1/approvals/x/approve",
        Some(&token),
        "",
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_viewer_may_look_but_not_decide() {
    let state = state();
    let (status, body) = call(
        &state,
        "POST",
        "/api/v1/approvals/x/approve",
        Some(&bearer(VIEWER)),
        "{}",
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
}

#[tokio::test]
async fn a_grant_is_asked_with_a_password_and_listed_once_approved_by_someone_else() {
    let state = state();
    let ask = r#"{"group": "writers", "database": "prod", "duration_secs": 60}"#;
    let (status, _) = call(
        &state,
        "POST",
        "/api/v1/grants",
        Some(&basic("bob", "wrong")),
        ask,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = call(
        &state,
        "POST",
        "/api/v1/grants",
        Some(&basic("nobody", "x")),
        ask,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, request) = call(
        &state,
        "POST",
        "/api/v1/grants",
        Some(&basic("bob", "bob-pw")),
        ask,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{request}");
    assert_eq!(request["kind"], "grant");
    let id = request["id"].as_str().unwrap();
    // bob asked: bob may not approve it, whatever his token.
    let (status, _) = call(
        &state,
        "POST",
        &format!("/api/v1/approvals/{id}/approve"),
        Some(&bearer(APPROVER)),
        "{}",
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = call(&state, "GET", "/api/v1/grants", Some(&bearer(VIEWER)), "").await;
    assert_eq!(
        (status, body["grants"].clone()),
        (StatusCode::OK, json!([]))
    );
    // Basic is for asking for grants only.
    let (status, _) = call(
        &state,
        "GET",
        "/api/v1/approvals",
        Some(&basic("bob", "bob-pw")),
        "",
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn password_guesses_for_grants_meet_the_login_lockout() {
    let state = state();
    let ask = r#"{"group": "writers", "database": "prod", "duration_secs": 60}"#;
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let (status, _) = call(
            &state,
            "POST",
            "/api/v1/grants",
            Some(&basic("bob", "guess")),
            ask,
        )
        .await;
        statuses.push(status);
    }
    // Five failures (auth.max_failures) lock the address out; then even
    // the right password waits.
    assert_eq!(statuses[..5], [StatusCode::UNAUTHORIZED; 5]);
    assert_eq!(statuses[5], StatusCode::TOO_MANY_REQUESTS);
    let (status, _) = call(
        &state,
        "POST",
        "/api/v1/grants",
        Some(&basic("bob", "bob-pw")),
        ask,
    )
    .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
}
