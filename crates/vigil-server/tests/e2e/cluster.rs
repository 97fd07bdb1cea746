//! A PostgreSQL cluster of a test's own (`initdb` in a scratch folder, on a
//! free port), for tests that need server settings the machine's server must
//! not be given. Stopped immediately on drop.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::{stderr, stdout, TempDir};

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

pub struct Cluster {
    pub port: u16,
    pub data: PathBuf,
    // Declared last: the directory goes only after Drop has stopped the server.
    pub dir: TempDir,
}

impl Cluster {
    /// A new cluster, initialised but not started: `configure` it, then `start` it.
    pub fn init(tag: &str) -> Cluster {
        let dir = TempDir::new(tag);
        let data = dir.0.join("data");
        chown_to_postgres(&dir.0);
        let out = pg_tool("initdb")
            .args("-N -A trust -U postgres -E UTF8 --locale=C -D".split(' '))
            .arg(&data)
            .output()
            .expect("initdb runs");
        assert!(out.status.success(), "initdb: {}", stderr(&out));
        let cluster = Cluster { port: 0, data, dir };
        cluster.configure(&format!(
            "\n# vigil e2e\n\
             listen_addresses = '127.0.0.1'\n\
             unix_socket_directories = '{}'\n\
             fsync = off\n\
             shared_buffers = 16MB\n\
             max_connections = 20\n",
            cluster.dir.0.display()
        ));
        cluster
    }

    /// Appends `settings` to postgresql.conf.
    pub fn configure(&self, settings: &str) {
        use std::io::Write;
        let path = self.data.join("postgresql.conf");
        let mut file = std::fs::OpenOptions::new().append(true).open(path).unwrap();
        file.write_all(settings.as_bytes()).unwrap();
    }

    /// Puts `path` (made by root) where the server may read it.
    pub fn hand_over(&self) {
        chown_to_postgres(&self.dir.0);
    }

    /// Starts the server. Another test may take a probed port before the
    /// server binds it, so a failed start is retried on a fresh port.
    pub fn start(&mut self) {
        self.hand_over();
        let log = self.log_path();
        for attempt in 1..=3 {
            self.port = free_port();
            let out = pg_tool("pg_ctl")
                .args(["-w", "-t", "30", "-D"])
                .arg(&self.data)
                .arg("-l")
                .arg(&log)
                .args(["-o", &format!("-p {}", self.port), "start"])
                .output()
                .expect("pg_ctl runs");
            if out.status.success() {
                return;
            }
            assert!(
                attempt < 3,
                "pg_ctl start failed: {}\n{}",
                stderr(&out),
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.0.join("server.log")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Runs SQL as the superuser over the Unix socket (the only way in
    /// without a password), in database `db`.
    pub fn sql_in(&self, db: &str, sql: &str) -> String {
        let out = Command::new("psql")
            .args("-X -q -At -v ON_ERROR_STOP=1 -U postgres -h".split(' '))
            .arg(&self.dir.0)
            .args(["-d", db, "-p", &self.port.to_string(), "-c", sql])
            .output()
            .expect("psql runs");
        assert!(out.status.success(), "admin sql failed: {}", stderr(&out));
        stdout(&out)
    }

    /// Runs a SQL file as the superuser in database `db`, stopping at the
    /// first error.
    pub fn sql_file(&self, db: &str, file: &Path) {
        let out = Command::new("psql")
            .args("-X -q -v ON_ERROR_STOP=1 -U postgres -h".split(' '))
            .arg(&self.dir.0)
            .args(["-d", db, "-p", &self.port.to_string(), "-f"])
            .arg(file)
            .output()
            .expect("psql runs");
        assert!(out.status.success(), "{}: {}", file.display(), stderr(&out));
    }

    /// A libpq connection string for the superuser in database `db`.
    pub fn conninfo(&self, db: &str) -> String {
        format!(
            "host={} port={} user=postgres dbname={db}",
            self.dir.0.display(),
            self.port
        )
    }

    /// Runs SQL as the superuser in database `postgres`.
    pub fn admin_sql(&self, sql: &str) -> String {
        self.sql_in("postgres", sql)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = pg_tool("pg_ctl")
            .args(["-m", "immediate", "-w", "-D"])
            .arg(&self.data)
            .arg("stop")
            .output();
    }
}

/// A PostgreSQL server tool run as `postgres`: initdb and the server refuse root.
fn pg_tool(tool: &str) -> Command {
    let mut command = Command::new("runuser");
    command
        .args(["-u", "postgres", "--"])
        .arg(format!("{PG_BIN}/{tool}"));
    command
}

fn chown_to_postgres(path: &Path) {
    let status = Command::new("chown")
        .args(["-R", "postgres:postgres"])
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success(), "chown {}", path.display());
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
