//! Garbage in, errors out: byte-level mutations of valid messages and
//! verifiers, fed to every parser. A panic anywhere fails the test.

use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};

use crate::{Binding, ScramServer, Verifier};

/// xorshift64*: small, seeded, and reproducible, so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    /// A byte, often one that means something to SCRAM or to the verifier text.
    fn byte(&mut self) -> u8 {
        const INTERESTING: &[u8] = b",=$:nyparcmsiv0+/ \0\x7f\xff\xc3";
        if self.below(2) == 0 {
            INTERESTING[self.below(INTERESTING.len())]
        } else {
            self.next() as u8
        }
    }

    fn mutate(&mut self, seed: &[u8]) -> Vec<u8> {
        let mut out = seed.to_vec();
        for _ in 0..=self.below(4) {
            let at = self.below(out.len() + 1);
            match self.below(6) {
                0 if at < out.len() => out[at] = self.byte(),
                1 => out.insert(at, self.byte()),
                2 if at < out.len() => {
                    out.remove(at);
                }
                3 => out.truncate(at),
                4 => {
                    let end = (at + self.below(8)).min(out.len());
                    let copy = out[at..end].to_vec();
                    out.splice(at..at, copy);
                }
                _ => {
                    if let Some(b) = out.get_mut(at) {
                        *b ^= 1 << self.below(8);
                    }
                }
            }
        }
        out
    }
}

const ROUNDS: usize = 20_000;

#[test]
fn mutated_client_first_never_panics() {
    let mut rng = Rng(0x5eed_0001);
    let verifier = Verifier::mock(b"secret", "user");
    let seeds: [&[u8]; 3] = [
        b"n,,n=,r=rOprNGfwEbeRWgbNEkqO",
        b"y,,n=user,r=abc,x=ext",
        b"p=tls-server-end-point,,n=,r=abc",
    ];
    for i in 0..ROUNDS {
        let msg = rng.mutate(seeds[i % seeds.len()]);
        if let Ok((_, first)) = ScramServer::start(verifier.clone(), false, &msg) {
            assert!(first.starts_with(b"r="));
        }
    }
}

#[test]
fn mutated_client_final_never_panics_and_never_passes() {
    let mut rng = Rng(0x5eed_0002);
    let verifier = Verifier::generate("pw", 1);
    let mut client = ScramSha256::new(b"pw", ChannelBinding::unsupported());
    let client_first = client.message().to_vec();
    let (server, server_first) =
        ScramServer::start(verifier.clone(), false, &client_first).unwrap();
    client.update(&server_first).unwrap();
    let client_final = client.message().to_vec();
    server.finish(&client_final).unwrap();
    // Replaying the same server nonce makes the genuine client-final fit again.
    let nonce_suffix = server_first_nonce_suffix(&server_first, &client_first);

    for _ in 0..ROUNDS {
        let msg = rng.mutate(&client_final);
        let (server, _) = ScramServer::start_with_nonce(
            verifier.clone(),
            false,
            &client_first,
            Binding::Unavailable,
            &nonce_suffix,
        )
        .unwrap();
        if server.finish(&msg).is_ok() {
            assert_eq!(msg, client_final, "a changed client-final was accepted");
        }
    }
}

/// The server's half of the nonce in `server_first`.
fn server_first_nonce_suffix(server_first: &[u8], client_first: &[u8]) -> String {
    let server_first = std::str::from_utf8(server_first).unwrap();
    let client_first = std::str::from_utf8(client_first).unwrap();
    let combined = server_first[2..].split(',').next().unwrap();
    let client_nonce = client_first.rsplit("r=").next().unwrap();
    combined.strip_prefix(client_nonce).unwrap().to_string()
}

#[test]
fn mutated_verifier_text_never_panics() {
    let mut rng = Rng(0x5eed_0003);
    let seed = Verifier::generate("pw", 4096).to_string();
    for _ in 0..ROUNDS {
        let msg = rng.mutate(seed.as_bytes());
        let Ok(text) = std::str::from_utf8(&msg) else {
            continue;
        };
        if let Ok(v) = Verifier::parse(text) {
            // Whatever parses prints back to something that parses the same.
            assert_eq!(Verifier::parse(&v.to_string()), Ok(v));
        }
    }
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = Rng(0x5eed_0004);
    let verifier = Verifier::mock(b"secret", "user");
    for _ in 0..ROUNDS {
        let len = rng.below(64);
        let bytes: Vec<u8> = (0..len).map(|_| rng.byte()).collect();
        let _ = ScramServer::start(verifier.clone(), true, &bytes);
        let (server, _) = ScramServer::start(verifier.clone(), true, b"n,,n=,r=abc").unwrap();
        assert!(server.finish(&bytes).is_err());
        let _ = Verifier::parse(&String::from_utf8_lossy(&bytes));
    }
}
