//! Column lineage for masking, gathered during the collector's walk: which
//! columns each output of a statement is computed from, which decide its
//! rows, and which feed values written into relations.
//!
//! Every query (`SELECT`, a set operation's arm, `VALUES`, a DML statement)
//! is a scope with its `FROM` items. A column is noted with its scope and the
//! sink its clause feeds (an output, a filter, a written value…) and resolved
//! once the walk is over, when every scope's items are known. A nested query
//! flows its outputs into the sink of the place it sits in: a sublink in a
//! target entry into that entry, an `INSERT`'s query into the written values.
//! Where a column cannot be pinned to a base relation the output is marked
//! untraced rather than guessed.

use pg_query::protobuf::{self as pb, node::Node as N};
use pg_query::NodeRef;

use crate::walk::Visit;

mod computes;
mod names;

use crate::{ColumnRef, Output};
use computes::computes;
use names::default_name;

/// Where the values of a column or a nested query's outputs go.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Sink {
    Ignore,
    /// Target entry `index` of query `scope`.
    Output {
        scope: usize,
        index: usize,
    },
    /// The arms of set operation `scope`: output for output.
    Arms(usize),
    Filter,
    Written,
    /// Into a subquery or CTE whose columns are not traced.
    Opaque,
    /// Into a function or table expression in `FROM`: decides rows, and its
    /// results are not traced.
    Feed,
    /// The rows the statement returns.
    Result,
    /// Read inside a computation that can fail, change the row count or
    /// leave a trace (see [`computes::computes`]).
    Computed,
}

/// What the children of a node are, beyond their sink.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Plain,
    /// A `VALUES` row: its children are outputs, in order.
    ValuesRow {
        scope: usize,
    },
    /// `ORDER BY` / `GROUP BY` / `DISTINCT ON` entries, where an integer
    /// constant is a position and a bare name may be an output's.
    ByOutput {
        scope: usize,
    },
}

struct Context {
    depth: usize,
    sink: Sink,
    role: Role,
    /// Children seen so far, for `VALUES` rows.
    next: usize,
    /// Arguments seen so far, for a function call.
    arguments: usize,
}

/// What a `FROM` item name stands for.
#[derive(Clone, PartialEq, Eq)]
enum Source {
    Relation(String),
    /// A relation whose columns an alias list renamed (`customers AS
    /// c(a, b)`): which column a name stands for depends on the relation's
    /// column order, which the text does not show, so any is the whole row.
    Renamed(String),
    /// Subquery, CTE, function, join alias: columns not traced.
    Opaque,
}

struct Item<'a> {
    name: &'a str,
    source: Source,
    /// Unqualified columns may come from it (false for join aliases,
    /// `excluded`, `old` and `new`, which only qualify).
    counts: bool,
}

struct Scope<'a> {
    /// The query whose columns this one may reference (sublinks, `LATERAL`).
    parent: Option<usize>,
    into: Sink,
    items: Vec<Item<'a>>,
    outputs: Vec<Acc>,
    /// It returns rows: every `SELECT`, DML only with `RETURNING`.
    returns: bool,
    /// `SELECT … INTO`.
    into_table: bool,
}

#[derive(Default)]
struct Acc {
    name: Option<String>,
    star: bool,
    sources: Vec<ColumnRef>,
    traced: bool,
}

enum Reference<'a> {
    Column(&'a pb::ColumnRef),
    /// A `JOIN … USING` column.
    Using(&'a str),
    /// The columns a NATURAL JOIN matches on: any column of either side.
    Natural,
}

struct Pending<'a> {
    scope: usize,
    sink: Sink,
    reference: Reference<'a>,
}

/// What [`Lineage::finish`] found.
pub(crate) struct Found {
    pub outputs: Option<Vec<Output>>,
    pub filters: Vec<ColumnRef>,
    pub computed: Vec<ColumnRef>,
    pub written_from: Vec<ColumnRef>,
    pub positional_refs: bool,
}

#[derive(Default)]
pub(crate) struct Lineage<'a> {
    /// Depths of the CASE conditions the walk is inside.
    conditions: Vec<usize>,
    /// Depths of the computations (see [`computes::computes`]) the walk is inside.
    computations: Vec<usize>,
    scopes: Vec<Scope<'a>>,
    /// Scopes the walk is inside, with the depth of their node.
    open: Vec<(usize, usize)>,
    contexts: Vec<Context>,
    pending: Vec<Pending<'a>>,
    /// `ORDER BY 2`: (scope, position).
    positions: Vec<(usize, i32)>,
    /// `ORDER BY name` where the name may be an output's: (scope, name).
    by_name: Vec<(usize, &'a str)>,
    /// `COPY table [(columns)] TO`.
    copy_table: Option<(String, Vec<&'a str>)>,
    /// `CREATE TABLE … AS`: the result is written.
    result_written: bool,
}

impl<'a> Lineage<'a> {
    /// Before the collector handles `visit`, at `depth`.
    pub(crate) fn enter(&mut self, visit: Visit<'a>, depth: usize) {
        let parent = self.contexts.last();
        let mut sink = parent.map_or(Sink::Ignore, |c| c.sink);
        let parent_role = parent.map_or(Role::Plain, |c| c.role);
        let scope = self.open.last().map(|&(_, s)| s);
        let mut role = Role::Plain;
        match (visit.parent, visit.field) {
            (None, _) => {
                if matches!(
                    visit.node,
                    NodeRef::SelectStmt(_)
                        | NodeRef::InsertStmt(_)
                        | NodeRef::UpdateStmt(_)
                        | NodeRef::DeleteStmt(_)
                        | NodeRef::MergeStmt(_)
                ) {
                    sink = Sink::Result;
                }
            }
            (Some(NodeRef::SelectStmt(_)), field) => {
                let scope = scope.unwrap_or(0);
                sink = match field {
                    "target_list" => self.new_output(scope, visit.node),
                    "values_lists" => {
                        role = Role::ValuesRow { scope };
                        sink
                    }
                    "group_clause" | "distinct_clause" | "sort_clause" => {
                        role = Role::ByOutput { scope };
                        Sink::Filter
                    }
                    "where_clause" | "having_clause" | "window_clause" | "limit_offset"
                    | "limit_count" => Sink::Filter,
                    "from_clause" => Sink::Feed,
                    "with_clause" => Sink::Opaque,
                    "larg" | "rarg" => Sink::Arms(scope),
                    _ => Sink::Ignore,
                };
            }
            (Some(NodeRef::List(_)), _) if matches!(parent_role, Role::ValuesRow { .. }) => {
                if let (Role::ValuesRow { scope }, Some(c)) =
                    (parent_role, self.contexts.last_mut())
                {
                    let index = c.next;
                    c.next += 1;
                    let outputs = &mut self.scopes[scope].outputs;
                    if outputs.len() <= index {
                        outputs.resize_with(index + 1, || Acc {
                            name: Some(format!("column{}", index + 1)),
                            traced: true,
                            ..Acc::default()
                        });
                    }
                    sink = Sink::Output { scope, index };
                }
            }
            (Some(NodeRef::ReturningClause(_)), "exprs") => {
                if let Some(scope) = scope {
                    sink = self.new_output(scope, visit.node);
                }
            }
            (Some(NodeRef::RangeSubselect(_)), "subquery")
            | (Some(NodeRef::CommonTableExpr(_)), "ctequery") => sink = Sink::Opaque,
            (Some(NodeRef::JoinExpr(_)), "quals")
            | (Some(NodeRef::UpdateStmt(_) | NodeRef::DeleteStmt(_)), "where_clause")
            | (Some(NodeRef::MergeStmt(_)), "join_condition")
            | (Some(NodeRef::MergeWhenClause(_)), "condition")
            | (Some(NodeRef::OnConflictClause(_)), "where_clause")
            | (
                Some(NodeRef::FuncCall(_) | NodeRef::JsonAggConstructor(_)),
                "agg_order" | "agg_filter" | "over",
            )
            | (Some(NodeRef::CopyStmt(_)), "where_clause") => sink = Sink::Filter,
            // A CASE's conditions pick which value comes out: they feed the
            // output and are a filter by another name too (`CASE WHEN ssn
            // LIKE '1%' THEN 'yes' END` says what the SSN starts with).
            (Some(NodeRef::CaseWhen(_)), "expr") | (Some(NodeRef::CaseExpr(_)), "arg") => {
                self.conditions.push(depth);
            }
            (Some(NodeRef::InsertStmt(_)), "select_stmt")
            | (Some(NodeRef::UpdateStmt(_)), "target_list")
            | (Some(NodeRef::MergeWhenClause(_)), "target_list" | "values")
            | (Some(NodeRef::OnConflictClause(_)), "target_list")
            | (Some(NodeRef::ViewStmt(_)), "query") => sink = Sink::Written,
            (
                Some(NodeRef::InsertStmt(_) | NodeRef::UpdateStmt(_) | NodeRef::DeleteStmt(_)),
                "with_clause",
            )
            | (Some(NodeRef::MergeStmt(_)), "with_clause") => sink = Sink::Opaque,
            (Some(NodeRef::UpdateStmt(_)), "from_clause")
            | (Some(NodeRef::DeleteStmt(_)), "using_clause")
            | (Some(NodeRef::MergeStmt(_)), "source_relation") => sink = Sink::Feed,
            (Some(NodeRef::OnConflictClause(_)), "infer")
            | (Some(NodeRef::InsertStmt(_)), "cols")
            | (Some(NodeRef::ExplainStmt(_) | NodeRef::PrepareStmt(_)), _) => {
                sink = Sink::Ignore;
            }
            (Some(NodeRef::SubLink(link)), "subselect")
                if link.sub_link_type == pb::SubLinkType::ExistsSublink as i32 =>
            {
                sink = Sink::Ignore;
            }
            (Some(NodeRef::CopyStmt(_) | NodeRef::DeclareCursorStmt(_)), "query") => {
                sink = Sink::Result;
            }
            (Some(NodeRef::CreateTableAsStmt(_)), "query") => {
                sink = Sink::Result;
                self.result_written = true;
            }
            (Some(NodeRef::CreateTableAsStmt(_)), _) => sink = Sink::Ignore,
            (
                Some(
                    NodeRef::GroupingSet(_)
                    | NodeRef::List(_)
                    | NodeRef::RowExpr(_)
                    | NodeRef::SortBy(_),
                ),
                _,
            ) if matches!(parent_role, Role::ByOutput { .. }) => role = parent_role,
            _ => {}
        }
        if let Role::ByOutput { scope } = role {
            match visit.node {
                NodeRef::AConst(c) => {
                    if let Some(pb::a_const::Val::Ival(i)) = &c.val {
                        self.positions.push((scope, i.ival));
                    }
                }
                NodeRef::ColumnRef(column) => {
                    if let [only] = column.fields.as_slice() {
                        if let Some(N::String(s)) = &only.node {
                            self.by_name.push((scope, &s.sval));
                        }
                    }
                }
                _ => {}
            }
        }
        // A function may pass what one argument reads through untouched
        // while it fails on what another holds (a NULL key of
        // json_build_object): each argument is judged where it stands.
        let unsafe_argument = match (visit.parent, visit.field, self.contexts.last_mut()) {
            (Some(NodeRef::FuncCall(call)), "args", Some(parent)) => {
                let index = parent.arguments;
                parent.arguments += 1;
                !computes::total_in(call, index)
            }
            _ => false,
        };
        if unsafe_argument || computes(visit.node) {
            self.computations.push(depth);
        }
        self.node(visit, sink, scope, depth);
        self.contexts.push(Context {
            depth,
            sink,
            role,
            next: 0,
            arguments: 0,
        });
    }

    /// After the collector left the node at `depth`.
    pub(crate) fn leave(&mut self, depth: usize) {
        if self.conditions.last() == Some(&depth) {
            self.conditions.pop();
        }
        if self.computations.last() == Some(&depth) {
            self.computations.pop();
        }
        if self.contexts.last().is_some_and(|c| c.depth == depth) {
            self.contexts.pop();
        }
        if self.open.last().is_some_and(|&(d, _)| d == depth) {
            self.open.pop();
        }
    }

    /// A `FROM` item (or DML target) of the innermost query, by the name
    /// columns qualify it with.
    pub(crate) fn item(&mut self, name: &'a str, relation: Option<String>, renamed: bool) {
        if let Some(&(_, scope)) = self.open.last() {
            let source = match (relation, renamed) {
                (Some(relation), false) => Source::Relation(relation),
                (Some(relation), true) => Source::Renamed(relation),
                (None, _) => Source::Opaque,
            };
            self.scopes[scope].items.push(Item {
                name,
                source,
                counts: true,
            });
        }
    }

    fn new_output(&mut self, scope: usize, node: NodeRef<'a>) -> Sink {
        let acc = match node {
            NodeRef::ResTarget(target) => {
                let value = target.val.as_deref().and_then(|n| n.node.as_ref());
                Acc {
                    name: if target.name.is_empty() {
                        value.and_then(|v| default_name(v).map(|(name, _)| name))
                    } else {
                        Some(target.name.clone())
                    },
                    star: matches!(value, Some(N::ColumnRef(c))
                        if matches!(c.fields.last().and_then(|f| f.node.as_ref()), Some(N::AStar(_)))),
                    sources: Vec::new(),
                    traced: true,
                }
            }
            _ => Acc {
                traced: true,
                ..Acc::default()
            },
        };
        let outputs = &mut self.scopes[scope].outputs;
        outputs.push(acc);
        Sink::Output {
            scope,
            index: outputs.len() - 1,
        }
    }

    /// Scopes, columns and items the node itself brings.
    fn node(&mut self, visit: Visit<'a>, sink: Sink, current: Option<usize>, depth: usize) {
        let sees_current = match (visit.parent, visit.field) {
            (Some(NodeRef::SubLink(_)), "subselect") => true,
            (Some(NodeRef::RangeSubselect(s)), "subquery") => s.lateral,
            _ => false,
        };
        let parent = if sees_current {
            current
        } else {
            current.and_then(|c| self.scopes[c].parent)
        };
        let (returns, target, excluded) = match visit.node {
            NodeRef::SelectStmt(_) => (true, None, false),
            NodeRef::InsertStmt(s) => (
                has_returning(&s.returning_clause),
                s.relation.as_ref(),
                s.on_conflict_clause.is_some(),
            ),
            NodeRef::UpdateStmt(s) => (
                has_returning(&s.returning_clause),
                s.relation.as_ref(),
                false,
            ),
            NodeRef::DeleteStmt(s) => (
                has_returning(&s.returning_clause),
                s.relation.as_ref(),
                false,
            ),
            NodeRef::MergeStmt(s) => (
                has_returning(&s.returning_clause),
                s.relation.as_ref(),
                false,
            ),
            NodeRef::ColumnRef(column) => {
                if let Some(scope) = current {
                    self.pending.push(Pending {
                        scope,
                        sink,
                        reference: Reference::Column(column),
                    });
                    if !self.conditions.is_empty() && sink != Sink::Filter {
                        self.pending.push(Pending {
                            scope,
                            sink: Sink::Filter,
                            reference: Reference::Column(column),
                        });
                    }
                    if !self.computations.is_empty() {
                        self.pending.push(Pending {
                            scope,
                            sink: Sink::Computed,
                            reference: Reference::Column(column),
                        });
                    }
                }
                return;
            }
            NodeRef::JoinExpr(join) => {
                if let Some(scope) = current {
                    if join.is_natural {
                        self.pending.push(Pending {
                            scope,
                            sink: Sink::Filter,
                            reference: Reference::Natural,
                        });
                    }
                    for name in join.using_clause.iter().filter_map(|n| match &n.node {
                        Some(N::String(s)) => Some(s.sval.as_str()),
                        _ => None,
                    }) {
                        self.pending.push(Pending {
                            scope,
                            sink: Sink::Filter,
                            reference: Reference::Using(name),
                        });
                    }
                    for alias in [&join.alias, &join.join_using_alias].into_iter().flatten() {
                        self.scopes[scope].items.push(Item {
                            name: &alias.aliasname,
                            source: Source::Opaque,
                            counts: false,
                        });
                    }
                }
                return;
            }
            NodeRef::CopyStmt(copy) => {
                if let (false, None, Some(rv)) = (copy.is_from, &copy.query, &copy.relation) {
                    let columns = copy
                        .attlist
                        .iter()
                        .filter_map(|n| match &n.node {
                            Some(N::String(s)) => Some(s.sval.as_str()),
                            _ => None,
                        })
                        .collect();
                    self.copy_table = Some((qualified(rv), columns));
                }
                return;
            }
            _ => return,
        };
        let index = self.scopes.len();
        let mut scope = Scope {
            parent,
            into: sink,
            items: Vec::new(),
            outputs: Vec::new(),
            returns,
            into_table: matches!(visit.node, NodeRef::SelectStmt(s) if s.into_clause.is_some()),
        };
        if let Some(target) = target {
            let relation = Source::Relation(qualified(target));
            for name in ["old", "new"]
                .into_iter()
                .chain(excluded.then_some("excluded"))
            {
                scope.items.push(Item {
                    name,
                    source: relation.clone(),
                    counts: false,
                });
            }
        }
        self.scopes.push(scope);
        self.open.push((depth, index));
    }

    /// Resolves every column noted and lets each query's outputs flow where
    /// it sits, innermost first.
    pub(crate) fn finish(mut self) -> Found {
        let mut filters = Vec::new();
        let mut computed = Vec::new();
        let mut written = Vec::new();
        let mut pool = Vec::new();
        let mut written_untraced = false;
        let mut resolved = Vec::new();
        for pending in &self.pending {
            resolved.clear();
            self.resolve(pending.scope, &pending.reference, &mut resolved);
            for (column, traced) in resolved.drain(..) {
                match pending.sink {
                    Sink::Output { scope, index } => {
                        let acc = &mut self.scopes[scope].outputs[index];
                        acc.traced &= traced;
                        push(&mut acc.sources, column);
                    }
                    Sink::Ignore => {}
                    Sink::Written => {
                        written_untraced |= !traced;
                        push(&mut written, column);
                    }
                    Sink::Opaque => push(&mut pool, column),
                    Sink::Feed => {
                        push(&mut pool, column.clone());
                        push(&mut filters, column);
                    }
                    Sink::Filter | Sink::Arms(_) | Sink::Result => push(&mut filters, column),
                    Sink::Computed => push(&mut computed, column),
                }
            }
        }
        let mut result = None;
        for index in (0..self.scopes.len()).rev() {
            let outputs = std::mem::take(&mut self.scopes[index].outputs);
            match self.scopes[index].into {
                Sink::Output { scope, index: at } => {
                    let acc = &mut self.scopes[scope].outputs[at];
                    for output in &outputs {
                        acc.traced &= output.traced;
                        for column in &output.sources {
                            push(&mut acc.sources, column.clone());
                        }
                    }
                }
                Sink::Arms(scope) => {
                    let arms = &mut self.scopes[scope].outputs;
                    if arms.len() < outputs.len() {
                        arms.resize_with(outputs.len(), || Acc {
                            traced: true,
                            ..Acc::default()
                        });
                    }
                    for (acc, output) in arms.iter_mut().zip(&outputs) {
                        // The left arm, walked first and so flowing last, names the columns.
                        acc.name.clone_from(&output.name);
                        acc.star |= output.star;
                        acc.traced &= output.traced;
                        for column in &output.sources {
                            push(&mut acc.sources, column.clone());
                        }
                    }
                }
                // The outermost query that returns the statement's rows.
                Sink::Result => result = Some(index),
                into => {
                    let sink = match into {
                        Sink::Filter => Some(&mut filters),
                        Sink::Written => Some(&mut written),
                        Sink::Opaque | Sink::Feed => Some(&mut pool),
                        _ => None,
                    };
                    if let Some(sink) = sink {
                        for output in &outputs {
                            if into == Sink::Written {
                                written_untraced |= !output.traced;
                            }
                            for column in &output.sources {
                                push(sink, column.clone());
                            }
                        }
                    }
                }
            }
            self.scopes[index].outputs = outputs;
        }
        for &(scope, position) in &self.positions {
            let outputs = &self.scopes[scope].outputs;
            let wanted = usize::try_from(position)
                .ok()
                .filter(|&p| p >= 1 && p <= outputs.len());
            match wanted {
                Some(p) if !outputs[..p].iter().any(|o| o.star) => {
                    for column in &outputs[p - 1].sources {
                        push(&mut filters, column.clone());
                    }
                }
                _ => push(
                    &mut filters,
                    ColumnRef {
                        relation: None,
                        column: "*".to_owned(),
                    },
                ),
            }
        }
        for &(scope, name) in &self.by_name {
            for output in &self.scopes[scope].outputs {
                if output.name.as_deref() == Some(name) {
                    for column in &output.sources {
                        push(&mut filters, column.clone());
                    }
                }
            }
        }
        let mut outputs = None;
        if let Some(index) = result {
            let scope = &self.scopes[index];
            if scope.into_table || self.result_written {
                for output in &scope.outputs {
                    written_untraced |= !output.traced;
                    for column in &output.sources {
                        push(&mut written, column.clone());
                    }
                }
            }
            if scope.returns {
                outputs = Some(scope.outputs.iter().map(finished).collect());
            }
        }
        if let Some((relation, columns)) = self.copy_table.take() {
            outputs = Some(copy_outputs(relation, &columns));
        }
        if written_untraced {
            for column in pool {
                push(&mut written, column);
            }
        }
        Found {
            outputs,
            filters,
            computed,
            written_from: written,
            positional_refs: !self.positions.is_empty(),
        }
    }

    /// The base columns `reference` in `scope` may read, each with whether
    /// it is traced.
    fn resolve(&self, scope: usize, reference: &Reference<'a>, out: &mut Vec<(ColumnRef, bool)>) {
        let column = match reference {
            Reference::Using(name) => return out.push(self.unqualified(scope, name)),
            Reference::Natural => {
                if let Some(found) = self.with_items(scope) {
                    for item in self.scopes[found].items.iter().filter(|i| i.counts) {
                        out.push(whole_row(&item.source));
                    }
                }
                return;
            }
            Reference::Column(column) => column,
        };
        let mut parts: [&str; 4] = [""; 4];
        let mut n = 0;
        for field in &column.fields {
            let part = match &field.node {
                Some(N::String(s)) => s.sval.as_str(),
                Some(N::AStar(_)) => "*",
                _ => return,
            };
            if n == parts.len() {
                return;
            }
            parts[n] = part;
            n += 1;
        }
        match &parts[..n] {
            ["*"] => {
                let Some(found) = self.with_items(scope) else {
                    return;
                };
                for item in self.scopes[found].items.iter().filter(|i| i.counts) {
                    out.push(whole_row(&item.source));
                }
            }
            [name] => {
                out.push(self.unqualified(scope, name));
                // A bare name may also be a whole row: `row_to_json(c)`.
                if let Some(item) = self.find(scope, name) {
                    out.push(whole_row(&item.source));
                }
            }
            [qualifier, name] => out.push(match self.find(scope, qualifier) {
                Some(Item {
                    source: Source::Relation(relation),
                    ..
                }) => (column_of(Some(relation.clone()), name), true),
                Some(Item {
                    source: renamed @ Source::Renamed(_),
                    ..
                }) => whole_row(renamed),
                _ => (column_of(None, name), false),
            }),
            [first, second, name] => match self.find(scope, first) {
                // `alias.composite_column.field`
                Some(item) => out.push(match &item.source {
                    Source::Relation(relation) => (column_of(Some(relation.clone()), second), true),
                    renamed @ Source::Renamed(_) => whole_row(renamed),
                    Source::Opaque => (column_of(None, second), false),
                }),
                None => out.push((column_of(Some(format!("{first}.{second}")), name), true)),
            },
            [_, schema, table, name] => {
                out.push((column_of(Some(format!("{schema}.{table}")), name), true));
            }
            _ => {}
        }
    }

    /// An unqualified column: the only relation of the nearest query with
    /// `FROM` items, when no enclosing query has items it could belong to.
    fn unqualified(&self, scope: usize, name: &str) -> (ColumnRef, bool) {
        let Some(found) = self.with_items(scope) else {
            return (column_of(None, name), true);
        };
        let mut counted = self.scopes[found].items.iter().filter(|i| i.counts);
        let only = match (counted.next(), counted.next()) {
            (Some(item), None) => Some(&item.source),
            _ => None,
        };
        let outer = self.scopes[found]
            .parent
            .and_then(|p| self.with_items(p))
            .is_some();
        match only {
            Some(Source::Relation(relation)) if !outer => {
                (column_of(Some(relation.clone()), name), true)
            }
            Some(renamed @ Source::Renamed(_)) if !outer => whole_row(renamed),
            _ => {
                let opaque = self.chain(found).any(|s| {
                    s.items
                        .iter()
                        .any(|i| i.counts && i.source == Source::Opaque)
                });
                (column_of(None, name), !opaque)
            }
        }
    }

    /// The scope and its ancestors, innermost first.
    fn chain(&self, scope: usize) -> impl Iterator<Item = &Scope<'a>> {
        std::iter::successors(Some(&self.scopes[scope]), |s| {
            s.parent.map(|p| &self.scopes[p])
        })
    }

    /// The nearest scope, from `scope` outwards, with items unqualified
    /// columns may come from.
    fn with_items(&self, scope: usize) -> Option<usize> {
        let mut at = Some(scope);
        while let Some(index) = at {
            let s = &self.scopes[index];
            if s.items.iter().any(|i| i.counts) {
                return Some(index);
            }
            at = s.parent;
        }
        None
    }

    /// The item `name` stands for, in `scope` or around it; later items
    /// shadow earlier ones (a user's alias `new` over the built-in one).
    fn find(&self, scope: usize, name: &str) -> Option<&Item<'a>> {
        self.chain(scope)
            .find_map(|s| s.items.iter().rev().find(|i| i.name == name))
    }
}

fn has_returning(clause: &Option<pb::ReturningClause>) -> bool {
    clause.as_ref().is_some_and(|c| !c.exprs.is_empty())
}

fn qualified(rv: &pb::RangeVar) -> String {
    if rv.schemaname.is_empty() {
        rv.relname.clone()
    } else {
        format!("{}.{}", rv.schemaname, rv.relname)
    }
}

fn column_of(relation: Option<String>, column: &str) -> ColumnRef {
    ColumnRef {
        relation,
        column: column.to_owned(),
    }
}

fn whole_row(source: &Source) -> (ColumnRef, bool) {
    match source {
        Source::Relation(relation) | Source::Renamed(relation) => {
            (column_of(Some(relation.clone()), "*"), true)
        }
        Source::Opaque => (column_of(None, "*"), false),
    }
}

fn push(columns: &mut Vec<ColumnRef>, column: ColumnRef) {
    if !columns.contains(&column) {
        columns.push(column);
    }
}

fn finished(acc: &Acc) -> Output {
    Output {
        name: acc.name.clone(),
        sources: acc.sources.clone(),
        traced: acc.traced,
        star: acc.star,
    }
}

/// `COPY table TO`: each listed column, or the whole row.
fn copy_outputs(relation: String, columns: &[&str]) -> Vec<Output> {
    if columns.is_empty() {
        return vec![Output {
            name: None,
            sources: vec![column_of(Some(relation), "*")],
            traced: true,
            star: true,
        }];
    }
    columns
        .iter()
        .map(|name| Output {
            name: Some((*name).to_owned()),
            sources: vec![column_of(Some(relation.clone()), name)],
            traced: true,
            star: false,
        })
        .collect()
}
