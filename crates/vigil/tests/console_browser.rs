//! The web console in a real browser: a `vigil serve` with the quickstart's
//! review rule holds a psql write by `agent`; headless Chromium (Debian's,
//! driven by playwright-core from `tests/browser/console.mjs`) signs in to the
//! console with alice's token, finds the statement in the approvals queue and
//! approves it with a reason; then psql gets its rows.
//!
//! Needs /usr/bin/chromium and `tests/browser/node_modules` (`scripts/test`
//! installs both); without them this test fails rather than skips, so a
//! machine that cannot run it is noticed. Screenshots of every page, at
//! desktop and phone width, are left in `$CARGO_TARGET_TMPDIR/console/`.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::*;

const CHROMIUM: &str = "/usr/bin/chromium";

/// Starting Chromium twice and visiting every page takes a while on a busy
/// two-core machine; the script's own steps have deadlines of their own.
const BROWSER_DEADLINE: Duration = Duration::from_secs(180);

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

/// The tools the browser test needs, or a failure that says how to get them.
fn require_browser_tools() {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: `apt-get install chromium` (scripts/test does)"
    );
    let playwright = browser_dir().join("node_modules/playwright-core");
    assert!(
        playwright.exists(),
        "{} is missing: `npm ci` in {} (scripts/test does)",
        playwright.display(),
        browser_dir().display()
    );
}

/// Runs the console script; its exit code, stdout and stderr. Killed at the deadline.
fn run_browser(served: &Served, sql: &str, reason: &str, shots: &Path) -> (i32, String, String) {
    let mut child = Command::new("node")
        .arg(browser_dir().join("console.mjs"))
        .current_dir(browser_dir())
        .env("VIGIL_CONSOLE_URL", &served.admin_url)
        .env("VIGIL_CONSOLE_TOKEN", DEMO_TOKEN)
        .env("VIGIL_CONSOLE_SQL", sql)
        .env("VIGIL_CONSOLE_REASON", reason)
        .env("VIGIL_CONSOLE_SHOTS", shots)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node runs");
    // Read both pipes as they fill, so a chatty browser cannot block on them.
    let readers = [
        drain(child.stdout.take().unwrap()),
        drain(child.stderr.take().unwrap()),
    ];
    let deadline = Instant::now() + BROWSER_DEADLINE;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            stop(&mut child);
            let [out, err] = readers.map(|r| r.join().unwrap());
            panic!(
                "the console script did not finish in {BROWSER_DEADLINE:?}:\n{out}\n{err}\nserver log:\n{}",
                served.log()
            );
        }
        std::thread::sleep(POLL);
    };
    let [out, err] = readers.map(|r| r.join().unwrap());
    (status.code().unwrap_or(-1), out, err)
}

fn drain(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = pipe.read_to_string(&mut text);
        text
    })
}

fn stop(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn an_approver_approves_a_held_statement_in_the_console() {
    require_browser_tools();
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("console");
    let _ = std::fs::remove_dir_all(&shots);

    let mut served = Served::start("approve", REVIEW_RULE);
    let sql = "UPDATE t SET status = 'approved-in-console' WHERE id = 1 RETURNING id, status";
    let reason = "checked in the console (OPS-7)";
    let mut psql = served.psql_as_agent(sql);
    let id = served.pending_request(&mut psql);

    let (code, out, err) = run_browser(&served, sql, reason, &shots);
    assert_eq!(
        code,
        0,
        "the console script failed:\nstdout:\n{out}\nstderr:\n{err}\nserver log:\n{}",
        served.log()
    );

    // The held statement ran, in the session that asked, with its result.
    let (code, out, err) = psql.finish();
    assert_eq!(code, 0, "psql:\n{out}\n{err}");
    assert_eq!(out, "1|approved-in-console\nUPDATE 1\n", "{err}");
    assert_eq!(
        served
            .direct_sql("SELECT status FROM t WHERE id = 1")
            .trim(),
        "approved-in-console"
    );
    // Approved by alice (the token's identity), with the reason typed in the page.
    let approval = served.audit_event("approval.approved", &id);
    assert!(approval.contains(" by=alice"), "{approval}");
    assert!(
        approval.contains(&format!(" reason=\"{reason}\"")),
        "{approval}"
    );
    let shown = served.cli_ok(&["approvals", "show", &id]);
    assert!(shown.contains("state       executed\n"), "{shown}");

    for name in [
        "approvals.png",
        "overview.png",
        "phone-approvals.png",
        "phone-overview.png",
    ] {
        let path = shots.join(name);
        let size = std::fs::metadata(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .len();
        assert!(size > 1000, "{} is {size} bytes", path.display());
    }

    served.stop();
}
