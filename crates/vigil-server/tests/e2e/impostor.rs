//! An impostor at the upstream address: a fake server that asks for the
//! password in clear or as MD5, or skips SCRAM's final proof, must get
//! neither the service password nor a client's session.

use std::future::Future;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::upstream::{expect_upstream_failure, password_env, within};
use crate::harness::{config_toml, Proxy};

/// An impostor at the upstream address: a listener that reads the startup
/// message, runs `script` on the connection, and returns from its task what
/// the script collected. Returns the `host:port` Vigil should be pointed at.
async fn fake_upstream<F, Fut>(script: F) -> (String, tokio::task::JoinHandle<Vec<u8>>)
where
    F: FnOnce(TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = Vec<u8>> + Send,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let task = tokio::spawn(async move {
        let (mut stream, _) = within("Vigil's connection", listener.accept())
            .await
            .unwrap();
        let len = stream.read_i32().await.unwrap();
        let mut startup = vec![0; usize::try_from(len - 4).unwrap()];
        stream.read_exact(&mut startup).await.unwrap();
        script(stream).await
    });
    (addr, task)
}

/// A `[[databases]]` entry for a fake upstream at `addr`, with the default
/// `auth_methods` (SCRAM only, as a password is configured).
fn fake_database(name: &str, addr: &str, password: &str) -> String {
    format!(
        "[[databases]]\nname = \"{name}\"\nupstream = \"{addr}\"\ndatabase = \"postgres\"\n\
         user = \"svc\"\nconnect_timeout_ms = 5000\n{password}\n"
    )
}

/// An Authentication message: request `code`, then `payload`.
fn auth_request(code: i32, payload: &[u8]) -> Vec<u8> {
    let mut message = vec![b'R'];
    message.extend_from_slice(&(8 + i32::try_from(payload.len()).unwrap()).to_be_bytes());
    message.extend_from_slice(&code.to_be_bytes());
    message.extend_from_slice(payload);
    message
}

/// AuthenticationOk and the rest of a successful startup, up to ReadyForQuery.
fn login_complete() -> Vec<u8> {
    let mut out = auth_request(0, b"");
    out.extend_from_slice(b"S\0\0\0\x19server_version\x0015.0\0");
    out.extend_from_slice(b"K\0\0\0\x0c\0\0\0\x2a\0\0\0\x07");
    out.extend_from_slice(b"Z\0\0\0\x05I");
    out
}

/// One message from Vigil: its tag and body.
async fn read_message(stream: &mut TcpStream) -> (u8, Vec<u8>) {
    let tag = stream.read_u8().await.unwrap();
    let len = stream.read_i32().await.unwrap();
    let mut body = vec![0; usize::try_from(len - 4).unwrap()];
    stream.read_exact(&mut body).await.unwrap();
    (tag, body)
}

/// Every byte Vigil sends until it hangs up.
async fn until_closed(mut stream: TcpStream) -> Vec<u8> {
    let mut received = Vec::new();
    within("Vigil to hang up", stream.read_to_end(&mut received))
        .await
        .expect("reading from Vigil");
    received
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The default `auth_methods` is SCRAM only, so a server asking for the
/// password in clear, or for an MD5 hash of it, gets nothing at all.
#[tokio::test(flavor = "multi_thread")]
async fn an_impostor_asking_for_cleartext_or_md5_never_gets_the_password() {
    const SECRET: &str = "Impostor-bait-pw-6e0b";
    let password = password_env("IMPOSTOR", SECRET);
    let asks = |request: Vec<u8>| {
        fake_upstream(|mut stream| async move {
            stream.write_all(&request).await.unwrap();
            until_closed(stream).await
        })
    };
    let (cleartext_addr, cleartext) = asks(auth_request(3, b"")).await;
    let (md5_addr, md5) = asks(auth_request(5, b"salt")).await;
    let proxy = Proxy::start(&config_toml(
        "postgres",
        "",
        &format!(
            "{}\n{}",
            fake_database("cleartext_db", &cleartext_addr, &password),
            fake_database("md5_db", &md5_addr, &password)
        ),
    ));

    for (dbname, impostor) in [("cleartext_db", cleartext), ("md5_db", md5)] {
        let told = expect_upstream_failure(&proxy, dbname).await;
        assert!(
            !told.contains(SECRET),
            "the client saw the password:\n{told}"
        );
        let received = within("the impostor", impostor).await.unwrap();
        assert!(
            !contains(&received, SECRET.as_bytes()),
            "{dbname}: the impostor got the password: {received:?}"
        );
        assert!(
            received.is_empty(),
            "{dbname}: Vigil answered the impostor with {received:?}"
        );
    }
}

/// An impostor cannot finish SCRAM (it cannot sign SASLFinal without the
/// password), so it declares the login done instead; Vigil must not agree.
#[tokio::test(flavor = "multi_thread")]
async fn an_impostor_skipping_scrams_final_proof_gets_no_session() {
    let password = password_env("SKIP_FINAL", "Skip-final-pw-0c3d");
    // AuthenticationOk right after SASLContinue, in place of SASLFinal.
    let (after_continue_addr, after_continue) = fake_upstream(|mut stream| async move {
        stream
            .write_all(&auth_request(10, b"SCRAM-SHA-256\0\0"))
            .await
            .unwrap();
        let (tag, initial) = read_message(&mut stream).await;
        assert_eq!(tag, b'p', "SASLInitialResponse");
        let at = initial
            .windows(2)
            .position(|w| w == b"r=")
            .expect("client nonce");
        let nonce = String::from_utf8(initial[at + 2..].to_vec()).unwrap();
        let server_first = format!("r={nonce}impostor,s=c2FsdHNhbHQ=,i=4096");
        stream
            .write_all(&auth_request(11, server_first.as_bytes()))
            .await
            .unwrap();
        let (tag, _) = read_message(&mut stream).await;
        assert_eq!(tag, b'p', "SASLResponse");
        stream.write_all(&login_complete()).await.unwrap();
        until_closed(stream).await
    })
    .await;
    // AuthenticationOk right after AuthenticationSASL.
    let (after_sasl_addr, after_sasl) = fake_upstream(|mut stream| async move {
        stream
            .write_all(&auth_request(10, b"SCRAM-SHA-256\0\0"))
            .await
            .unwrap();
        let (tag, _) = read_message(&mut stream).await;
        assert_eq!(tag, b'p', "SASLInitialResponse");
        stream.write_all(&login_complete()).await.unwrap();
        until_closed(stream).await
    })
    .await;
    let proxy = Proxy::start(&config_toml(
        "postgres",
        "",
        &format!(
            "{}\n{}",
            fake_database("after_continue_db", &after_continue_addr, &password),
            fake_database("after_sasl_db", &after_sasl_addr, &password)
        ),
    ));

    for (dbname, impostor) in [
        ("after_continue_db", after_continue),
        ("after_sasl_db", after_sasl),
    ] {
        expect_upstream_failure(&proxy, dbname).await;
        // Vigil hung up on the "logged-in" connection without a word: no
        // client query (or anything else) reached the impostor.
        let received = within("the impostor", impostor).await.unwrap();
        assert!(
            received.is_empty(),
            "{dbname}: the impostor received {received:?}"
        );
    }
}
