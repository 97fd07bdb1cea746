//! The vocabulary policy speaks about statements: what a statement is
//! ([`Kind`], per object type) and the broad class of its effect ([`Class`]).

use std::fmt;

/// What a statement is. Create, alter and drop carry the object type, so a
/// rule can single out `DROP TABLE` from `DROP INDEX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Select,
    Insert,
    Update,
    Delete,
    Merge,
    Copy,
    Create(ObjectType),
    Alter(ObjectType),
    Drop(ObjectType),
    Truncate,
    /// `GRANT` of privileges or of role membership.
    Grant,
    /// `REVOKE` of privileges or of role membership.
    Revoke,
    /// `DROP OWNED BY`: drops every object a role owns.
    DropOwned,
    /// `REASSIGN OWNED BY`.
    ReassignOwned,
    /// `SET` of any parameter other than the two identity ones below.
    Set,
    /// `RESET` of a parameter, or `RESET ALL`.
    Reset,
    /// `SET ROLE` / `RESET ROLE` (also spelled as `SET role = …`).
    SetRole,
    /// `SET SESSION AUTHORIZATION` / `RESET SESSION AUTHORIZATION`.
    SetSessionAuthorization,
    Show,
    Discard,
    Call,
    Do,
    Transaction(TransactionOp),
    Prepare,
    Execute,
    Deallocate,
    Explain,
    DeclareCursor,
    /// `FETCH` or `MOVE`.
    Fetch,
    ClosePortal,
    Listen,
    Unlisten,
    Notify,
    Vacuum,
    /// `VACUUM FULL`: rewrites tables under an exclusive lock.
    VacuumFull,
    Analyze,
    Cluster,
    Reindex,
    Checkpoint,
    /// `LOAD 'library'`.
    Load,
    Lock,
    /// `REFRESH MATERIALIZED VIEW`.
    Refresh,
    AlterSystem,
    Comment,
    SecurityLabel,
    ImportForeignSchema,
    /// Something the analyzer has no name for; always [`Class::Unknown`].
    Other,
}

impl Kind {
    /// The leading verb, for rules that do not care about the object type:
    /// `drop` for every `Drop(_)` and for `DROP OWNED`.
    pub fn verb(self) -> &'static str {
        match self {
            Kind::Create(_) => "create",
            Kind::Alter(_) => "alter",
            Kind::Drop(_) | Kind::DropOwned => "drop",
            Kind::VacuumFull => "vacuum",
            Kind::Transaction(_) => "transaction",
            other => other.simple_name(),
        }
    }

    /// Whether a policy file's `name` means this kind: its full name
    /// (`drop table`, `commit`) or its verb (`drop`, `transaction`).
    pub fn answers_to(self, name: &str) -> bool {
        name == self.verb() || name == self.to_string()
    }

    /// Whether `name` means any kind at all, so a typo in a policy file is an
    /// error instead of a rule that never matches.
    pub fn is_name(name: &str) -> bool {
        const VERBS: &[&str] = &["create", "alter", "drop", "transaction"];
        let simple = || SIMPLE.iter().any(|k| k.simple_name() == name);
        let transaction = || TRANSACTION_OPS.iter().any(|op| op.as_str() == name);
        let object = || {
            ["create ", "alter ", "drop "].iter().any(|verb| {
                name.strip_prefix(verb)
                    .is_some_and(|o| ObjectType::ALL.iter().any(|t| t.as_str() == o))
            })
        };
        VERBS.contains(&name) || simple() || transaction() || object()
    }

    /// The object type of create, alter and drop statements.
    pub fn object(self) -> Option<ObjectType> {
        match self {
            Kind::Create(o) | Kind::Alter(o) | Kind::Drop(o) => Some(o),
            _ => None,
        }
    }

    fn simple_name(self) -> &'static str {
        match self {
            Kind::Select => "select",
            Kind::Insert => "insert",
            Kind::Update => "update",
            Kind::Delete => "delete",
            Kind::Merge => "merge",
            Kind::Copy => "copy",
            Kind::Truncate => "truncate",
            Kind::Grant => "grant",
            Kind::Revoke => "revoke",
            Kind::DropOwned => "drop owned",
            Kind::ReassignOwned => "reassign owned",
            Kind::Set => "set",
            Kind::Reset => "reset",
            Kind::SetRole => "set role",
            Kind::SetSessionAuthorization => "set session authorization",
            Kind::Show => "show",
            Kind::Discard => "discard",
            Kind::Call => "call",
            Kind::Do => "do",
            Kind::Prepare => "prepare",
            Kind::Execute => "execute",
            Kind::Deallocate => "deallocate",
            Kind::Explain => "explain",
            Kind::DeclareCursor => "declare cursor",
            Kind::Fetch => "fetch",
            Kind::ClosePortal => "close",
            Kind::Listen => "listen",
            Kind::Unlisten => "unlisten",
            Kind::Notify => "notify",
            Kind::Vacuum => "vacuum",
            Kind::VacuumFull => "vacuum full",
            Kind::Analyze => "analyze",
            Kind::Cluster => "cluster",
            Kind::Reindex => "reindex",
            Kind::Checkpoint => "checkpoint",
            Kind::Load => "load",
            Kind::Lock => "lock",
            Kind::Refresh => "refresh materialized view",
            Kind::AlterSystem => "alter system",
            Kind::Comment => "comment",
            Kind::SecurityLabel => "security label",
            Kind::ImportForeignSchema => "import foreign schema",
            Kind::Other => "other",
            Kind::Create(_) => "create",
            Kind::Alter(_) => "alter",
            Kind::Drop(_) => "drop",
            Kind::Transaction(_) => "transaction",
        }
    }
}

/// The kinds without an object type or transaction operation.
const SIMPLE: &[Kind] = &[
    Kind::Select,
    Kind::Insert,
    Kind::Update,
    Kind::Delete,
    Kind::Merge,
    Kind::Copy,
    Kind::Truncate,
    Kind::Grant,
    Kind::Revoke,
    Kind::DropOwned,
    Kind::ReassignOwned,
    Kind::Set,
    Kind::Reset,
    Kind::SetRole,
    Kind::SetSessionAuthorization,
    Kind::Show,
    Kind::Discard,
    Kind::Call,
    Kind::Do,
    Kind::Prepare,
    Kind::Execute,
    Kind::Deallocate,
    Kind::Explain,
    Kind::DeclareCursor,
    Kind::Fetch,
    Kind::ClosePortal,
    Kind::Listen,
    Kind::Unlisten,
    Kind::Notify,
    Kind::Vacuum,
    Kind::VacuumFull,
    Kind::Analyze,
    Kind::Cluster,
    Kind::Reindex,
    Kind::Checkpoint,
    Kind::Load,
    Kind::Lock,
    Kind::Refresh,
    Kind::AlterSystem,
    Kind::Comment,
    Kind::SecurityLabel,
    Kind::ImportForeignSchema,
    Kind::Other,
];

const TRANSACTION_OPS: &[TransactionOp] = &[
    TransactionOp::Begin,
    TransactionOp::Commit,
    TransactionOp::Rollback,
    TransactionOp::Savepoint,
    TransactionOp::Release,
    TransactionOp::RollbackTo,
    TransactionOp::Prepare,
    TransactionOp::CommitPrepared,
    TransactionOp::RollbackPrepared,
];

/// Lowercase words as a policy file would write them: `drop table`,
/// `set role`, `commit`.
impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Kind::Create(o) | Kind::Alter(o) | Kind::Drop(o) => {
                write!(f, "{} {}", self.verb(), o.as_str())
            }
            Kind::Transaction(op) => f.write_str(op.as_str()),
            other => f.write_str(other.simple_name()),
        }
    }
}

/// Transaction control statements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TransactionOp {
    /// `BEGIN` or `START TRANSACTION`.
    Begin,
    /// `COMMIT` or `END`.
    Commit,
    /// `ROLLBACK` or `ABORT`.
    Rollback,
    Savepoint,
    Release,
    RollbackTo,
    /// `PREPARE TRANSACTION`.
    Prepare,
    CommitPrepared,
    RollbackPrepared,
}

impl TransactionOp {
    pub fn as_str(self) -> &'static str {
        match self {
            TransactionOp::Begin => "begin",
            TransactionOp::Commit => "commit",
            TransactionOp::Rollback => "rollback",
            TransactionOp::Savepoint => "savepoint",
            TransactionOp::Release => "release savepoint",
            TransactionOp::RollbackTo => "rollback to savepoint",
            TransactionOp::Prepare => "prepare transaction",
            TransactionOp::CommitPrepared => "commit prepared",
            TransactionOp::RollbackPrepared => "rollback prepared",
        }
    }
}

/// The kinds of object DDL and DCL act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ObjectType {
    AccessMethod,
    Aggregate,
    Cast,
    Collation,
    Column,
    Conversion,
    Database,
    DefaultPrivileges,
    Domain,
    EventTrigger,
    Extension,
    ForeignDataWrapper,
    ForeignServer,
    ForeignTable,
    Function,
    Index,
    Language,
    LargeObject,
    MaterializedView,
    Operator,
    OperatorClass,
    OperatorFamily,
    Parameter,
    Policy,
    Procedure,
    Publication,
    Role,
    Routine,
    Rule,
    Schema,
    Sequence,
    Statistics,
    Subscription,
    Table,
    Tablespace,
    TextSearchConfiguration,
    TextSearchDictionary,
    TextSearchParser,
    TextSearchTemplate,
    Transform,
    Trigger,
    Type,
    UserMapping,
    View,
    Other,
}

impl ObjectType {
    pub const ALL: [ObjectType; 45] = [
        ObjectType::AccessMethod,
        ObjectType::Aggregate,
        ObjectType::Cast,
        ObjectType::Collation,
        ObjectType::Column,
        ObjectType::Conversion,
        ObjectType::Database,
        ObjectType::DefaultPrivileges,
        ObjectType::Domain,
        ObjectType::EventTrigger,
        ObjectType::Extension,
        ObjectType::ForeignDataWrapper,
        ObjectType::ForeignServer,
        ObjectType::ForeignTable,
        ObjectType::Function,
        ObjectType::Index,
        ObjectType::Language,
        ObjectType::LargeObject,
        ObjectType::MaterializedView,
        ObjectType::Operator,
        ObjectType::OperatorClass,
        ObjectType::OperatorFamily,
        ObjectType::Parameter,
        ObjectType::Policy,
        ObjectType::Procedure,
        ObjectType::Publication,
        ObjectType::Role,
        ObjectType::Routine,
        ObjectType::Rule,
        ObjectType::Schema,
        ObjectType::Sequence,
        ObjectType::Statistics,
        ObjectType::Subscription,
        ObjectType::Table,
        ObjectType::Tablespace,
        ObjectType::TextSearchConfiguration,
        ObjectType::TextSearchDictionary,
        ObjectType::TextSearchParser,
        ObjectType::TextSearchTemplate,
        ObjectType::Transform,
        ObjectType::Trigger,
        ObjectType::Type,
        ObjectType::UserMapping,
        ObjectType::View,
        ObjectType::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ObjectType::AccessMethod => "access method",
            ObjectType::Aggregate => "aggregate",
            ObjectType::Cast => "cast",
            ObjectType::Collation => "collation",
            ObjectType::Column => "column",
            ObjectType::Conversion => "conversion",
            ObjectType::Database => "database",
            ObjectType::DefaultPrivileges => "default privileges",
            ObjectType::Domain => "domain",
            ObjectType::EventTrigger => "event trigger",
            ObjectType::Extension => "extension",
            ObjectType::ForeignDataWrapper => "foreign data wrapper",
            ObjectType::ForeignServer => "server",
            ObjectType::ForeignTable => "foreign table",
            ObjectType::Function => "function",
            ObjectType::Index => "index",
            ObjectType::Language => "language",
            ObjectType::LargeObject => "large object",
            ObjectType::MaterializedView => "materialized view",
            ObjectType::Operator => "operator",
            ObjectType::OperatorClass => "operator class",
            ObjectType::OperatorFamily => "operator family",
            ObjectType::Parameter => "parameter",
            ObjectType::Policy => "policy",
            ObjectType::Procedure => "procedure",
            ObjectType::Publication => "publication",
            ObjectType::Role => "role",
            ObjectType::Routine => "routine",
            ObjectType::Rule => "rule",
            ObjectType::Schema => "schema",
            ObjectType::Sequence => "sequence",
            ObjectType::Statistics => "statistics",
            ObjectType::Subscription => "subscription",
            ObjectType::Table => "table",
            ObjectType::Tablespace => "tablespace",
            ObjectType::TextSearchConfiguration => "text search configuration",
            ObjectType::TextSearchDictionary => "text search dictionary",
            ObjectType::TextSearchParser => "text search parser",
            ObjectType::TextSearchTemplate => "text search template",
            ObjectType::Transform => "transform",
            ObjectType::Trigger => "trigger",
            ObjectType::Type => "type",
            ObjectType::UserMapping => "user mapping",
            ObjectType::View => "view",
            ObjectType::Other => "object",
        }
    }
}

impl fmt::Display for ObjectType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The broad effect of a statement, for rules that do not list kinds. See the
/// crate documentation for which kind lands in which class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    /// Reads data and changes nothing.
    Read,
    /// Changes rows.
    Write,
    /// Changes schema objects.
    Ddl,
    /// Changes who may do what: privileges, roles, ownership, row security.
    Dcl,
    /// Administers the server: settings, databases, tablespaces, maintenance,
    /// server-side files and programs.
    Admin,
    /// Transaction control.
    Txn,
    /// Session state: parameters, identity switches, prepared statements,
    /// cursors, notifications.
    Session,
    /// The analyzer cannot see what it does (`DO`, `CALL`, `EXECUTE`).
    Unknown,
}

impl Class {
    pub const ALL: [Class; 8] = [
        Class::Read,
        Class::Write,
        Class::Ddl,
        Class::Dcl,
        Class::Admin,
        Class::Txn,
        Class::Session,
        Class::Unknown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Class::Read => "read",
            Class::Write => "write",
            Class::Ddl => "ddl",
            Class::Dcl => "dcl",
            Class::Admin => "admin",
            Class::Txn => "txn",
            Class::Session => "session",
            Class::Unknown => "unknown",
        }
    }

    /// How much harm the class can do. A statement that combines several
    /// (a `SELECT` with a `DELETE` in a CTE) takes the worst of them.
    pub(crate) fn severity(self) -> u8 {
        match self {
            Class::Txn => 0,
            Class::Session => 1,
            Class::Read => 2,
            Class::Write => 3,
            Class::Ddl => 4,
            Class::Dcl => 5,
            Class::Admin => 6,
            Class::Unknown => 7,
        }
    }

    /// The worse of two classes.
    pub fn worse(self, other: Class) -> Class {
        self.max(other)
    }

    pub(crate) fn max(self, other: Class) -> Class {
        if other.severity() > self.severity() {
            other
        } else {
            self
        }
    }
}

impl fmt::Display for Class {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
