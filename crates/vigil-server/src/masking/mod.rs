//! Dynamic data masking in the session: which columns an identity sees
//! masked, where each result column really comes from, and which statements
//! would leak a masked value by other means.
//!
//! A result column's source is known three ways, best first: RowDescription's
//! table OID and attribute number, looked up in the upstream [`catalog`]; the
//! analyzer's lineage of the statement's output expressions; and, when
//! neither pins it down, the statement as a whole: a column without a known
//! source in a statement that reads a masked column anywhere is masked. What
//! Vigil cannot see into (functions of the database's own, relations created
//! since the catalog was read) is masked or refused, as policy says; and the
//! content detectors look at every value whose source is unknown.

pub(crate) mod catalog;
mod messages;
mod results;

use std::collections::HashMap;
use std::sync::Arc;

use vigil_config::{ColumnName, Config, StrategyName, UnknownLineage};
use vigil_mask::{Detectors, MaskKey, Strategy};
use vigil_policy::Subject;
use vigil_sql::{ColumnRef, Statement};

pub(crate) use catalog::{Catalog, Catalogs};
pub(crate) use messages::parse_bind;
pub(crate) use results::{Handling, Masker, Prepared, Source, Verdict};

use catalog::FIRST_NORMAL_OID;

/// Relations whose rows hold other columns' values: column statistics.
const STATISTICS: &[&str] = &[
    "pg_stats",
    "pg_statistic",
    "pg_stats_ext",
    "pg_stats_ext_exprs",
    "pg_statistic_ext_data",
];

/// What the configuration's `[masking]` section builds once per load.
pub(crate) struct MaskSetup {
    pub(crate) key: Arc<MaskKey>,
    pub(crate) detectors: Arc<Detectors>,
    pub(crate) unknown: UnknownLineage,
    pub(crate) inference_guard: bool,
}

impl MaskSetup {
    pub(crate) fn build(config: &Config) -> Result<MaskSetup, String> {
        let masking = &config.masking;
        let key = match &masking.key {
            Some(key) => MaskKey::new(key.expose().as_bytes()).map_err(|e| e.to_string())?,
            // Only redaction-like strategies are configured (validation
            // sees to it): any key will do, and none is kept.
            None => {
                let mut random = [0u8; 32];
                rand::fill(&mut random);
                MaskKey::new(&random).map_err(|e| e.to_string())?
            }
        };
        let mut specs = Vec::new();
        for detector in &masking.detectors {
            let strategy = strategy(detector.strategy, detector.keep);
            // Validated: a built-in kind, or a regex with a name and pattern.
            let pattern = match detector.builtin {
                Some(kind) => vigil_mask::DetectorPattern::Builtin(kind),
                None => vigil_mask::DetectorPattern::Regex {
                    name: detector.name.clone().unwrap_or_default(),
                    pattern: detector.pattern.clone().unwrap_or_default(),
                },
            };
            specs.push(vigil_mask::DetectorSpec { pattern, strategy });
        }
        Ok(MaskSetup {
            key: Arc::new(key),
            detectors: Arc::new(Detectors::new(specs).map_err(|e| e.to_string())?),
            unknown: masking.unknown_lineage,
            inference_guard: masking.inference_guard,
        })
    }
}

/// The vigil-mask strategy for a configured one.
pub(crate) fn strategy(name: StrategyName, keep: Option<u8>) -> Strategy {
    match name {
        StrategyName::Redact => Strategy::Redact,
        StrategyName::KeepLast => Strategy::KeepLast(keep.unwrap_or(4)),
        StrategyName::EmailDomain => Strategy::EmailDomain,
        StrategyName::Hash => Strategy::Hash,
        StrategyName::Null => Strategy::Null,
        StrategyName::Preserve => Strategy::Preserve,
    }
}

/// The columns policy rules mask for `subject` on `database`.
fn rule_masks<'a>(config: &'a Config, subject: &Subject<'_>, database: &str) -> Vec<&'a str> {
    let Some(db) = config.database(database) else {
        return Vec::new();
    };
    let target = vigil_policy::Target {
        name: &db.name,
        labels: &db.labels,
        default: db.default_action,
    };
    config.compiled_policy.masks_for(subject, &target)
}

/// One column an identity sees masked, by name.
#[derive(Debug, Clone)]
struct MaskRule {
    name: ColumnName,
    strategy: Strategy,
    /// A view column computed from masked columns, not one of them: its
    /// NULLs are concealed too.
    computed: bool,
}

/// What one session masks: the columns its identity does not see in clear,
/// by name and by source OID, against one catalog.
pub(crate) struct SessionMasks {
    rules: Vec<MaskRule>,
    /// Table and view columns by `(table OID, attnum)`.
    by_source: HashMap<(u32, i16), Strategy>,
    /// View columns computed from masked ones, whose NULLs are masked too.
    concealed: std::collections::HashSet<(u32, i16)>,
    pub(crate) catalog: Arc<Catalog>,
    pub(crate) catalog_version: u64,
    pub(crate) setup: Arc<MaskSetup>,
    /// Content detectors run on columns of unknown source.
    pub(crate) scan: bool,
}

impl SessionMasks {
    /// The masks of `subject` on `database`; `None` when it sees everything
    /// in clear.
    pub(crate) fn new(
        config: &Config,
        setup: Arc<MaskSetup>,
        subject: &Subject<'_>,
        database: &str,
        catalog: Arc<Catalog>,
        catalog_version: u64,
        analyzer: &vigil_sql::Analyzer,
    ) -> Option<SessionMasks> {
        let masking = &config.masking;
        let mut rules: Vec<MaskRule> = masking
            .columns_on(database)
            .filter(|c| {
                !c.exempt
                    .as_ref()
                    .unwrap_or(&masking.exempt)
                    .includes(subject)
            })
            .filter_map(|c| {
                Some(MaskRule {
                    name: c.name.clone()?,
                    strategy: strategy(c.strategy, c.keep),
                    computed: false,
                })
            })
            .collect();
        // Rules that mask for this session: with the column's configured
        // strategy if it has one, else redacted.
        for column in rule_masks(config, subject, database) {
            let Some(name) = ColumnName::parse(column) else {
                continue;
            };
            if rules.iter().any(|r| r.name == name) {
                continue;
            }
            let configured = masking
                .columns_on(database)
                .find(|c| c.name.as_ref() == Some(&name));
            let strategy = configured.map_or(Strategy::Redact, |c| strategy(c.strategy, c.keep));
            rules.push(MaskRule {
                name,
                strategy,
                computed: false,
            });
        }
        let scan = !masking.detectors.is_empty() && !masking.exempt.includes(subject);
        if rules.is_empty() && !scan {
            return None;
        }
        let mut masks = SessionMasks {
            rules,
            by_source: HashMap::new(),
            concealed: Default::default(),
            catalog,
            catalog_version,
            setup,
            scan,
        };
        masks.derive_views(analyzer);
        masks.index_sources();
        Some(masks)
    }

    /// Whether `subject` sees anything masked on `database`: cheap, no
    /// catalog needed.
    pub(crate) fn applies(config: &Config, subject: &Subject<'_>, database: &str) -> bool {
        let masking = &config.masking;
        let scan = !masking.detectors.is_empty() && !masking.exempt.includes(subject);
        scan || masking.columns_on(database).any(|c| {
            !c.exempt
                .as_ref()
                .unwrap_or(&masking.exempt)
                .includes(subject)
        }) || !rule_masks(config, subject, database).is_empty()
    }

    /// Whether anything at all is masked for this session (besides content
    /// detection).
    pub(crate) fn masks_columns(&self) -> bool {
        !self.rules.is_empty()
    }

    /// View columns computed from masked columns are masked too, as if
    /// configured: a view over a view over `customers.ssn` included.
    fn derive_views(&mut self, analyzer: &vigil_sql::Analyzer) {
        if self.rules.is_empty() {
            return;
        }
        let catalog = Arc::clone(&self.catalog);
        let mut views: Vec<&catalog::RelationInfo> =
            catalog.relations.values().filter(|r| r.is_view()).collect();
        views.sort_by(|a, b| (&a.schema, &a.name).cmp(&(&b.schema, &b.name)));
        // Each round can only add; views nest a few levels deep at most.
        for _ in 0..8 {
            let mut added = false;
            for view in &views {
                let Some(definition) = &view.definition else {
                    continue;
                };
                // A view over column statistics holds other columns' values.
                if STATISTICS.iter().any(|s| definition.contains(s)) {
                    for (_, column, _) in &view.columns {
                        let name = ColumnName {
                            schema: view.schema.clone(),
                            table: view.name.clone(),
                            column: column.clone(),
                        };
                        if !self.rules.iter().any(|r| r.name == name) {
                            self.rules.push(MaskRule {
                                name,
                                strategy: Strategy::Redact,
                                computed: true,
                            });
                            added = true;
                        }
                    }
                    continue;
                }
                // Cheap first look: a view that names no masked column (or
                // masked view) cannot compute from one.
                if !self.rules.iter().any(|r| {
                    definition.contains(&*r.name.column) || definition.contains(&*r.name.table)
                }) {
                    continue;
                }
                let Ok(analysis) = analyzer.analyze(definition) else {
                    continue;
                };
                let Some(statement) = analysis.statements.first() else {
                    continue;
                };
                let verdict = self.statement(statement);
                for (i, (_, column, _)) in view.columns.iter().enumerate() {
                    // A view's plain column (`c.email`) is that column, and
                    // masked as it is; anything computed is masked as such.
                    let plain = statement
                        .outputs
                        .as_ref()
                        .filter(|o| o.len() == view.columns.len())
                        .and_then(|o| match o[i].sources.as_slice() {
                            [source]
                                if o[i].traced
                                    && !o[i].star
                                    && o[i].name.as_deref() == Some(source.column.as_str()) =>
                            {
                                self.hit(source, &statement.relations).map(|r| r.strategy)
                            }
                            _ => None,
                        });
                    let (strategy, computed) =
                        match (plain, verdict.untraced(i, view.columns.len(), false)) {
                            (Some(strategy), _) => (strategy, false),
                            (None, Some(Verdict::Mask(strategy))) => (strategy, true),
                            _ => continue,
                        };
                    let name = ColumnName {
                        schema: view.schema.clone(),
                        table: view.name.clone(),
                        column: column.clone(),
                    };
                    if !self.rules.iter().any(|r| r.name == name) {
                        self.rules.push(MaskRule {
                            name,
                            strategy,
                            computed,
                        });
                        added = true;
                    }
                }
            }
            if !added {
                break;
            }
        }
    }

    fn index_sources(&mut self) {
        for rule in &self.rules {
            let catalog = Arc::clone(&self.catalog);
            for (oid, relation) in
                catalog.named(&format!("{}.{}", rule.name.schema, rule.name.table))
            {
                if let Some((attnum, _, _)) =
                    relation.columns.iter().find(|c| c.1 == rule.name.column)
                {
                    self.by_source
                        .entry((oid, *attnum))
                        .or_insert(rule.strategy);
                    if rule.computed {
                        self.concealed.insert((oid, *attnum));
                    }
                }
            }
        }
    }

    /// The strategy for values of `(table OID, attnum)`: `Ok(None)` for a
    /// column seen in clear, `Err(())` when the catalog does not know the OID.
    pub(crate) fn source(&self, table: u32, attnum: i16) -> Result<Option<Strategy>, ()> {
        if table == 0 {
            return Err(());
        }
        if table < FIRST_NORMAL_OID {
            return Ok(None);
        }
        if !self.catalog.relations.contains_key(&table) {
            return Err(());
        }
        Ok(self.by_source.get(&(table, attnum)).copied())
    }

    /// Whether NULLs of `(table OID, attnum)` are masked too: a view column
    /// computed from masked columns.
    pub(crate) fn conceals(&self, table: u32, attnum: i16) -> bool {
        self.concealed.contains(&(table, attnum))
    }

    /// The rule a column reference hits, if any. `relations` are the
    /// statement's, for references whose relation the text does not say.
    fn hit(&self, column: &ColumnRef, relations: &[vigil_sql::Relation]) -> Option<&MaskRule> {
        self.rules.iter().find(|rule| {
            let column_matches = column.column == "*" || column.column == rule.name.column;
            column_matches
                && match &column.relation {
                    Some(written) => names_table(written, &rule.name),
                    None => relations
                        .iter()
                        .any(|r| names_table(&r.qualified_name(), &rule.name)),
                }
        })
    }

    /// Whether `column` is a column of one of the statement's relations, as
    /// the catalog knows them (not of a subquery, CTE or function).
    fn known_column(&self, column: &ColumnRef, relations: &[vigil_sql::Relation]) -> bool {
        if column.column == "*" {
            return column.relation.is_some();
        }
        let has = |written: &str| {
            self.catalog
                .named(written)
                .iter()
                .any(|(_, r)| r.columns.iter().any(|c| c.1 == column.column))
        };
        match &column.relation {
            Some(written) => has(written),
            None => relations.iter().any(|r| has(&r.qualified_name())),
        }
    }

    /// Whether a table named `schema.table` has a masked column.
    pub(crate) fn table_masked(&self, schema: Option<&str>, table: &str) -> bool {
        self.rules
            .iter()
            .any(|r| r.name.table == table && schema.is_none_or(|s| s == r.name.schema))
    }

    /// Whether a column is masked, by name (for error messages).
    pub(crate) fn column_masked(
        &self,
        schema: Option<&str>,
        table: Option<&str>,
        column: &str,
    ) -> bool {
        self.rules.iter().any(|r| {
            (column == "*" || r.name.column == column)
                && table.is_none_or(|t| t == r.name.table)
                && schema.is_none_or(|s| s == r.name.schema)
        })
    }

    /// What masking makes of one statement.
    pub(crate) fn statement(&self, statement: &Statement) -> StatementMasks {
        let relations = &statement.relations;
        let mut taint = None;
        let mut masked = Vec::new();
        let sources = statement
            .columns
            .iter()
            .chain(statement.outputs.iter().flatten().flat_map(|o| &o.sources));
        for column in sources {
            if let Some(rule) = self.hit(column, relations) {
                taint.get_or_insert(strength(column, rule));
                let name = rule.name.to_string();
                if !masked.contains(&name) {
                    masked.push(name);
                }
            }
        }
        let outputs = statement.outputs.as_ref().and_then(|outputs| {
            outputs.iter().all(|o| o.traced && !o.star).then(|| {
                outputs
                    .iter()
                    .map(|o| {
                        o.sources
                            .iter()
                            .find_map(|s| self.hit(s, relations).map(|r| strength(s, r)))
                    })
                    .collect::<Vec<_>>()
            })
        });
        let unknown_relation = statement.relations.iter().any(|r| {
            let system = r
                .schema
                .as_deref()
                .is_some_and(|s| s == "pg_catalog" || s == "information_schema")
                || (r.schema.is_none() && r.name.starts_with("pg_"));
            !system && self.catalog.named(&r.qualified_name()).is_empty()
        });
        let unknown = !statement.properties.opaque_functions.is_empty() || unknown_relation;
        StatementMasks {
            outputs,
            taint,
            unknown,
            masked,
        }
    }

    /// Why masking refuses `statement` for this session, if it does: it
    /// would reveal masked values by inference or copy them elsewhere, or
    /// its results' sources cannot be known and policy says refuse.
    pub(crate) fn refusal(
        &self,
        statement: &Statement,
        masks: &StatementMasks,
    ) -> Option<(&'static str, String)> {
        if !self.masks_columns() {
            return None;
        }
        let relations = &statement.relations;
        let reads_statistics = statement.relations.iter().any(|r| {
            STATISTICS.contains(&r.name.as_str())
                && r.schema.as_deref().is_none_or(|s| s == "pg_catalog")
        });
        if reads_statistics {
            return Some((
                "vigil.masking.statistics",
                "column statistics hold values of masked columns".into(),
            ));
        }
        if matches!(statement.kind, vigil_sql::Kind::Do | vigil_sql::Kind::Call) {
            return Some((
                "vigil.masking.opaque",
                "Vigil cannot see what this code reads or where it writes, so masked values could leave through it".into(),
            ));
        }
        let copies_masked =
            masks.taint.is_some() || masks.outputs.iter().flatten().any(Option::is_some);
        // The COPY reader splits fields by the session's client encoding; in
        // another one a quote or delimiter byte can hide inside a character
        // (SJIS, BIG5), and the fields split differently from the server's.
        let encoded = statement
            .properties
            .copy_options
            .as_ref()
            .and_then(|o| o.encoding.as_deref());
        if let (Some(encoding), Some(copy)) = (encoded, &statement.properties.copy) {
            if copy.direction == vigil_sql::CopyDirection::To
                && (copies_masked || masks.unknown || statement.outputs.is_none())
            {
                return Some((
                    "vigil.masking.copy",
                    format!(
                        "COPY … ENCODING '{encoding}' writes data in an encoding Vigil does not read it in, so masked values could pass unmasked"
                    ),
                ));
            }
        }
        if let (Some(copy), true) = (&statement.properties.copy, copies_masked) {
            if copy.direction == vigil_sql::CopyDirection::To && !copy.stdio {
                return Some((
                    "vigil.masking.copy",
                    format!(
                        "{} is masked for you; COPY to a server file or program would write it in clear",
                        masks.masked.first().map_or("a column", String::as_str)
                    ),
                ));
            }
        }
        if masks.unknown
            && self.setup.unknown == UnknownLineage::Refuse
            && statement.outputs.is_some()
        {
            return Some((
                "vigil.masking.unknown-lineage",
                "Vigil cannot tell where this statement's results come from, and masking policy refuses such statements".into(),
            ));
        }
        if self.setup.inference_guard {
            // A filter on a column of a subquery, CTE or function may be a
            // masked column under another name: with a masked column read
            // anywhere in the statement, it is treated as one.
            if let (Some(_), Some(column)) = (
                masks.taint,
                statement
                    .filters
                    .iter()
                    .find(|c| !self.known_column(c, relations)),
            ) {
                return Some((
                    "vigil.masking.inference",
                    format!(
                        "{} is masked for you, and this statement filters, joins, orders or groups on {}, which Vigil cannot tell apart from it",
                        masks.masked.first().map_or("a column it reads", String::as_str),
                        column.column
                    ),
                ));
            }
            // Computing with a masked value where an error, a row count or a
            // side effect could answer for it.
            let computed = statement
                .computed
                .iter()
                .find_map(|c| self.hit(c, relations).map(|r| r.name.to_string()))
                .or_else(|| {
                    masks.taint?;
                    statement
                        .computed
                        .iter()
                        .find(|c| !self.known_column(c, relations))
                        .map(|_| masks.masked.first().cloned().unwrap_or_default())
                });
            if let Some(column) = computed {
                return Some((
                    "vigil.masking.inference",
                    format!(
                        "{column} is masked for you; this statement computes with it in a way whose errors, row count or side effects could reveal it (casts to other types, arithmetic and most functions are refused; text functions like upper, substr and concat are fine)"
                    ),
                ));
            }
            let wildcard = |c: &&ColumnRef| c.relation.is_none() && c.column == "*";
            if let Some(rule) = statement
                .filters
                .iter()
                .find_map(|c| self.hit(c, relations))
                .or_else(|| {
                    statement.filters.iter().find(wildcard).and_then(|_| {
                        relations.iter().find_map(|r| {
                            self.rules
                                .iter()
                                .find(|rule| names_table(&r.qualified_name(), &rule.name))
                        })
                    })
                })
            {
                return Some((
                    "vigil.masking.inference",
                    format!(
                        "{} is masked for you; filtering, joining, ordering or grouping on it would reveal its values",
                        rule.name
                    ),
                ));
            }
            if let Some(rule) = statement
                .written_from
                .iter()
                .find_map(|c| self.hit(c, relations))
            {
                return Some((
                    "vigil.masking.copy",
                    format!(
                        "{} is masked for you; its values may not be copied into other data",
                        rule.name
                    ),
                ));
            }
        }
        None
    }
}

/// How a value computed from a masked column is masked: redacted whole
/// (or NULL under `null`), whatever the column's own strategy, and NULLs
/// are concealed too. Any other strategy can be made to answer a question
/// about the hidden value: `keep_last` keeps all of `CASE … THEN 'yes'`,
/// `email_domain` all of `'x@' || ssn`, `hash` tells `(ssn = '…')::text`
/// true from false.
fn strength(_column: &ColumnRef, rule: &MaskRule) -> Strategy {
    match rule.strategy {
        Strategy::Null => Strategy::Null,
        _ => Strategy::Redact,
    }
}

/// Whether `written` (`t` or `s.t`, as SQL named it) can be `name`'s table.
fn names_table(written: &str, name: &ColumnName) -> bool {
    match written.rsplit_once('.') {
        Some((schema, table)) => schema == name.schema && table == name.table,
        None => written == name.table,
    }
}

/// Masking's verdict on one statement, before its results are seen.
#[derive(Debug, Clone, Default)]
pub(crate) struct StatementMasks {
    /// Per output column, when every one of them is traced: the strategy of
    /// the masked column it is computed from, if any.
    pub(crate) outputs: Option<Vec<Option<Strategy>>>,
    /// The strategy of a masked column the statement reads anywhere.
    pub(crate) taint: Option<Strategy>,
    /// Some source is beyond what Vigil can see.
    pub(crate) unknown: bool,
    /// The masked columns it reads, `schema.table.column`.
    pub(crate) masked: Vec<String>,
}

impl StatementMasks {
    /// For results whose sources Vigil cannot know at all.
    pub(crate) fn unknown() -> StatementMasks {
        StatementMasks {
            unknown: true,
            ..StatementMasks::default()
        }
    }

    /// The verdict for output `i` of `fields`, when the outputs line up.
    pub(crate) fn output(&self, i: usize, fields: usize) -> Option<Strategy> {
        let outputs = self.outputs.as_ref()?;
        if outputs.len() != fields {
            return None;
        }
        outputs.get(i).copied().flatten()
    }

    /// How a result column without a known table source is treated.
    pub(crate) fn untraced(&self, i: usize, fields: usize, scan: bool) -> Option<Verdict> {
        if let Some(outputs) = &self.outputs {
            if outputs.len() == fields {
                return match outputs[i] {
                    Some(strategy) => Some(Verdict::Mask(strategy)),
                    None if self.unknown => Some(Verdict::Mask(Strategy::Redact)),
                    None => None,
                };
            }
        }
        if let Some(strategy) = self.taint {
            return Some(Verdict::Mask(strategy));
        }
        if self.unknown {
            return Some(Verdict::Mask(Strategy::Redact));
        }
        scan.then_some(Verdict::Scan)
    }
}
