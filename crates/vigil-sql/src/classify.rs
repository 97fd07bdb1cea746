//! The kind and the base class of one statement node, on its own, before
//! anything nested in it is taken into account (that is the collector's job).
//! The Kind → Class table is in the crate documentation.

use pg_query::protobuf::{self as pb, AlterTableType, TransactionStmtKind, VariableSetKind};
use pg_query::NodeRef;

use crate::{Class, Kind, ObjectType, TransactionOp};

/// The kind and base class of `node` if it is a statement; `None` for
/// expressions, clauses and other parts of statements.
pub(crate) fn classify(node: NodeRef<'_>) -> Option<(Kind, Class)> {
    use Class::*;
    let kc = match node {
        NodeRef::SelectStmt(_) => (Kind::Select, Read),
        NodeRef::InsertStmt(_) => (Kind::Insert, Write),
        NodeRef::UpdateStmt(_) => (Kind::Update, Write),
        NodeRef::DeleteStmt(_) => (Kind::Delete, Write),
        NodeRef::MergeStmt(_) => (Kind::Merge, Write),
        NodeRef::CopyStmt(s) => {
            // A server-side file or program is host access, whatever the direction.
            let class = if s.is_program || !s.filename.is_empty() {
                Admin
            } else if s.is_from {
                Write
            } else {
                Read
            };
            (Kind::Copy, class)
        }

        NodeRef::CreateStmt(_) => ddl(Kind::Create, ObjectType::Table),
        NodeRef::CreateForeignTableStmt(_) => ddl(Kind::Create, ObjectType::ForeignTable),
        NodeRef::CreateTableAsStmt(s) => ddl(Kind::Create, object(s.objtype)),
        NodeRef::ViewStmt(_) => ddl(Kind::Create, ObjectType::View),
        NodeRef::IndexStmt(_) => ddl(Kind::Create, ObjectType::Index),
        NodeRef::CreateSeqStmt(_) => ddl(Kind::Create, ObjectType::Sequence),
        NodeRef::CreateSchemaStmt(_) => ddl(Kind::Create, ObjectType::Schema),
        NodeRef::CreateFunctionStmt(s) => {
            let object = if s.is_procedure {
                ObjectType::Procedure
            } else {
                ObjectType::Function
            };
            ddl(Kind::Create, object)
        }
        NodeRef::DefineStmt(s) => ddl(Kind::Create, object(s.kind)),
        NodeRef::CreateDomainStmt(_) => ddl(Kind::Create, ObjectType::Domain),
        NodeRef::CompositeTypeStmt(_)
        | NodeRef::CreateEnumStmt(_)
        | NodeRef::CreateRangeStmt(_) => ddl(Kind::Create, ObjectType::Type),
        NodeRef::CreateTrigStmt(_) => ddl(Kind::Create, ObjectType::Trigger),
        NodeRef::CreateEventTrigStmt(_) => ddl(Kind::Create, ObjectType::EventTrigger),
        NodeRef::RuleStmt(_) => ddl(Kind::Create, ObjectType::Rule),
        NodeRef::CreatePlangStmt(_) => ddl(Kind::Create, ObjectType::Language),
        NodeRef::CreateConversionStmt(_) => ddl(Kind::Create, ObjectType::Conversion),
        NodeRef::CreateCastStmt(_) => ddl(Kind::Create, ObjectType::Cast),
        NodeRef::CreateOpClassStmt(_) => ddl(Kind::Create, ObjectType::OperatorClass),
        NodeRef::CreateOpFamilyStmt(_) => ddl(Kind::Create, ObjectType::OperatorFamily),
        NodeRef::CreateTransformStmt(_) => ddl(Kind::Create, ObjectType::Transform),
        NodeRef::CreateAmStmt(_) => ddl(Kind::Create, ObjectType::AccessMethod),
        NodeRef::CreateStatsStmt(_) => ddl(Kind::Create, ObjectType::Statistics),
        NodeRef::CreateExtensionStmt(_) => ddl(Kind::Create, ObjectType::Extension),
        NodeRef::CreateFdwStmt(_) => ddl(Kind::Create, ObjectType::ForeignDataWrapper),
        NodeRef::CreateForeignServerStmt(_) => ddl(Kind::Create, ObjectType::ForeignServer),
        NodeRef::CreateUserMappingStmt(_) => ddl(Kind::Create, ObjectType::UserMapping),
        NodeRef::CreatePolicyStmt(_) => ddl(Kind::Create, ObjectType::Policy),
        NodeRef::CreatePublicationStmt(_) => ddl(Kind::Create, ObjectType::Publication),
        NodeRef::CreateSubscriptionStmt(_) => ddl(Kind::Create, ObjectType::Subscription),
        NodeRef::CreateRoleStmt(_) => ddl(Kind::Create, ObjectType::Role),
        NodeRef::CreatedbStmt(_) => ddl(Kind::Create, ObjectType::Database),
        NodeRef::CreateTableSpaceStmt(_) => ddl(Kind::Create, ObjectType::Tablespace),

        NodeRef::AlterTableStmt(s) => {
            let (kind, class) = ddl(Kind::Alter, object(s.objtype));
            (kind, class.max(alter_table_class(s)))
        }
        NodeRef::AlterTableMoveAllStmt(s) => ddl(Kind::Alter, object(s.objtype)),
        NodeRef::AlterDomainStmt(_) => ddl(Kind::Alter, ObjectType::Domain),
        NodeRef::AlterFunctionStmt(s) => ddl(Kind::Alter, object(s.objtype)),
        NodeRef::AlterSeqStmt(_) => ddl(Kind::Alter, ObjectType::Sequence),
        NodeRef::AlterEnumStmt(_) | NodeRef::AlterTypeStmt(_) => ddl(Kind::Alter, ObjectType::Type),
        NodeRef::AlterEventTrigStmt(_) => ddl(Kind::Alter, ObjectType::EventTrigger),
        NodeRef::AlterOpFamilyStmt(_) => ddl(Kind::Alter, ObjectType::OperatorFamily),
        NodeRef::AlterOperatorStmt(_) => ddl(Kind::Alter, ObjectType::Operator),
        NodeRef::AlterStatsStmt(_) => ddl(Kind::Alter, ObjectType::Statistics),
        NodeRef::AlterCollationStmt(_) => ddl(Kind::Alter, ObjectType::Collation),
        NodeRef::AlterTsdictionaryStmt(_) => ddl(Kind::Alter, ObjectType::TextSearchDictionary),
        NodeRef::AlterTsconfigurationStmt(_) => {
            ddl(Kind::Alter, ObjectType::TextSearchConfiguration)
        }
        NodeRef::AlterExtensionStmt(_) | NodeRef::AlterExtensionContentsStmt(_) => {
            ddl(Kind::Alter, ObjectType::Extension)
        }
        NodeRef::AlterFdwStmt(_) => ddl(Kind::Alter, ObjectType::ForeignDataWrapper),
        NodeRef::AlterForeignServerStmt(_) => ddl(Kind::Alter, ObjectType::ForeignServer),
        NodeRef::AlterUserMappingStmt(_) => ddl(Kind::Alter, ObjectType::UserMapping),
        NodeRef::AlterPolicyStmt(_) => ddl(Kind::Alter, ObjectType::Policy),
        NodeRef::AlterPublicationStmt(_) => ddl(Kind::Alter, ObjectType::Publication),
        NodeRef::AlterSubscriptionStmt(_) => ddl(Kind::Alter, ObjectType::Subscription),
        NodeRef::AlterRoleStmt(_) | NodeRef::AlterRoleSetStmt(_) => {
            ddl(Kind::Alter, ObjectType::Role)
        }
        NodeRef::AlterDatabaseStmt(_)
        | NodeRef::AlterDatabaseSetStmt(_)
        | NodeRef::AlterDatabaseRefreshCollStmt(_) => ddl(Kind::Alter, ObjectType::Database),
        NodeRef::AlterTableSpaceOptionsStmt(_) => ddl(Kind::Alter, ObjectType::Tablespace),
        NodeRef::AlterDefaultPrivilegesStmt(_) => ddl(Kind::Alter, ObjectType::DefaultPrivileges),
        NodeRef::RenameStmt(s) => ddl(Kind::Alter, object(s.rename_type)),
        NodeRef::AlterObjectSchemaStmt(s) => ddl(Kind::Alter, object(s.object_type)),
        NodeRef::AlterObjectDependsStmt(s) => ddl(Kind::Alter, object(s.object_type)),
        // Changing an owner hands over every privilege on the object.
        NodeRef::AlterOwnerStmt(s) => (Kind::Alter(object(s.object_type)), Dcl),

        NodeRef::DropStmt(s) => ddl(Kind::Drop, object(s.remove_type)),
        NodeRef::DropRoleStmt(_) => ddl(Kind::Drop, ObjectType::Role),
        NodeRef::DropdbStmt(_) => ddl(Kind::Drop, ObjectType::Database),
        NodeRef::DropTableSpaceStmt(_) => ddl(Kind::Drop, ObjectType::Tablespace),
        NodeRef::DropUserMappingStmt(_) => ddl(Kind::Drop, ObjectType::UserMapping),
        NodeRef::DropSubscriptionStmt(_) => ddl(Kind::Drop, ObjectType::Subscription),
        NodeRef::DropOwnedStmt(_) => (Kind::DropOwned, Dcl),
        NodeRef::ReassignOwnedStmt(_) => (Kind::ReassignOwned, Dcl),

        // TRUNCATE is not MVCC-safe and fires no row triggers: closer to DDL than to a DELETE.
        NodeRef::TruncateStmt(_) => (Kind::Truncate, Ddl),
        NodeRef::CommentStmt(_) => (Kind::Comment, Ddl),
        NodeRef::ImportForeignSchemaStmt(_) => (Kind::ImportForeignSchema, Ddl),
        NodeRef::SecLabelStmt(_) => (Kind::SecurityLabel, Dcl),
        NodeRef::GrantStmt(s) => (
            if s.is_grant {
                Kind::Grant
            } else {
                Kind::Revoke
            },
            Dcl,
        ),
        NodeRef::GrantRoleStmt(s) => (
            if s.is_grant {
                Kind::Grant
            } else {
                Kind::Revoke
            },
            Dcl,
        ),

        NodeRef::VariableSetStmt(s) => (set_kind(s), Session),
        NodeRef::VariableShowStmt(_) => (Kind::Show, Session),
        NodeRef::ConstraintsSetStmt(_) => (Kind::Set, Session),
        NodeRef::DiscardStmt(_) => (Kind::Discard, Session),
        NodeRef::TransactionStmt(s) => (Kind::Transaction(transaction_op(s)?), Txn),
        NodeRef::PrepareStmt(_) => (Kind::Prepare, Session),
        NodeRef::ExecuteStmt(_) => (Kind::Execute, Unknown),
        NodeRef::DeallocateStmt(_) => (Kind::Deallocate, Session),
        NodeRef::ExplainStmt(_) => (Kind::Explain, Read),
        NodeRef::DeclareCursorStmt(_) => (Kind::DeclareCursor, Read),
        // Cursors cannot hold data-modifying statements, so fetching only reads.
        NodeRef::FetchStmt(_) => (Kind::Fetch, Read),
        NodeRef::ClosePortalStmt(_) => (Kind::ClosePortal, Session),
        NodeRef::ListenStmt(_) => (Kind::Listen, Session),
        NodeRef::UnlistenStmt(_) => (Kind::Unlisten, Session),
        NodeRef::NotifyStmt(_) => (Kind::Notify, Session),

        // A procedure or a code block can do anything; the analyzer cannot see in.
        NodeRef::CallStmt(_) => (Kind::Call, Unknown),
        NodeRef::DoStmt(_) => (Kind::Do, Unknown),

        NodeRef::VacuumStmt(s) => (
            match (s.is_vacuumcmd, vacuum_full(s)) {
                (true, true) => Kind::VacuumFull,
                (true, false) => Kind::Vacuum,
                (false, _) => Kind::Analyze,
            },
            Admin,
        ),
        NodeRef::ClusterStmt(_) => (Kind::Cluster, Admin),
        NodeRef::ReindexStmt(_) => (Kind::Reindex, Admin),
        NodeRef::CheckPointStmt(_) => (Kind::Checkpoint, Admin),
        NodeRef::LoadStmt(_) => (Kind::Load, Admin),
        NodeRef::AlterSystemStmt(_) => (Kind::AlterSystem, Admin),
        // Locks block other sessions; stronger modes need write privileges.
        NodeRef::LockStmt(_) => (Kind::Lock, Write),
        NodeRef::RefreshMatViewStmt(_) => (Kind::Refresh, Write),
        _ => return None,
    };
    Some(kc)
}

/// Create, alter and drop: DDL, unless the object is about access (DCL) or
/// about the server itself (admin).
fn ddl(verb: fn(ObjectType) -> Kind, object: ObjectType) -> (Kind, Class) {
    let class = match object {
        ObjectType::Role
        | ObjectType::UserMapping
        | ObjectType::Policy
        | ObjectType::DefaultPrivileges => Class::Dcl,
        ObjectType::Database
        | ObjectType::Tablespace
        | ObjectType::Subscription
        | ObjectType::Publication
        | ObjectType::EventTrigger
        | ObjectType::Parameter => Class::Admin,
        _ => Class::Ddl,
    };
    (verb(object), class)
}

/// `ALTER TABLE` subcommands that change access rather than shape.
/// `VACUUM (FULL)` or `VACUUM FULL`, whatever its value (`FULL false` too:
/// a rule may take it for what it says).
fn vacuum_full(stmt: &pb::VacuumStmt) -> bool {
    stmt.options.iter().any(|option| {
        matches!(&option.node, Some(pb::node::Node::DefElem(d)) if d.defname.eq_ignore_ascii_case("full"))
    })
}

fn alter_table_class(stmt: &pb::AlterTableStmt) -> Class {
    let changes_access = stmt.cmds.iter().any(|cmd| match &cmd.node {
        Some(pb::node::Node::AlterTableCmd(cmd)) => matches!(
            AlterTableType::try_from(cmd.subtype),
            Ok(AlterTableType::AtChangeOwner
                | AlterTableType::AtEnableRowSecurity
                | AlterTableType::AtDisableRowSecurity
                | AlterTableType::AtForceRowSecurity
                | AlterTableType::AtNoForceRowSecurity)
        ),
        _ => false,
    });
    if changes_access {
        Class::Dcl
    } else {
        Class::Ddl
    }
}

/// PostgreSQL matches parameter names case-insensitively, so `SET "ROLE" = x`
/// switches role exactly like `SET ROLE x`.
fn set_kind(stmt: &pb::VariableSetStmt) -> Kind {
    let name = stmt.name.to_ascii_lowercase();
    match name.as_str() {
        "role" => Kind::SetRole,
        "session_authorization" => Kind::SetSessionAuthorization,
        _ => match VariableSetKind::try_from(stmt.kind) {
            Ok(VariableSetKind::VarReset | VariableSetKind::VarResetAll) => Kind::Reset,
            _ => Kind::Set,
        },
    }
}

fn transaction_op(stmt: &pb::TransactionStmt) -> Option<TransactionOp> {
    let op = match TransactionStmtKind::try_from(stmt.kind).ok()? {
        TransactionStmtKind::TransStmtBegin | TransactionStmtKind::TransStmtStart => {
            TransactionOp::Begin
        }
        TransactionStmtKind::TransStmtCommit => TransactionOp::Commit,
        TransactionStmtKind::TransStmtRollback => TransactionOp::Rollback,
        TransactionStmtKind::TransStmtSavepoint => TransactionOp::Savepoint,
        TransactionStmtKind::TransStmtRelease => TransactionOp::Release,
        TransactionStmtKind::TransStmtRollbackTo => TransactionOp::RollbackTo,
        TransactionStmtKind::TransStmtPrepare => TransactionOp::Prepare,
        TransactionStmtKind::TransStmtCommitPrepared => TransactionOp::CommitPrepared,
        TransactionStmtKind::TransStmtRollbackPrepared => TransactionOp::RollbackPrepared,
        TransactionStmtKind::Undefined => return None,
    };
    Some(op)
}

/// Our name for one of PostgreSQL's object types.
pub(crate) fn object(raw: i32) -> ObjectType {
    use pb::ObjectType as P;
    let Ok(object) = P::try_from(raw) else {
        return ObjectType::Other;
    };
    match object {
        P::ObjectAccessMethod => ObjectType::AccessMethod,
        P::ObjectAggregate => ObjectType::Aggregate,
        P::ObjectAmop | P::ObjectAmproc | P::ObjectOpfamily => ObjectType::OperatorFamily,
        P::ObjectAttribute | P::ObjectType => ObjectType::Type,
        P::ObjectCast => ObjectType::Cast,
        P::ObjectColumn | P::ObjectDefault => ObjectType::Column,
        P::ObjectCollation => ObjectType::Collation,
        P::ObjectConversion => ObjectType::Conversion,
        P::ObjectDatabase => ObjectType::Database,
        P::ObjectDefacl => ObjectType::DefaultPrivileges,
        P::ObjectDomain | P::ObjectDomconstraint => ObjectType::Domain,
        P::ObjectEventTrigger => ObjectType::EventTrigger,
        P::ObjectExtension => ObjectType::Extension,
        P::ObjectFdw => ObjectType::ForeignDataWrapper,
        P::ObjectForeignServer => ObjectType::ForeignServer,
        P::ObjectForeignTable => ObjectType::ForeignTable,
        P::ObjectFunction => ObjectType::Function,
        P::ObjectIndex => ObjectType::Index,
        P::ObjectLanguage => ObjectType::Language,
        P::ObjectLargeobject => ObjectType::LargeObject,
        P::ObjectMatview => ObjectType::MaterializedView,
        P::ObjectOpclass => ObjectType::OperatorClass,
        P::ObjectOperator => ObjectType::Operator,
        P::ObjectParameterAcl => ObjectType::Parameter,
        P::ObjectPolicy => ObjectType::Policy,
        P::ObjectProcedure => ObjectType::Procedure,
        P::ObjectPublication | P::ObjectPublicationNamespace | P::ObjectPublicationRel => {
            ObjectType::Publication
        }
        P::ObjectRole => ObjectType::Role,
        P::ObjectRoutine => ObjectType::Routine,
        P::ObjectRule => ObjectType::Rule,
        P::ObjectSchema => ObjectType::Schema,
        P::ObjectSequence => ObjectType::Sequence,
        P::ObjectSubscription => ObjectType::Subscription,
        P::ObjectStatisticExt => ObjectType::Statistics,
        P::ObjectTabconstraint | P::ObjectTable => ObjectType::Table,
        P::ObjectTablespace => ObjectType::Tablespace,
        P::ObjectTransform => ObjectType::Transform,
        P::ObjectTrigger => ObjectType::Trigger,
        P::ObjectTsconfiguration => ObjectType::TextSearchConfiguration,
        P::ObjectTsdictionary => ObjectType::TextSearchDictionary,
        P::ObjectTsparser => ObjectType::TextSearchParser,
        P::ObjectTstemplate => ObjectType::TextSearchTemplate,
        P::ObjectUserMapping => ObjectType::UserMapping,
        P::ObjectView => ObjectType::View,
        P::Undefined => ObjectType::Other,
    }
}
