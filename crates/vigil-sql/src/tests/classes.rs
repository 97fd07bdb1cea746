//! The Kind → Class table of the crate documentation, statement by statement.

use super::*;
use crate::{Class, Kind, ObjectType as O, TransactionOp as T};

#[test]
fn kinds_and_classes() {
    use Class::*;
    let cases: &[(&str, Kind, Class)] = &[
        ("SELECT 1", Kind::Select, Read),
        ("VALUES (1)", Kind::Select, Read),
        ("TABLE t", Kind::Select, Read),
        ("SELECT * FROM t FOR UPDATE", Kind::Select, Read),
        ("INSERT INTO t VALUES (1)", Kind::Insert, Write),
        ("UPDATE t SET a = 1 WHERE b", Kind::Update, Write),
        ("DELETE FROM t WHERE b", Kind::Delete, Write),
        (
            "MERGE INTO t USING s ON true WHEN NOT MATCHED THEN INSERT VALUES (1)",
            Kind::Merge,
            Write,
        ),
        ("COPY t TO STDOUT", Kind::Copy, Read),
        ("COPY t FROM STDIN", Kind::Copy, Write),
        ("COPY t TO '/tmp/x'", Kind::Copy, Admin),
        ("LOCK TABLE t", Kind::Lock, Write),
        ("REFRESH MATERIALIZED VIEW mv", Kind::Refresh, Write),
        ("CREATE TABLE t (a int)", Kind::Create(O::Table), Ddl),
        ("CREATE TEMP TABLE t (a int)", Kind::Create(O::Table), Ddl),
        (
            "CREATE TABLE t2 AS SELECT * FROM t",
            Kind::Create(O::Table),
            Ddl,
        ),
        (
            "CREATE MATERIALIZED VIEW mv AS SELECT 1",
            Kind::Create(O::MaterializedView),
            Ddl,
        ),
        (
            "CREATE FOREIGN TABLE f (a int) SERVER s",
            Kind::Create(O::ForeignTable),
            Ddl,
        ),
        (
            "CREATE OR REPLACE VIEW v AS SELECT 1",
            Kind::Create(O::View),
            Ddl,
        ),
        (
            "CREATE INDEX CONCURRENTLY i ON t (a)",
            Kind::Create(O::Index),
            Ddl,
        ),
        ("CREATE SEQUENCE s", Kind::Create(O::Sequence), Ddl),
        ("CREATE SCHEMA s", Kind::Create(O::Schema), Ddl),
        (
            "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'",
            Kind::Create(O::Function),
            Ddl,
        ),
        (
            "CREATE PROCEDURE p() LANGUAGE sql AS 'SELECT 1'",
            Kind::Create(O::Procedure),
            Ddl,
        ),
        (
            "CREATE AGGREGATE a (int) (sfunc = f, stype = int)",
            Kind::Create(O::Aggregate),
            Ddl,
        ),
        ("CREATE TYPE ty AS (a int)", Kind::Create(O::Type), Ddl),
        ("CREATE TYPE e AS ENUM ('a')", Kind::Create(O::Type), Ddl),
        ("CREATE DOMAIN d AS int", Kind::Create(O::Domain), Ddl),
        (
            "CREATE TRIGGER tr AFTER INSERT ON t EXECUTE FUNCTION f()",
            Kind::Create(O::Trigger),
            Ddl,
        ),
        ("CREATE EXTENSION dblink", Kind::Create(O::Extension), Ddl),
        (
            "CREATE SERVER s FOREIGN DATA WRAPPER postgres_fdw",
            Kind::Create(O::ForeignServer),
            Ddl,
        ),
        (
            "IMPORT FOREIGN SCHEMA public FROM SERVER s INTO local",
            Kind::ImportForeignSchema,
            Ddl,
        ),
        ("ALTER TABLE t ADD COLUMN b int", Kind::Alter(O::Table), Ddl),
        ("ALTER TABLE t RENAME TO u", Kind::Alter(O::Table), Ddl),
        ("ALTER TABLE t SET SCHEMA s", Kind::Alter(O::Table), Ddl),
        ("ALTER INDEX i RENAME TO j", Kind::Alter(O::Index), Ddl),
        ("ALTER SEQUENCE s RESTART", Kind::Alter(O::Sequence), Ddl),
        ("ALTER FUNCTION f() STABLE", Kind::Alter(O::Function), Ddl),
        ("ALTER TYPE e ADD VALUE 'b'", Kind::Alter(O::Type), Ddl),
        ("DROP TABLE t", Kind::Drop(O::Table), Ddl),
        ("DROP VIEW v", Kind::Drop(O::View), Ddl),
        ("DROP INDEX i", Kind::Drop(O::Index), Ddl),
        ("DROP SCHEMA s CASCADE", Kind::Drop(O::Schema), Ddl),
        ("DROP FUNCTION f(int)", Kind::Drop(O::Function), Ddl),
        ("DROP EXTENSION dblink", Kind::Drop(O::Extension), Ddl),
        ("TRUNCATE t", Kind::Truncate, Ddl),
        ("COMMENT ON TABLE t IS 'x'", Kind::Comment, Ddl),
        ("GRANT SELECT ON t TO bob", Kind::Grant, Dcl),
        ("GRANT admin TO bob", Kind::Grant, Dcl),
        ("REVOKE ALL ON t FROM bob", Kind::Revoke, Dcl),
        ("REVOKE admin FROM bob", Kind::Revoke, Dcl),
        (
            "CREATE ROLE bob LOGIN SUPERUSER",
            Kind::Create(O::Role),
            Dcl,
        ),
        ("CREATE USER bob", Kind::Create(O::Role), Dcl),
        ("ALTER ROLE bob SUPERUSER", Kind::Alter(O::Role), Dcl),
        ("ALTER USER bob PASSWORD 'x'", Kind::Alter(O::Role), Dcl),
        (
            "ALTER ROLE bob SET search_path = x",
            Kind::Alter(O::Role),
            Dcl,
        ),
        ("ALTER ROLE bob RENAME TO carol", Kind::Alter(O::Role), Dcl),
        ("DROP ROLE bob", Kind::Drop(O::Role), Dcl),
        (
            "CREATE USER MAPPING FOR bob SERVER s",
            Kind::Create(O::UserMapping),
            Dcl,
        ),
        (
            "CREATE POLICY p ON t USING (true)",
            Kind::Create(O::Policy),
            Dcl,
        ),
        ("DROP POLICY p ON t", Kind::Drop(O::Policy), Dcl),
        (
            "ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO bob",
            Kind::Alter(O::DefaultPrivileges),
            Dcl,
        ),
        ("ALTER TABLE t OWNER TO bob", Kind::Alter(O::Table), Dcl),
        ("ALTER SCHEMA s OWNER TO bob", Kind::Alter(O::Schema), Dcl),
        ("DROP OWNED BY bob", Kind::DropOwned, Dcl),
        ("REASSIGN OWNED BY bob TO carol", Kind::ReassignOwned, Dcl),
        ("SECURITY LABEL ON TABLE t IS 'x'", Kind::SecurityLabel, Dcl),
        (
            "ALTER SYSTEM SET wal_level = minimal",
            Kind::AlterSystem,
            Admin,
        ),
        ("ALTER SYSTEM RESET ALL", Kind::AlterSystem, Admin),
        ("CREATE DATABASE d", Kind::Create(O::Database), Admin),
        ("DROP DATABASE d", Kind::Drop(O::Database), Admin),
        (
            "ALTER DATABASE d SET x = 1",
            Kind::Alter(O::Database),
            Admin,
        ),
        (
            "CREATE TABLESPACE ts LOCATION '/tmp'",
            Kind::Create(O::Tablespace),
            Admin,
        ),
        ("DROP TABLESPACE ts", Kind::Drop(O::Tablespace), Admin),
        (
            "CREATE PUBLICATION p FOR ALL TABLES",
            Kind::Create(O::Publication),
            Admin,
        ),
        (
            "CREATE SUBSCRIPTION s CONNECTION 'x' PUBLICATION p",
            Kind::Create(O::Subscription),
            Admin,
        ),
        ("DROP SUBSCRIPTION s", Kind::Drop(O::Subscription), Admin),
        (
            "CREATE EVENT TRIGGER e ON ddl_command_start EXECUTE FUNCTION f()",
            Kind::Create(O::EventTrigger),
            Admin,
        ),
        ("VACUUM FULL t", Kind::VacuumFull, Admin),
        ("VACUUM (FULL, ANALYZE) t", Kind::VacuumFull, Admin),
        ("ANALYZE t", Kind::Analyze, Admin),
        ("CLUSTER t USING i", Kind::Cluster, Admin),
        ("REINDEX TABLE t", Kind::Reindex, Admin),
        ("CHECKPOINT", Kind::Checkpoint, Admin),
        ("LOAD 'auto_explain'", Kind::Load, Admin),
        ("BEGIN", Kind::Transaction(T::Begin), Txn),
        (
            "START TRANSACTION ISOLATION LEVEL SERIALIZABLE",
            Kind::Transaction(T::Begin),
            Txn,
        ),
        ("COMMIT", Kind::Transaction(T::Commit), Txn),
        ("END", Kind::Transaction(T::Commit), Txn),
        ("ROLLBACK", Kind::Transaction(T::Rollback), Txn),
        ("ABORT", Kind::Transaction(T::Rollback), Txn),
        ("SAVEPOINT a", Kind::Transaction(T::Savepoint), Txn),
        ("RELEASE SAVEPOINT a", Kind::Transaction(T::Release), Txn),
        (
            "ROLLBACK TO SAVEPOINT a",
            Kind::Transaction(T::RollbackTo),
            Txn,
        ),
        (
            "PREPARE TRANSACTION 'x'",
            Kind::Transaction(T::Prepare),
            Txn,
        ),
        (
            "COMMIT PREPARED 'x'",
            Kind::Transaction(T::CommitPrepared),
            Txn,
        ),
        (
            "ROLLBACK PREPARED 'x'",
            Kind::Transaction(T::RollbackPrepared),
            Txn,
        ),
        ("SET statement_timeout = 0", Kind::Set, Session),
        ("SET TRANSACTION READ WRITE", Kind::Set, Session),
        ("SET CONSTRAINTS ALL DEFERRED", Kind::Set, Session),
        ("RESET statement_timeout", Kind::Reset, Session),
        ("RESET ALL", Kind::Reset, Session),
        ("SET ROLE bob", Kind::SetRole, Session),
        (
            "SET SESSION AUTHORIZATION bob",
            Kind::SetSessionAuthorization,
            Session,
        ),
        ("SHOW ALL", Kind::Show, Session),
        ("DISCARD ALL", Kind::Discard, Session),
        ("PREPARE p AS SELECT 1", Kind::Prepare, Read),
        ("DEALLOCATE ALL", Kind::Deallocate, Session),
        ("EXPLAIN SELECT 1", Kind::Explain, Read),
        ("DECLARE c CURSOR FOR SELECT 1", Kind::DeclareCursor, Read),
        ("FETCH 10 FROM c", Kind::Fetch, Read),
        ("MOVE NEXT IN c", Kind::Fetch, Read),
        ("CLOSE c", Kind::ClosePortal, Session),
        ("LISTEN ch", Kind::Listen, Session),
        ("UNLISTEN *", Kind::Unlisten, Session),
        ("NOTIFY ch, 'x'", Kind::Notify, Session),
        ("DO $$ BEGIN END $$", Kind::Do, Unknown),
        ("CALL p()", Kind::Call, Unknown),
        ("EXECUTE p", Kind::Execute, Unknown),
    ];
    for (sql, kind, class) in cases {
        let s = one(sql);
        assert_eq!((s.kind, s.class), (*kind, *class), "{sql}");
    }
}

#[test]
fn kinds_read_as_policy_words() {
    assert_eq!(Kind::Drop(O::Table).to_string(), "drop table");
    assert_eq!(Kind::Drop(O::Table).verb(), "drop");
    assert_eq!(Kind::DropOwned.verb(), "drop");
    assert_eq!(
        Kind::Create(O::MaterializedView).to_string(),
        "create materialized view"
    );
    assert_eq!(Kind::Create(O::Index).object(), Some(O::Index));
    assert_eq!(Kind::SetRole.to_string(), "set role");
    assert_eq!(Kind::SetRole.verb(), "set role");
    assert_eq!(Kind::Transaction(T::Commit).to_string(), "commit");
    assert_eq!(Kind::Transaction(T::Commit).verb(), "transaction");
    assert_eq!(Kind::AlterSystem.to_string(), "alter system");
    assert_eq!(Class::Ddl.to_string(), "ddl");
}

#[test]
fn settings_and_prepared_names_are_reported() {
    assert_eq!(
        one("SET Statement_Timeout = 0")
            .properties
            .parameter
            .as_deref(),
        Some("statement_timeout")
    );
    assert_eq!(
        one("RESET ALL").properties.parameter.as_deref(),
        Some("all")
    );
    assert_eq!(
        one("SHOW search_path").properties.parameter.as_deref(),
        Some("search_path")
    );
    assert_eq!(
        one("DEALLOCATE PREPARE p")
            .properties
            .prepared_name
            .as_deref(),
        Some("p")
    );
    assert_eq!(one("DEALLOCATE ALL").properties.prepared_name, None);
}

#[test]
fn empty_texts_have_no_statements() {
    for sql in [
        "",
        "   ",
        ";",
        ";;",
        "-- only a comment",
        "/* only a comment */",
    ] {
        assert!(analyze(sql).statements.is_empty(), "{sql:?}");
    }
}

#[test]
fn kind_names_as_policy_files_write_them() {
    use crate::{Kind, ObjectType};
    for name in [
        "drop",
        "drop table",
        "commit",
        "transaction",
        "set role",
        "select",
        "alter system",
    ] {
        assert!(Kind::is_name(name), "{name}");
    }
    for name in ["drop tables", "delet", "", "DROP"] {
        assert!(!Kind::is_name(name), "{name}");
    }
    assert!(Kind::Drop(ObjectType::Table).answers_to("drop"));
    assert!(Kind::Drop(ObjectType::Table).answers_to("drop table"));
    assert!(!Kind::Drop(ObjectType::Index).answers_to("drop table"));
}

#[test]
fn settings_changed_by_set_reset_and_set_config() {
    use crate::{SettingChange, SettingValue};
    let settings = |sql: &str| analyze(sql).statements[0].properties.settings.clone();
    let change = |name: &str, value: SettingValue| SettingChange {
        name: Some(name.into()),
        value,
    };
    assert_eq!(
        settings("SET standard_conforming_strings = off"),
        [change(
            "standard_conforming_strings",
            SettingValue::Value("off".into())
        )]
    );
    assert_eq!(
        settings("SET NAMES 'SJIS'"),
        [change(
            "client_encoding",
            SettingValue::Value("SJIS".into())
        )]
    );
    assert_eq!(
        settings("RESET client_encoding"),
        [change("client_encoding", SettingValue::Default)]
    );
    assert_eq!(
        settings("SELECT pg_catalog.set_config('Client_Encoding', 'LATIN1', false)"),
        [change(
            "client_encoding",
            SettingValue::Value("LATIN1".into())
        )]
    );
    assert_eq!(
        settings("SELECT set_config(n, 'x', false) FROM t"),
        [SettingChange {
            name: None,
            value: SettingValue::Value("x".into())
        }]
    );
}
