//! Gathers, in one walk over a statement's tree, what policy asks about it:
//! the class of everything that runs with it, the relations it reads and
//! writes, the columns and functions it names, and its guardrail properties.

use std::collections::HashMap;

use pg_query::protobuf::{self as pb, node::Node as N};
use pg_query::NodeRef;

use crate::classify::classify;
use crate::lineage::Lineage;
use crate::walk::{walk, TooDeep, Visit, Visitor};
use crate::{
    Access, Class, ColumnRef, CopyDirection, CopyFormat, CopyInfo, CopyOptions, Kind, ObjectType,
    Output, Properties, Relation, SettingChange, SettingValue,
};

/// Whether `node` is a bind parameter (`$1`, also cast: `$1::text`).
fn is_parameter(node: &pb::Node) -> bool {
    match &node.node {
        Some(N::ParamRef(_)) => true,
        Some(N::TypeCast(cast)) => cast.arg.as_deref().is_some_and(is_parameter),
        _ => false,
    }
}

/// Whether a WHERE (or join condition) can leave rows out: it names a
/// column somewhere, in each branch of an OR and in some part of an AND.
/// `WHERE true`, `WHERE 1 = 1`, `WHERE $1` or `WHERE x = 1 OR true` name
/// none where it matters and keep every row: they count as no WHERE.
fn filters_rows(condition: Option<&pb::Node>) -> bool {
    use pb::BoolExprType as B;
    let Some(node) = condition.and_then(|n| n.node.as_ref()) else {
        return false;
    };
    match node {
        N::BoolExpr(b) => {
            let args = || b.args.iter().map(Some);
            match B::try_from(b.boolop) {
                Ok(B::AndExpr) => args().any(filters_rows),
                Ok(B::OrExpr) => args().all(filters_rows),
                _ => names_a_column(node),
            }
        }
        _ => names_a_column(node),
    }
}

/// Whether a column reference stands anywhere in `node`.
fn names_a_column(node: &N) -> bool {
    struct Columns(bool);
    impl<'a> Visitor<'a> for Columns {
        fn enter(&mut self, visit: Visit<'a>) {
            self.0 |= matches!(visit.node, NodeRef::ColumnRef(_));
        }
        fn leave(&mut self, _: Visit<'a>) {}
    }
    let mut columns = Columns(false);
    // Too deep to walk is taken as naming one: the caller's other checks hold.
    walk(node.to_ref(), &mut columns).is_err() || columns.0
}

/// Settings that govern the server's logging and auditing, or that only
/// superusers may set: changing one is administration, not a session's own
/// business.
pub fn is_admin_setting(name: &str) -> bool {
    const ADMIN: &[&str] = &[
        "session_replication_role",
        "track_activities",
        "track_counts",
        "track_functions",
        "track_io_timing",
        "track_wal_io_timing",
        "allow_system_table_mods",
        "ignore_system_indexes",
        "ignore_checksum_failure",
        "zero_damaged_pages",
        "jit_dump_bitcode",
        "wal_consistency_checking",
        "compute_query_id",
        "lc_messages",
    ];
    ["log_", "debug_", "trace_", "pgaudit."]
        .iter()
        .any(|prefix| name.starts_with(prefix))
        || ADMIN.contains(&name)
}

/// `CURSOR_OPT_HOLD` of PostgreSQL's `parsenodes.h`: `DECLARE … WITH HOLD`.
const CURSOR_OPT_HOLD: i32 = 0x0020;

/// Everything [`collect`] found in one statement.
#[derive(Debug)]
pub(crate) struct Findings {
    pub kind: Kind,
    pub class: Class,
    pub inner_kinds: Vec<Kind>,
    pub relations: Vec<Relation>,
    pub columns: Vec<ColumnRef>,
    pub functions: Vec<String>,
    pub properties: Properties,
    pub outputs: Option<Vec<Output>>,
    pub filters: Vec<ColumnRef>,
    pub written_from: Vec<ColumnRef>,
    pub computed: Vec<ColumnRef>,
}

/// Analyzes the statement rooted at `stmt` (a `RawStmt`'s `stmt`).
pub(crate) fn collect(stmt: NodeRef<'_>) -> Result<Findings, TooDeep> {
    let mut collector = Collector::default();
    walk(stmt, &mut collector)?;
    Ok(collector.finish())
}

/// A statement node the walk is inside: the root, or one nested in it
/// (subquery, CTE body, the statement of a PREPARE or EXPLAIN).
struct Frame<'a> {
    node: NodeRef<'a>,
    depth: usize,
    class: Class,
    /// The relation a DML or COPY statement acts on, by qualified name.
    target: Option<String>,
    has_ctes: bool,
    /// A plain EXPLAIN: what it wraps is planned, not run.
    dry: bool,
}

/// The CTE names one WITH clause makes visible. While a non-recursive WITH is
/// walked, each CTE's body sees only the CTEs before it, so
/// `WITH t AS (SELECT * FROM t)` still reads the real table `t`.
struct CteScope<'a> {
    names: Vec<&'a str>,
    recursive: bool,
    visible: usize,
}

/// What an alias stands for: a relation, or something that is not one
/// (subquery, function, CTE), or several things in different scopes.
#[derive(Clone, PartialEq)]
enum AliasTarget {
    Relation(String),
    NotRelation,
    Ambiguous,
}

/// A column as written, resolved once all relations and aliases are known.
enum RawColumn<'a> {
    Named {
        qualifier: Vec<&'a str>,
        column: &'a str,
    },
    OfTarget {
        relation: Option<String>,
        column: &'a str,
    },
}

#[derive(Default)]
struct Collector<'a> {
    depth: usize,
    root: Option<(Kind, Class)>,
    class: Option<Class>,
    inner_kinds: Vec<Kind>,
    frames: Vec<Frame<'a>>,
    ctes: Vec<CteScope<'a>>,
    /// How many plain EXPLAINs the walk is inside.
    dry: usize,
    relations: Vec<Relation>,
    columns: Vec<RawColumn<'a>>,
    functions: Vec<String>,
    aliases: HashMap<&'a str, AliasTarget>,
    /// FROM items that are not relations: subqueries, functions, CTEs.
    other_sources: usize,
    properties: Properties,
    lineage: Lineage<'a>,
}

impl<'a> Visitor<'a> for Collector<'a> {
    fn enter(&mut self, visit: Visit<'a>) {
        self.lineage.enter(visit, self.depth);
        let statement = match classify(visit.node) {
            Some(kc) => Some(kc),
            // Whatever stands at the root is a statement; one we cannot name is unknown.
            None if self.frames.is_empty() => Some((Kind::Other, Class::Unknown)),
            None => None,
        };
        if let Some((kind, class)) = statement {
            self.enter_statement(visit.node, kind, class);
        }
        match visit.node {
            NodeRef::RangeVar(rv) => self.range_var(visit, rv),
            NodeRef::FuncCall(call) => self.function(call),
            NodeRef::AExpr(expr) => self.operator(&expr.name),
            NodeRef::ColumnRef(column) => self.column_ref(column),
            NodeRef::ResTarget(target) => self.target_column(visit, target),
            NodeRef::RangeSubselect(s) => self.other_source(s.alias.as_ref()),
            NodeRef::RangeFunction(f) => self.other_source(f.alias.as_ref()),
            NodeRef::RangeTableFunc(f) => self.other_source(f.alias.as_ref()),
            NodeRef::JsonTable(t) => self.other_source(t.alias.as_ref()),
            NodeRef::WithClause(with) => {
                if let Some(scope) = self.ctes.last_mut() {
                    if !with.recursive {
                        scope.visible = 0;
                    }
                }
            }
            NodeRef::CommonTableExpr(cte) if self.dry == 0 => {
                let query = cte.ctequery.as_deref().and_then(|n| n.node.as_ref());
                if matches!(
                    query,
                    Some(N::InsertStmt(_) | N::UpdateStmt(_) | N::DeleteStmt(_) | N::MergeStmt(_))
                ) {
                    self.properties.data_modifying_cte = true;
                }
            }
            NodeRef::DropStmt(drop) => self.dropped_relations(drop),
            _ => {}
        }
        self.depth += 1;
    }

    fn leave(&mut self, visit: Visit<'a>) {
        self.depth = self.depth.saturating_sub(1);
        match (visit.node, visit.parent) {
            (NodeRef::CommonTableExpr(_), Some(NodeRef::WithClause(_))) => {
                if let Some(scope) = self.ctes.last_mut() {
                    if !scope.recursive {
                        scope.visible = (scope.visible + 1).min(scope.names.len());
                    }
                }
            }
            (NodeRef::WithClause(_), _) => {
                if let Some(scope) = self.ctes.last_mut() {
                    scope.visible = scope.names.len();
                }
            }
            _ => {}
        }
        self.lineage.leave(self.depth);
        if self.frames.last().is_some_and(|f| f.depth == self.depth) {
            if let Some(frame) = self.frames.pop() {
                if frame.has_ctes {
                    self.ctes.pop();
                }
                if frame.dry {
                    self.dry = self.dry.saturating_sub(1);
                }
            }
        }
    }
}

impl<'a> Collector<'a> {
    fn enter_statement(&mut self, node: NodeRef<'a>, kind: Kind, class: Class) {
        let runs = self.dry == 0;
        match self.root {
            None => {
                self.root = Some((kind, class));
                self.class = Some(class);
            }
            Some((root_kind, _)) if runs => {
                self.class = Some(self.class.unwrap_or(class).max(class));
                if kind != root_kind && !self.inner_kinds.contains(&kind) {
                    self.inner_kinds.push(kind);
                }
            }
            Some(_) => {}
        }

        let mut frame = Frame {
            node,
            depth: self.depth,
            class,
            target: None,
            has_ctes: false,
            dry: false,
        };
        let mut with = None;
        match node {
            NodeRef::SelectStmt(s) => {
                with = s.with_clause.as_ref();
                if runs && s.into_clause.is_some() {
                    self.properties.select_into = true;
                    self.class = self.class.map(|c| c.max(Class::Write));
                }
            }
            NodeRef::InsertStmt(s) => {
                with = s.with_clause.as_ref();
                frame.target = s.relation.as_ref().map(qualified);
            }
            NodeRef::UpdateStmt(s) => {
                with = s.with_clause.as_ref();
                frame.target = s.relation.as_ref().map(qualified);
                if runs {
                    self.saw_where(filters_rows(s.where_clause.as_deref()));
                }
            }
            NodeRef::DeleteStmt(s) => {
                with = s.with_clause.as_ref();
                frame.target = s.relation.as_ref().map(qualified);
                if runs {
                    self.saw_where(filters_rows(s.where_clause.as_deref()));
                }
            }
            NodeRef::MergeStmt(s) => {
                with = s.with_clause.as_ref();
                frame.target = s.relation.as_ref().map(qualified);
                if runs {
                    self.merge_where(s);
                }
            }
            NodeRef::CopyStmt(s) => {
                frame.target = s.relation.as_ref().map(qualified);
                self.properties.copy = Some(CopyInfo {
                    direction: if s.is_from {
                        CopyDirection::From
                    } else {
                        CopyDirection::To
                    },
                    program: s.is_program,
                    stdio: !s.is_program && s.filename.is_empty(),
                });
                self.properties.copy_options = Some(copy_options(s));
                for column in strings(&s.attlist) {
                    self.columns.push(RawColumn::OfTarget {
                        relation: frame.target.clone(),
                        column,
                    });
                }
            }
            NodeRef::ExplainStmt(s) => {
                if explains_analyze(s) {
                    self.properties.explain_analyze = true;
                } else {
                    frame.dry = true;
                    self.dry += 1;
                }
            }
            NodeRef::VariableSetStmt(s) => {
                let name = if s.name.is_empty() { "all" } else { &s.name };
                self.properties.parameter = Some(name.to_ascii_lowercase());
                let change = setting_change(s);
                self.setting(&change);
                self.properties.settings.push(change);
            }
            NodeRef::DiscardStmt(s) => {
                self.properties.discards_all = s.target == pb::DiscardMode::DiscardAll as i32;
            }
            NodeRef::VariableShowStmt(s) => {
                self.properties.parameter = Some(s.name.to_ascii_lowercase());
            }
            NodeRef::PrepareStmt(s) => self.properties.prepared_name = Some(s.name.clone()),
            NodeRef::DeclareCursorStmt(s) => {
                self.properties.cursor = Some(s.portalname.clone());
                self.properties.hold = s.options & CURSOR_OPT_HOLD != 0;
            }
            NodeRef::FetchStmt(s) => self.properties.cursor = Some(s.portalname.clone()),
            NodeRef::ClosePortalStmt(s) => self.properties.cursor = Some(s.portalname.clone()),
            NodeRef::ExecuteStmt(s) => self.properties.prepared_name = Some(s.name.clone()),
            NodeRef::DeallocateStmt(s) if !s.name.is_empty() => {
                self.properties.prepared_name = Some(s.name.clone());
            }
            _ => {}
        }
        if let Some(with) = with {
            let names = with
                .ctes
                .iter()
                .filter_map(|n| match &n.node {
                    Some(N::CommonTableExpr(cte)) => Some(cte.ctename.as_str()),
                    _ => None,
                })
                .collect::<Vec<_>>();
            self.ctes.push(CteScope {
                visible: names.len(),
                names,
                recursive: with.recursive,
            });
            frame.has_ctes = true;
        }
        self.frames.push(frame);
    }

    /// A setting some statement changes: those that govern the server's own
    /// logging and auditing, or that only superusers may touch, make it
    /// administration.
    fn setting(&mut self, change: &SettingChange) {
        if change.name.as_deref().is_none_or(is_admin_setting) {
            self.class = self.class.map(|c| c.max(Class::Admin));
        }
    }

    /// A MERGE that updates or deletes changes every row its join matches:
    /// it has a WHERE when its join condition, or the condition of every
    /// WHEN clause that updates or deletes, can leave rows out.
    fn merge_where(&mut self, merge: &pb::MergeStmt) {
        use pb::CmdType;
        let clauses: Vec<&pb::MergeWhenClause> = merge
            .merge_when_clauses
            .iter()
            .filter_map(|n| match &n.node {
                Some(N::MergeWhenClause(c)) => Some(c.as_ref()),
                _ => None,
            })
            .filter(|c| {
                matches!(
                    CmdType::try_from(c.command_type),
                    Ok(CmdType::CmdUpdate | CmdType::CmdDelete)
                )
            })
            .collect();
        if clauses.is_empty() {
            return;
        }
        let joined = filters_rows(merge.join_condition.as_deref());
        let each = clauses.iter().all(|c| filters_rows(c.condition.as_deref()));
        self.saw_where(joined || each);
    }

    /// Every UPDATE and DELETE that runs must have a WHERE for the statement to count as having one.
    fn saw_where(&mut self, has_where: bool) {
        let all = self.properties.has_where.unwrap_or(true);
        self.properties.has_where = Some(all && has_where);
    }

    fn range_var(&mut self, visit: Visit<'a>, rv: &'a pb::RangeVar) {
        let is_target = matches!(
            (visit.parent, visit.field),
            (
                Some(
                    NodeRef::InsertStmt(_)
                        | NodeRef::UpdateStmt(_)
                        | NodeRef::DeleteStmt(_)
                        | NodeRef::MergeStmt(_)
                ),
                "relation"
            ) | (Some(NodeRef::IntoClause(_)), "rel")
        );
        // `FOR UPDATE OF x` names a FROM item already seen, not a new relation.
        if matches!(visit.parent, Some(NodeRef::LockingClause(_))) {
            return;
        }
        // DML targets are never CTEs: PostgreSQL looks them up as relations.
        if !is_target && rv.schemaname.is_empty() && self.cte_visible(&rv.relname) {
            let name = rv
                .alias
                .as_ref()
                .map_or(rv.relname.as_str(), |a| a.aliasname.as_str());
            self.alias(name, AliasTarget::NotRelation);
            self.other_sources += 1;
            self.lineage.item(name, None, false);
            return;
        }
        let access = if self.dry > 0 {
            Access::Read
        } else if is_target {
            Access::Write
        } else {
            self.access_in_frame()
        };
        let relation = Relation {
            schema: (!rv.schemaname.is_empty()).then(|| rv.schemaname.clone()),
            name: rv.relname.clone(),
            access,
        };
        if let Some(alias) = &rv.alias {
            self.alias(
                &alias.aliasname,
                AliasTarget::Relation(relation.qualified_name()),
            );
        }
        if !matches!(visit.parent, Some(NodeRef::IntoClause(_))) {
            let name = rv.alias.as_ref().map_or(&rv.relname, |a| &a.aliasname);
            let renamed = rv.alias.as_ref().is_some_and(|a| !a.colnames.is_empty());
            self.lineage
                .item(name, Some(relation.qualified_name()), renamed);
        }
        self.add_relation(relation);
    }

    /// How a relation named directly by the innermost statement is touched:
    /// queries read, COPY goes by direction, and anything that changes
    /// definitions, privileges or the server acts on the relation.
    fn access_in_frame(&self) -> Access {
        let Some(frame) = self.frames.last() else {
            return Access::Write;
        };
        match frame.node {
            NodeRef::SelectStmt(_)
            | NodeRef::InsertStmt(_)
            | NodeRef::UpdateStmt(_)
            | NodeRef::DeleteStmt(_)
            | NodeRef::MergeStmt(_) => Access::Read,
            NodeRef::CopyStmt(s) if s.is_from => Access::Write,
            NodeRef::CopyStmt(_) => Access::Read,
            _ if frame.class.severity() >= Class::Write.severity() => Access::Write,
            _ => Access::Read,
        }
    }

    fn add_relation(&mut self, relation: Relation) {
        if !self.relations.contains(&relation) {
            self.relations.push(relation);
        }
    }

    fn cte_visible(&self, name: &str) -> bool {
        self.ctes
            .iter()
            .any(|scope| scope.names[..scope.visible.min(scope.names.len())].contains(&name))
    }

    fn alias(&mut self, alias: &'a str, target: AliasTarget) {
        let entry = self.aliases.entry(alias).or_insert_with(|| target.clone());
        if *entry != target {
            *entry = AliasTarget::Ambiguous;
        }
    }

    fn other_source(&mut self, alias: Option<&'a pb::Alias>) {
        self.other_sources += 1;
        self.lineage
            .item(alias.map_or("", |a| &a.aliasname), None, false);
        if let Some(alias) = alias {
            self.alias(&alias.aliasname, AliasTarget::NotRelation);
        }
    }

    fn function(&mut self, call: &'a pb::FuncCall) {
        let name = strings(&call.funcname).collect::<Vec<_>>().join(".");
        if name == "set_config" || name == "pg_catalog.set_config" {
            let constant = |i: usize| call.args.get(i).and_then(constant_text);
            let parameter = |i: usize| call.args.get(i).is_some_and(is_parameter);
            if parameter(0) || parameter(1) {
                self.properties.bound_settings = true;
            }
            let change = SettingChange {
                name: constant(0).map(|n| n.to_ascii_lowercase()),
                value: constant(1).map_or(SettingValue::Unknown, SettingValue::Value),
            };
            self.setting(&change);
            // The function forms of SET ROLE and SET SESSION AUTHORIZATION.
            let switches = match change.name.as_deref() {
                Some("role") => Some(Kind::SetRole),
                Some("session_authorization") => Some(Kind::SetSessionAuthorization),
                _ => None,
            };
            if let Some(kind) = switches {
                if !self.inner_kinds.contains(&kind) {
                    self.inner_kinds.push(kind);
                }
            }
            self.properties.settings.push(change);
        }
        if !name.is_empty() {
            match crate::functions::class_of(&name, call.args.len()) {
                // What it does is part of what the statement does.
                Some(class) => self.class = self.class.map(|c| c.max(class)),
                // What a function outside the allowlist runs is not in the text.
                None => {
                    self.class = self.class.map(|c| c.max(Class::Unknown));
                    if !self.properties.opaque_functions.contains(&name) {
                        self.properties.opaque_functions.push(name.clone());
                    }
                }
            }
        }
        if !name.is_empty() && !self.functions.contains(&name) {
            self.functions.push(name);
        }
    }

    /// An operator, by the name it is called by (`OPERATOR(s.+)` counts as
    /// qualified).
    fn operator(&mut self, name: &'a [pb::Node]) {
        let name = strings(name).collect::<Vec<_>>().join(".");
        if !name.is_empty() && !self.properties.operators.contains(&name) {
            self.properties.operators.push(name);
        }
    }

    fn column_ref(&mut self, column: &'a pb::ColumnRef) {
        let mut parts = column
            .fields
            .iter()
            .filter_map(|f| match &f.node {
                Some(N::String(s)) => Some(s.sval.as_str()),
                Some(N::AStar(_)) => Some("*"),
                _ => None,
            })
            .collect::<Vec<_>>();
        if let Some(column) = parts.pop() {
            self.columns.push(RawColumn::Named {
                qualifier: parts,
                column,
            });
        }
    }

    /// Columns assigned by INSERT, UPDATE, ON CONFLICT DO UPDATE and MERGE
    /// belong to the statement's target.
    fn target_column(&mut self, visit: Visit<'a>, target: &'a pb::ResTarget) {
        let assigns = matches!(
            (visit.parent, visit.field),
            (Some(NodeRef::InsertStmt(_)), "cols")
                | (
                    Some(
                        NodeRef::UpdateStmt(_)
                            | NodeRef::OnConflictClause(_)
                            | NodeRef::MergeWhenClause(_)
                    ),
                    "target_list"
                )
        );
        if assigns && !target.name.is_empty() {
            let relation = self.frames.last().and_then(|f| f.target.clone());
            self.columns.push(RawColumn::OfTarget {
                relation,
                column: &target.name,
            });
        }
    }

    /// DROP names its objects as name lists, not RangeVars.
    fn dropped_relations(&mut self, drop: &'a pb::DropStmt) {
        let object = crate::classify::object(drop.remove_type);
        // For triggers, rules and policies the last name is the object itself, on the relation before it.
        let skip = match object {
            ObjectType::Table
            | ObjectType::View
            | ObjectType::MaterializedView
            | ObjectType::Index
            | ObjectType::Sequence
            | ObjectType::ForeignTable => 0,
            ObjectType::Trigger | ObjectType::Rule | ObjectType::Policy => 1,
            _ => return,
        };
        for item in &drop.objects {
            let Some(N::List(list)) = &item.node else {
                continue;
            };
            let names = strings(&list.items).collect::<Vec<_>>();
            let names = &names[..names.len().saturating_sub(skip)];
            if let [.., schema, name] = names {
                self.add_relation(Relation {
                    schema: Some((*schema).to_owned()),
                    name: (*name).to_owned(),
                    access: Access::Write,
                });
            } else if let [name] = names {
                self.add_relation(Relation {
                    schema: None,
                    name: (*name).to_owned(),
                    access: Access::Write,
                });
            }
        }
    }

    fn finish(mut self) -> Findings {
        let lineage = std::mem::take(&mut self.lineage).finish();
        let (kind, root_class) = self.root.unwrap_or((Kind::Other, Class::Unknown));
        let class = self.class.unwrap_or(root_class);
        let mut names = self
            .relations
            .iter()
            .map(Relation::qualified_name)
            .collect::<Vec<_>>();
        names.sort();
        names.dedup();
        // An unqualified column belongs to the only relation in the statement, if there is one.
        let only = match names.as_slice() {
            [name] if self.other_sources == 0 => Some(name.clone()),
            _ => None,
        };
        let mut columns: Vec<ColumnRef> = Vec::new();
        for raw in &self.columns {
            let column = match raw {
                RawColumn::Named { qualifier, column } => {
                    if let Some(relation) =
                        qualifier.is_empty().then(|| self.row_of(column)).flatten()
                    {
                        // `row_to_json(c)`: the name may be a whole row.
                        let row = ColumnRef {
                            relation,
                            column: "*".to_owned(),
                        };
                        if !columns.contains(&row) {
                            columns.push(row);
                        }
                    }
                    ColumnRef {
                        relation: self.resolve(qualifier, &only),
                        column: (*column).to_owned(),
                    }
                }
                RawColumn::OfTarget { relation, column } => ColumnRef {
                    relation: relation.clone(),
                    column: (*column).to_owned(),
                },
            };
            if !columns.contains(&column) {
                columns.push(column);
            }
        }
        let mut properties = self.properties;
        properties.positional_refs = lineage.positional_refs;
        Findings {
            kind,
            class,
            inner_kinds: self.inner_kinds,
            relations: self.relations,
            columns,
            functions: self.functions,
            properties,
            outputs: lineage.outputs,
            filters: lineage.filters,
            written_from: lineage.written_from,
            computed: lineage.computed,
        }
    }

    /// The relation a bare name stands for as a whole row (`Some(None)` when
    /// it names a subquery, function or CTE); `None` if it names no FROM item.
    fn row_of(&self, name: &str) -> Option<Option<String>> {
        match self.aliases.get(name) {
            Some(AliasTarget::Relation(relation)) => Some(Some(relation.clone())),
            Some(_) => Some(None),
            None => self
                .relations
                .iter()
                .find(|r| r.name == name)
                .map(|r| Some(r.qualified_name())),
        }
    }

    fn resolve(&self, qualifier: &[&str], only: &Option<String>) -> Option<String> {
        match qualifier {
            [] => only.clone(),
            [name] => match self.aliases.get(name) {
                Some(AliasTarget::Relation(relation)) => Some(relation.clone()),
                Some(_) => None,
                None => {
                    let mut matching = self.relations.iter().filter(|r| r.name == *name);
                    match (matching.next(), matching.next()) {
                        (Some(r), None) => Some(r.qualified_name()),
                        _ => Some((*name).to_owned()),
                    }
                }
            },
            [.., schema, name] => Some(format!("{schema}.{name}")),
        }
    }
}

fn qualified(rv: &pb::RangeVar) -> String {
    if rv.schemaname.is_empty() {
        rv.relname.clone()
    } else {
        format!("{}.{}", rv.schemaname, rv.relname)
    }
}

/// What a `SET` or `RESET` changes.
fn setting_change(stmt: &pb::VariableSetStmt) -> SettingChange {
    use pb::VariableSetKind as K;
    let value = match K::try_from(stmt.kind) {
        Ok(K::VarSetDefault | K::VarReset | K::VarResetAll) => SettingValue::Default,
        Ok(K::VarSetValue) => {
            let values = stmt
                .args
                .iter()
                .map(constant_text)
                .collect::<Option<Vec<_>>>();
            values.map_or(SettingValue::Unknown, |v| SettingValue::Value(v.join(",")))
        }
        _ => SettingValue::Unknown,
    };
    let name = if stmt.name.is_empty() {
        "all"
    } else {
        &stmt.name
    };
    SettingChange {
        name: Some(name.to_ascii_lowercase()),
        value,
    }
}

/// The text of a constant argument, as PostgreSQL would hand it to a
/// parameter: strings as they are, numbers as written.
fn constant_text(node: &pb::Node) -> Option<String> {
    use pb::a_const::Val;
    match &node.node {
        Some(N::AConst(c)) => match c.val.as_ref()? {
            Val::Sval(s) => Some(s.sval.clone()),
            Val::Ival(i) => Some(i.ival.to_string()),
            Val::Fval(f) => Some(f.fval.clone()),
            Val::Boolval(b) => Some(b.boolval.to_string()),
            Val::Bsval(_) => None,
        },
        _ => None,
    }
}

/// The `String` nodes of a name list.
fn strings(nodes: &[pb::Node]) -> impl Iterator<Item = &str> {
    nodes.iter().filter_map(|n| match &n.node {
        Some(N::String(s)) => Some(s.sval.as_str()),
        _ => None,
    })
}

/// A `COPY`'s format and options. The parser turns the legacy syntax
/// (`CSV HEADER`, `DELIMITER AS ';'`, `BINARY`) into the same option list.
fn copy_options(stmt: &pb::CopyStmt) -> CopyOptions {
    let mut options = CopyOptions {
        copy_columns: strings(&stmt.attlist).map(str::to_owned).collect(),
        ..CopyOptions::default()
    };
    for option in &stmt.options {
        let Some(N::DefElem(def)) = &option.node else {
            continue;
        };
        let arg = def.arg.as_deref().and_then(|n| n.node.as_ref());
        let text = match arg {
            Some(N::String(s)) => Some(s.sval.clone()),
            Some(N::Integer(i)) => Some(i.ival.to_string()),
            Some(N::Boolean(b)) => Some(b.boolval.to_string()),
            _ => None,
        };
        match def.defname.as_str() {
            "format" => {
                options.format = match text.as_deref().map(str::to_ascii_lowercase).as_deref() {
                    Some("csv") => CopyFormat::Csv,
                    Some("binary") => CopyFormat::Binary,
                    _ => CopyFormat::Text,
                }
            }
            "delimiter" => options.delimiter = text,
            "null" => options.null = text,
            "quote" => options.quote = text,
            "escape" => options.escape = text,
            // Present at all, whatever it names (a value Vigil cannot read
            // counts too).
            "encoding" => options.encoding = Some(text.unwrap_or_default()),
            "header" => {
                options.header = text.is_none_or(|t| {
                    !matches!(t.to_ascii_lowercase().as_str(), "false" | "off" | "0")
                });
            }
            _ => {}
        }
    }
    options
}

/// Whether an EXPLAIN runs its statement. PostgreSQL reads `ANALYZE` as false
/// only for `false`, `off` or `0`; anything else it accepts means true.
fn explains_analyze(stmt: &pb::ExplainStmt) -> bool {
    stmt.options.iter().any(|option| match &option.node {
        Some(N::DefElem(def)) if def.defname == "analyze" => {
            match def.arg.as_deref().and_then(|n| n.node.as_ref()) {
                Some(N::String(s)) => {
                    !(s.sval.eq_ignore_ascii_case("false") || s.sval.eq_ignore_ascii_case("off"))
                }
                Some(N::Integer(i)) => i.ival != 0,
                Some(N::Boolean(b)) => b.boolval,
                _ => true,
            }
        }
        _ => false,
    })
}
