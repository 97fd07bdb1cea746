//! End-to-end tests: real clients (psql, pgbench, tokio-postgres, psycopg)
//! through an in-process Vigil to the machine's real PostgreSQL.

mod harness;

mod approvals;
mod audit;
mod bad_input;
mod client_tls;
mod clients;
mod cluster;
mod console;
mod differential;
mod guards;
mod impostor;
mod integrity;
mod masking;
mod policy;
mod psql;
mod python;
mod roles;
mod shutdown;
mod upstream;
