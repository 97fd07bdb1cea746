//! Statement analysis for Vigil with PostgreSQL's own parser (through
//! `pg_query`): what each statement is, what class of effect it has, which
//! relations, columns and functions it touches, the properties guardrails ask
//! about, its fingerprint, and the sqlcommenter tags of its text.
//!
//! Nothing here knows about identities or policy. Where the analyzer cannot
//! see what a statement does, it says so with [`Class::Unknown`] rather than
//! guess, and policy treats that as the riskiest class.
//!
//! ```
//! use vigil_sql::{Access, Analyzer, Class, Kind, ObjectType};
//!
//! let analyzer = Analyzer::new(10_000); // one per process, shared through an Arc
//! let analysis = analyzer.analyze("SELECT 1; DrOp /* x */ TaBlE public.users").unwrap();
//! let drop = &analysis.statements[1];
//! assert_eq!(drop.kind, Kind::Drop(ObjectType::Table));
//! assert_eq!(drop.class, Class::Ddl);
//! assert_eq!(drop.relations[0].qualified_name(), "public.users");
//! assert_eq!(drop.relations[0].access, Access::Write);
//! ```
//!
//! # Kind → Class
//!
//! | kinds | class |
//! |---|---|
//! | `select`, `explain` (without `ANALYZE`), `declare cursor`, `fetch`, `copy … to stdout` | read |
//! | `insert`, `update`, `delete`, `merge`, `copy … from stdin`, `lock`, `refresh materialized view` | write |
//! | `create`/`alter`/`drop` of tables, views, indexes, sequences, schemas, functions, types, triggers, rules, extensions, foreign objects…; `truncate`, `comment`, `import foreign schema` | ddl |
//! | `grant`, `revoke`, `create`/`alter`/`drop role`, user mappings, policies, default privileges; `alter … owner to`; `alter table` that changes owner or row-level security; `drop owned`, `reassign owned`, `security label` | dcl |
//! | `alter system`; `create`/`alter`/`drop` of databases, tablespaces, publications, subscriptions, event triggers; `vacuum`, `analyze`, `cluster`, `reindex`, `checkpoint`, `load`; `copy` to or from a server file or `PROGRAM` | admin |
//! | `begin`, `commit`, `rollback`, savepoints, two-phase commit | txn |
//! | `set`, `reset`, `set role`, `set session authorization`, `show`, `discard`, `prepare`, `deallocate`, `close`, `listen`, `unlisten`, `notify` | session |
//! | `do`, `call`, `execute`, anything unrecognised | unknown |
//!
//! A statement takes the worst class of everything that runs with it (order:
//! txn, session, read, write, ddl, dcl, admin, unknown): a `SELECT` with a
//! `DELETE` in a CTE is write, `SELECT … INTO` is write, `COPY (DELETE …) TO
//! STDOUT` is write, `PREPARE p AS DELETE …` is write, `EXPLAIN ANALYZE
//! DELETE …` is write while plain `EXPLAIN DELETE …` is read, and `EXPLAIN
//! ANALYZE EXECUTE p` is unknown. The nested kinds are listed in
//! [`Statement::inner_kinds`]. Statements nested in definitions (rule
//! actions, `BEGIN ATOMIC` function bodies, view queries) count as running:
//! `CREATE RULE … DO INSTEAD DELETE FROM u` lists a delete without WHERE.
//!
//! Classes say nothing about what built-in functions do: `SELECT
//! nextval('s')`, `SELECT pg_terminate_backend(…)` and `SELECT … FOR UPDATE`
//! are reads. Rules about such effects match on [`Statement::functions`].
//! A call to a function that is not built in (user-defined, or from an
//! extension), or to a built-in that runs a query given as text, makes the
//! statement unknown: `SELECT run_sql('DROP TABLE t')` could do anything.
//!
//! `EXECUTE` of a statement prepared with SQL `PREPARE` is unknown: the
//! analyzer does not track prepared names across texts, so policy should
//! judge the `PREPARE` (which carries the inner statement's effect).
#![deny(unsafe_code)]

mod analysis;
mod analyzer;
mod cache;
mod classify;
mod collect;
mod error;
mod functions;
mod kind;
mod lexing;
mod lineage;
mod position;
mod shape;
mod tags;
mod walk;

#[cfg(test)]
mod tests;

pub use analysis::{
    Access, Analysis, ColumnRef, CopyDirection, CopyFormat, CopyInfo, CopyOptions, Output,
    Properties, Relation, SettingChange, SettingValue, Statement,
};
pub use analyzer::{analyze_uncached, is_privilege_grant, Analyzer, MAX_CACHED_LEN, STACK_NEEDED};
pub use collect::is_admin_setting;
pub use error::AnalyzeError;
pub use functions::is_allowlisted;
pub use kind::{Class, Kind, ObjectType, TransactionOp};
pub use lexing::{
    prepared_statement_text, reads_differently_without_standard_strings, with_parameters,
};
