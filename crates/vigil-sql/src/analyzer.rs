//! The analyzer sessions share: parses a text with PostgreSQL's own parser,
//! analyzes each statement, and caches the result by the exact text and, for
//! plain DML, by the text's shape (its constants and comments blanked), so
//! `WHERE aid = 123` and `WHERE aid = 456` cost one parse between them.

use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use pg_query::protobuf::RawStmt;

use crate::cache::Lru;
use crate::collect::collect;
use crate::shape::{shape, Shape};
use crate::{tags, Analysis, AnalyzeError, Kind, Statement};

/// Texts longer than this are analyzed every time rather than cached, so the
/// cache's memory stays bounded by its capacity times this.
pub const MAX_CACHED_LEN: usize = 32 * 1024;

/// Analyzes statement texts, remembering the most recent ones. Share one
/// between sessions through an `Arc`; the caches sit behind mutexes held
/// only for a lookup or an insert, never while parsing. See
/// [`STACK_NEEDED`] for the stack the calling threads should have.
pub struct Analyzer {
    /// By exact text.
    texts: Mutex<Lru<Arc<Analysis>>>,
    /// By shape, for analyses that hold whatever the constants and comments
    /// (see [`shareable`]): the analysis of the first text of that shape.
    shapes: Mutex<Lru<Arc<Analysis>>>,
}

impl Analyzer {
    /// An analyzer caching up to `cache_capacity` texts and as many shapes
    /// (0 disables caching).
    pub fn new(cache_capacity: usize) -> Analyzer {
        Analyzer {
            texts: Mutex::new(Lru::new(cache_capacity)),
            shapes: Mutex::new(Lru::new(cache_capacity)),
        }
    }

    /// The analysis of `sql`: from the cache when this exact text, or a
    /// plain DML text of the same shape, was seen recently; otherwise parsed
    /// and analyzed now. Errors are not cached.
    pub fn analyze(&self, sql: &str) -> Result<Arc<Analysis>, AnalyzeError> {
        if sql.len() > MAX_CACHED_LEN {
            return analyze_uncached(sql).map(Arc::new);
        }
        if let Some(hit) = lock(&self.texts).get(sql) {
            return Ok(hit);
        }
        let shape = shape(sql);
        if let Some(shape) = &shape {
            let model = lock(&self.shapes).get(&shape.key);
            if let Some(analysis) = model.and_then(|model| reshape(&model, sql, shape)) {
                // Not kept by text: one-off constants would crowd out the
                // texts that do repeat.
                return Ok(Arc::new(analysis));
            }
        }
        let analysis = Arc::new(analyze_shaped(sql, shape.as_ref())?);
        if let Some(shape) = &shape {
            if shareable(&analysis) {
                lock(&self.shapes).insert(&shape.key, Arc::clone(&analysis));
            }
        }
        Ok(lock(&self.texts).insert(sql, analysis))
    }

    /// How many texts are cached now (by exact text).
    pub fn cached(&self) -> usize {
        lock(&self.texts).len()
    }

    /// How many shapes are cached now.
    pub fn cached_shapes(&self) -> usize {
        lock(&self.shapes).len()
    }
}

fn lock<T>(cache: &Mutex<T>) -> MutexGuard<'_, T> {
    // The caches are consistent between calls; a panic elsewhere while one
    // was locked cannot have left it half-updated.
    cache.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Whether every text of this analysis's shape has the same analysis but
/// for statement texts, normalized forms and tags. True for texts of only
/// `SELECT`, `INSERT`, `UPDATE`, `DELETE` and `MERGE` statements that change
/// no setting: what those do is in their keywords and names, and a constant
/// only ever stands for a value. Not for a `SET` (its value is a constant),
/// `set_config('search_path', …)`, `EXPLAIN (ANALYZE 0)`, `COPY … 'file'`
/// or `ORDER BY 2` (its integer picks the output whose columns order rows).
fn shareable(analysis: &Analysis) -> bool {
    analysis.statements.iter().all(|s| {
        matches!(
            s.kind,
            Kind::Select | Kind::Insert | Kind::Update | Kind::Delete | Kind::Merge
        ) && s.properties.settings.is_empty()
            && s.properties.copy.is_none()
            && !s.properties.explain_analyze
            && !s.properties.positional_refs
    })
}

/// `model`'s analysis for `sql`, a text of the same shape: its statements'
/// findings with `sql`'s own statement texts, normalized forms and tags.
/// `None` if the shapes disagree on the statement count, which would be a
/// bug in the shape lexer; the caller then parses.
fn reshape(model: &Analysis, sql: &str, shape: &Shape) -> Option<Analysis> {
    if model.statements.len() != shape.statements.len() {
        return None;
    }
    let statements = model
        .statements
        .iter()
        .zip(&shape.statements)
        .map(|(found, range)| Statement {
            text: sql[range.clone()].trim().to_owned(),
            normalized: shape.normalize(sql, range.clone()).trim().to_owned(),
            ..found.clone()
        })
        .collect();
    Some(Analysis {
        statements,
        tags: tags::from_comments(shape.block_comments.iter().map(|c| &sql[c.clone()])),
    })
}

/// Stack an analysis may use. pg_query decodes its tree recursively, and
/// prost's decoder for the 271-way node enum takes tens of kilobytes per
/// nesting level: the deepest tree prost will decode (100 nested messages)
/// needs about 3 MiB, and 40 chained `||` already overflow a 2 MiB tokio
/// worker stack, which aborts the whole process.
///
/// With less than this left, an uncached analysis first moves to a fresh
/// stack of twice this size: always safe, but the new stack's first page
/// faults cost about 100 µs per text. Threads that analyze (tokio workers:
/// `runtime::Builder::thread_stack_size`) should have 8 MiB to skip that.
pub const STACK_NEEDED: usize = 4 << 20;

/// Analyzes `sql` without any cache.
pub fn analyze_uncached(sql: &str) -> Result<Analysis, AnalyzeError> {
    analyze_shaped(sql, shape(sql).as_ref())
}

/// Whether `sql` is exactly one GRANT of privileges on objects to `role`
/// alone, without `WITH GRANT OPTION`: not a grant of role membership, not
/// to anyone else, not anything else. (Provisioning writes such grants for
/// the roles identities run under.)
pub fn is_privilege_grant(sql: &str, role: &str) -> bool {
    use pg_query::protobuf::node::Node;
    let parsed = panic::catch_unwind(AssertUnwindSafe(|| pg_query::parse(sql, 0)));
    let Ok(Ok(parsed)) = parsed else {
        return false;
    };
    let [only] = parsed.protobuf.stmts.as_slice() else {
        return false;
    };
    let Some(Node::GrantStmt(grant)) = only.stmt.as_deref().and_then(|n| n.node.as_ref()) else {
        return false;
    };
    let to_role = match grant.grantees.as_slice() {
        [grantee] => matches!(&grantee.node, Some(Node::RoleSpec(r)) if r.rolename == role),
        _ => false,
    };
    grant.is_grant && !grant.grant_option && to_role
}

fn analyze_shaped(sql: &str, shape: Option<&Shape>) -> Result<Analysis, AnalyzeError> {
    stacker::maybe_grow(STACK_NEEDED, 2 * STACK_NEEDED, || analyze_here(sql, shape))
}

/// Parses and analyzes `sql`. Where it has a shape, normalized forms and
/// tags come from that, exactly as for a text that reuses this analysis.
fn analyze_here(sql: &str, shape: Option<&Shape>) -> Result<Analysis, AnalyzeError> {
    let pg_error = |e| AnalyzeError::from_pg_query(e, sql);
    // pg_query's Rust side indexes and casts the tree it builds; should that
    // ever panic on some input, refuse the text rather than lose the session.
    let parsed = panic::catch_unwind(AssertUnwindSafe(|| pg_query::parse(sql, 0)))
        .map_err(|_| AnalyzeError::Parser("the parser panicked".to_owned()))?
        .map_err(pg_error)?;
    let mut statements = Vec::with_capacity(parsed.protobuf.stmts.len());
    for raw in &parsed.protobuf.stmts {
        let Some(node) = raw.stmt.as_deref().and_then(|n| n.node.as_ref()) else {
            continue;
        };
        let (start, end) = statement_range(sql, raw);
        let text = sql[start..end].trim();
        let normalized = match shape {
            Some(shape) => shape.normalize(sql, start..end).trim().to_owned(),
            None => pg_query::normalize(text).map_err(pg_error)?,
        };
        let findings = collect(node.to_ref()).map_err(|_| AnalyzeError::TooDeep)?;
        statements.push(Statement {
            text: text.to_owned(),
            kind: findings.kind,
            class: findings.class,
            inner_kinds: findings.inner_kinds,
            relations: findings.relations,
            columns: findings.columns,
            functions: findings.functions,
            properties: findings.properties,
            outputs: findings.outputs,
            filters: findings.filters,
            written_from: findings.written_from,
            computed: findings.computed,
            normalized,
            fingerprint: pg_query::fingerprint(text, 0, 0).map_err(pg_error)?.hex,
        });
    }
    let tags = match shape {
        Some(shape) => tags::from_comments(shape.block_comments.iter().map(|c| &sql[c.clone()])),
        None => tags::tags(sql),
    };
    Ok(Analysis { statements, tags })
}

/// A statement's own byte range of the text. The parser reports byte
/// offsets, and a length of 0 for "to the end"; a range that is not one of
/// the text's (never seen) falls back to the whole text.
fn statement_range(sql: &str, raw: &RawStmt) -> (usize, usize) {
    let start = usize::try_from(raw.stmt_location).unwrap_or(0);
    let end = match usize::try_from(raw.stmt_len) {
        Ok(0) | Err(_) => sql.len(),
        Ok(len) => start.saturating_add(len),
    };
    match sql.get(start..end) {
        Some(_) => (start, end),
        None => (0, sql.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Kind;

    #[test]
    fn a_repeated_text_is_served_from_the_cache() {
        let analyzer = Analyzer::new(16);
        let first = analyzer.analyze("SELECT * FROM t WHERE id = 1").unwrap();
        let second = analyzer.analyze("SELECT * FROM t WHERE id = 1").unwrap();
        assert!(Arc::ptr_eq(&first, &second));
        assert_eq!(analyzer.cached(), 1);
        // The key is the exact text: any difference is a different entry.
        let other = analyzer.analyze("SELECT * FROM t WHERE id = 1 ").unwrap();
        assert!(!Arc::ptr_eq(&first, &other));
        assert_eq!(analyzer.cached(), 2);
    }

    #[test]
    fn the_cache_is_bounded_and_keeps_the_recently_used() {
        let analyzer = Analyzer::new(2);
        let a = analyzer.analyze("SELECT * FROM a").unwrap();
        analyzer.analyze("SELECT * FROM b").unwrap();
        assert!(Arc::ptr_eq(
            &a,
            &analyzer.analyze("SELECT * FROM a").unwrap()
        ));
        analyzer.analyze("SELECT * FROM c").unwrap();
        assert_eq!(analyzer.cached(), 2);
        // "SELECT * FROM b" was the least recently used and made room for "SELECT * FROM c".
        assert!(Arc::ptr_eq(
            &a,
            &analyzer.analyze("SELECT * FROM a").unwrap()
        ));
        // Now "SELECT * FROM c" is the least recently used.
        analyzer.analyze("SELECT * FROM b").unwrap();
        assert!(Arc::ptr_eq(
            &a,
            &analyzer.analyze("SELECT * FROM a").unwrap()
        ));
        for i in 0..100 {
            analyzer.analyze(&format!("SELECT * FROM t{i}")).unwrap();
            assert!(analyzer.cached() <= 2 && analyzer.cached_shapes() <= 2);
        }
    }

    #[test]
    fn errors_and_long_texts_are_not_cached() {
        let analyzer = Analyzer::new(16);
        assert!(analyzer.analyze("SELEC 1").is_err());
        assert!(analyzer.analyze("SELEC 1").is_err());
        let long = format!("SELECT 1 /* {} */", "x".repeat(MAX_CACHED_LEN));
        let first = analyzer.analyze(&long).unwrap();
        assert!(!Arc::ptr_eq(&first, &analyzer.analyze(&long).unwrap()));
        assert_eq!(analyzer.cached(), 0);
        let disabled = Analyzer::new(0);
        disabled.analyze("SELECT 1").unwrap();
        assert_eq!(disabled.cached(), 0);
    }

    #[test]
    fn sessions_share_one_analyzer_across_threads() {
        let analyzer = Arc::new(Analyzer::new(64));
        let threads = (0..4)
            .map(|t| {
                let analyzer = Arc::clone(&analyzer);
                std::thread::spawn(move || {
                    for i in 0..50 {
                        let sql = format!("DELETE FROM t{} WHERE id = {i}", (t + i) % 8);
                        let analysis = analyzer.analyze(&sql).unwrap();
                        assert_eq!(analysis.statements[0].kind, Kind::Delete);
                    }
                })
            })
            .collect::<Vec<_>>();
        for thread in threads {
            thread.join().unwrap();
        }
        assert!(analyzer.cached() <= 64);
    }

    #[test]
    fn statement_range_survives_odd_offsets() {
        let raw = RawStmt {
            stmt: None,
            stmt_location: 3,
            stmt_len: 1,
        };
        // Offset 3 falls inside 'é': fall back to the whole text rather than panic.
        assert_eq!(statement_range("ab é", &raw), (0, 5));
        let raw = RawStmt {
            stmt: None,
            stmt_location: -5,
            stmt_len: 100,
        };
        assert_eq!(statement_range("SELECT 1", &raw), (0, 8));
    }
}
