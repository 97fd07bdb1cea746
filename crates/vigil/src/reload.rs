//! Configuration reload on SIGHUP and when the config file, or a policy file
//! it includes, changes. A new configuration that does not load is logged
//! with its file, line and key, and the running one stays in force.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::signal::unix::{signal, SignalKind};
use vigil_config::Config;
use vigil_server::State;

/// How often the files are looked at. Editors write files in several steps;
/// a change is acted on once it has been still for one more interval.
const POLL: Duration = Duration::from_secs(1);

pub async fn watch(state: Arc<State>, path: PathBuf) {
    let mut hup = match signal(SignalKind::hangup()) {
        Ok(hup) => hup,
        Err(error) => return tracing::error!(%error, "cannot handle SIGHUP; reload is off"),
    };
    let mut seen = stamps(&path);
    let mut pending = false;
    let mut tick = tokio::time::interval(POLL);
    loop {
        tokio::select! {
            _ = hup.recv() => {
                tracing::info!("SIGHUP received: reloading configuration");
                reload(&state, &path);
                seen = stamps(&path);
                pending = false;
            }
            _ = tick.tick() => {
                let now = stamps(&path);
                if now != seen {
                    seen = now;
                    pending = true;
                } else if pending {
                    pending = false;
                    tracing::info!(file = %path.display(), "configuration changed: reloading");
                    reload(&state, &path);
                }
            }
        }
    }
}

fn reload(state: &State, path: &Path) {
    let config = match Config::load(path) {
        Ok(config) => config,
        Err(error) => {
            // The message names the file, the line or key, and the reason.
            for line in error.to_string().lines() {
                tracing::error!(
                    problem = line,
                    "reload refused; the running configuration stays"
                );
            }
            state.record_reload(false, &error.to_string());
            return;
        }
    };
    let rules = config.compiled_policy.rules().len();
    match state.reload(config) {
        Ok(()) => tracing::info!(rules, "configuration reloaded"),
        Err(error) => tracing::error!(%error, "reload refused; the running configuration stays"),
    }
}

/// Modification times of the config file and the policy files it includes.
fn stamps(path: &Path) -> Vec<Option<SystemTime>> {
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let mut stamps = vec![modified(path)];
    // Includes are read from the file as it is now, even when it is invalid.
    if let Ok(text) = std::fs::read_to_string(path) {
        let base = path.parent().unwrap_or(Path::new("."));
        for include in includes(&text) {
            stamps.push(modified(&base.join(include)));
        }
    }
    stamps
}

fn includes(text: &str) -> Vec<String> {
    let Ok(value) = text.parse::<toml::Table>() else {
        return Vec::new();
    };
    value
        .get("policy")
        .and_then(|p| p.get("include"))
        .and_then(|i| i.as_array())
        .map(|files| {
            files
                .iter()
                .filter_map(|f| f.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}
