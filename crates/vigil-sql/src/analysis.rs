//! What the analyzer found in one text: its statements, each with kind, class,
//! objects and properties, and the intent tags written in its comments.

use std::collections::BTreeMap;
use std::fmt;

use crate::{Class, Kind};

/// The analysis of one text as a client sent it (one simple-protocol Query or
/// one Parse).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Analysis {
    /// One per statement, in the order they would run. Empty for a text of
    /// only whitespace, comments and semicolons.
    pub statements: Vec<Statement>,
    /// sqlcommenter tags from comments anywhere in the text
    /// (`/* ticket='OPS-12' */`), values URL-decoded. Client-supplied: they
    /// state intent, they prove nothing.
    pub tags: BTreeMap<String, String>,
}

/// One statement and everything policy may ask about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// This statement's own text, without the separating semicolons.
    pub text: String,
    pub kind: Kind,
    /// The worst class of anything that runs with this statement: a `SELECT`
    /// whose CTE deletes is [`Class::Write`].
    pub class: Class,
    /// Kinds of the statements nested in this one that run with it (a `DELETE`
    /// in a CTE, the statement of a `PREPARE` or an `EXPLAIN ANALYZE`), other
    /// than its own kind, so a rule about deletes sees them too.
    pub inner_kinds: Vec<Kind>,
    /// Relations named, each once per access mode.
    pub relations: Vec<Relation>,
    /// Columns named, with the relation they belong to where that is known.
    pub columns: Vec<ColumnRef>,
    /// Functions called anywhere in the statement, as PostgreSQL resolved the
    /// names (unquoted ones folded to lower case) and schema-qualified when
    /// written so: `pg_read_file`, `pg_catalog.pg_read_file`.
    pub functions: Vec<String>,
    pub properties: Properties,
    /// Where each column of the rows the statement returns comes from, in
    /// order: a `SELECT`'s target list, a `RETURNING` list, the query of
    /// `COPY (query) TO`, `DECLARE … CURSOR`, `CREATE TABLE … AS` and
    /// `SELECT … INTO`, the columns of `COPY table TO`. `None` when the
    /// statement returns no rows (`EXPLAIN`, DML without `RETURNING`, DDL).
    pub outputs: Option<Vec<Output>>,
    /// Columns whose values decide which rows come out, in what order or
    /// grouping, anywhere in the statement (subqueries, CTEs and sublinks
    /// included): `WHERE`, `JOIN … ON`/`USING`, `GROUP BY`, `HAVING`, `ORDER
    /// BY`, `DISTINCT ON`, window definitions, aggregate `ORDER BY` and
    /// `FILTER`. A positional reference that cannot be resolved (a `*` before
    /// it) is the wildcard `ColumnRef { relation: None, column: "*" }`.
    pub filters: Vec<ColumnRef>,
    /// Columns read inside a computation that could fail, change the row
    /// count or leave a trace, anywhere in the statement: a cast to a
    /// non-text type, arithmetic, a function other than the few that never
    /// fail on text (`1/(ssn = '…')::int`, `generate_series(1, …)`,
    /// `set_config('x', ssn, …)`). Errors and row counts are answers too.
    pub computed: Vec<ColumnRef>,
    /// Columns read to compute values the statement writes into a relation:
    /// `INSERT … SELECT`/`VALUES`, `UPDATE … SET`, `ON CONFLICT DO UPDATE`,
    /// `MERGE` actions, `CREATE TABLE … AS`, `SELECT … INTO`, view queries.
    /// When a written value comes through a subquery, CTE or function, every
    /// column any nested query outputs is listed.
    pub written_from: Vec<ColumnRef>,
    /// The text with constants replaced by `$1`, `$2`, … (pg_query normalize).
    pub normalized: String,
    /// pg_query's fingerprint: the same for statements that differ only in
    /// constants, whitespace and comments.
    pub fingerprint: String,
}

/// One column of the rows a statement returns, and the columns it is
/// computed from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// The column name the client sees: the alias, or PostgreSQL's default
    /// name when it is simple (a column's or function's name); `None`
    /// otherwise.
    pub name: Option<String>,
    /// Every column its expression reads, anywhere inside it (function
    /// arguments, `CASE`, casts, sublinks, aggregates, window functions,
    /// JSON/XML constructors). A whole-row reference (`row_to_json(c)`, `c`,
    /// `c.*`) is `ColumnRef { relation: Some(rel), column: "*" }`.
    pub sources: Vec<ColumnRef>,
    /// False when some source cannot be pinned to a base relation from the
    /// text: a column of a subquery in `FROM`, of a CTE, of a set-returning
    /// function or `VALUES`, or through an unknown alias. Lineage must then
    /// fall back to the whole statement's columns.
    pub traced: bool,
    /// The entry is `*` or `x.*`: it expands to an unknown number of
    /// columns, so later positions cannot be aligned with the result's fields.
    pub star: bool,
}

/// A relation (table, view, sequence, index…) as the statement names it.
/// An unqualified name is resolved by the session's `search_path`, which the
/// analyzer cannot know; rules should treat it as possibly any schema.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Relation {
    /// The schema, when the statement wrote one.
    pub schema: Option<String>,
    /// The name as PostgreSQL resolved it: unquoted names folded to lower case,
    /// quoted names exact, Unicode escapes decoded.
    pub name: String,
    pub access: Access,
}

impl Relation {
    /// `schema.name`, or `name` when no schema was written.
    pub fn qualified_name(&self) -> String {
        match &self.schema {
            Some(schema) => format!("{schema}.{}", self.name),
            None => self.name.clone(),
        }
    }
}

impl fmt::Display for Relation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(schema) = &self.schema {
            write!(f, "{schema}.")?;
        }
        f.write_str(&self.name)
    }
}

/// How a statement touches a relation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Access {
    Read,
    /// The statement changes the relation's rows or its definition: DML
    /// targets, `SELECT INTO` targets, `COPY FROM` targets, and every
    /// relation a DDL, DCL or maintenance statement acts on.
    Write,
}

/// A column the statement names.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ColumnRef {
    /// The relation's qualified name (see [`Relation::qualified_name`]), with
    /// aliases resolved; `None` when it cannot be known from the text alone.
    pub relation: Option<String>,
    /// The column name, or `*`.
    pub column: String,
}

/// Facts about a statement that guardrails ask for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Properties {
    /// For statements that run an `UPDATE` or `DELETE` (also in a CTE, a
    /// `PREPARE` or an `EXPLAIN ANALYZE`): `Some(false)` if any of them has no
    /// `WHERE`. `None` when no `UPDATE` or `DELETE` runs.
    pub has_where: Option<bool>,
    /// A CTE inserts, updates, deletes or merges.
    pub data_modifying_cte: bool,
    /// `SELECT … INTO new_table`.
    pub select_into: bool,
    pub copy: Option<CopyInfo>,
    /// `EXPLAIN ANALYZE`, which runs the statement it explains.
    pub explain_analyze: bool,
    /// The parameter a `SET`, `RESET` or `SHOW` names, lower-cased as
    /// PostgreSQL matches them; `all` for `RESET ALL` and `SHOW ALL`.
    pub parameter: Option<String>,
    /// The prepared statement a `PREPARE`, `EXECUTE` or `DEALLOCATE` names.
    pub prepared_name: Option<String>,
    /// The cursor a `DECLARE`, `FETCH`, `MOVE` or `CLOSE` names (empty for
    /// `CLOSE ALL`).
    pub cursor: Option<String>,
    /// `DECLARE … WITH HOLD`: the cursor outlives its transaction.
    pub hold: bool,
    /// Functions called whose effect the analyzer cannot see: any function
    /// that is not one of PostgreSQL's built-ins (user-defined, from
    /// extensions), and the built-ins that run a query given as text
    /// (`query_to_xml`, `ts_stat` …). Calling one makes the statement
    /// [`Class::Unknown`].
    pub opaque_functions: Vec<String>,
    /// Operators used, by name as written (`=`, `||`, `pg_catalog.+`): an
    /// unqualified one resolves, like a function, among every schema on the
    /// search path, so a database's own overload may be the one that runs.
    pub operators: Vec<String>,
    /// A `set_config(…)` names its setting or value with a bind parameter
    /// (`$1`): what it changes is known only when bound.
    pub bound_settings: bool,
    /// Run-time parameters the statement changes, by `SET` / `RESET` or by a
    /// `set_config(…)` call anywhere in it.
    pub settings: Vec<SettingChange>,
    /// `DISCARD ALL`: it also resets the session's role and session
    /// authorization, and drops every prepared statement and cursor.
    pub discards_all: bool,
    /// `ORDER BY`, `GROUP BY` or `DISTINCT ON` names a target list entry by
    /// its position: lineage then depends on an integer constant, so texts
    /// of one shape cannot share the analysis.
    pub positional_refs: bool,
    /// The format and options of a `COPY`.
    pub copy_options: Option<CopyOptions>,
}

/// How a `COPY` encodes its data, from `WITH (…)` or the legacy syntax.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct CopyOptions {
    pub format: CopyFormat,
    pub delimiter: Option<String>,
    pub null: Option<String>,
    pub quote: Option<String>,
    pub escape: Option<String>,
    /// `HEADER` is on (`true`, `on`, `1` or `match`).
    pub header: bool,
    /// The column list of `COPY t (a, b)`; empty for all columns.
    pub copy_columns: Vec<String>,
    /// `ENCODING '…'`: the data is written in that encoding, not the
    /// session's client encoding.
    pub encoding: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum CopyFormat {
    #[default]
    Text,
    Csv,
    Binary,
}

/// One parameter change. Names are lower-cased as PostgreSQL matches them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SettingChange {
    /// `None` when the name is not a constant (`set_config(name_column, …)`).
    pub name: Option<String>,
    pub value: SettingValue,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SettingValue {
    /// `RESET`, `SET … TO DEFAULT`: back to the session's starting value.
    Default,
    /// The constant value as written (several joined by `,`).
    Value(String),
    /// Not a constant, or a form the analyzer does not read (`FROM CURRENT`).
    Unknown,
}

/// The shape of a `COPY`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CopyInfo {
    pub direction: CopyDirection,
    /// `TO PROGRAM` / `FROM PROGRAM`: runs a shell command on the server.
    pub program: bool,
    /// `STDIN` / `STDOUT`: the data goes through the client connection. When
    /// false, a server-side file or program is read or written.
    pub stdio: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CopyDirection {
    /// `COPY … FROM`: into the database.
    From,
    /// `COPY … TO`: out of the database.
    To,
}
