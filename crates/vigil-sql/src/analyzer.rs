//! The analyzer sessions share: parses a text with PostgreSQL's own parser,
//! analyzes each statement, and caches the result by the exact text.

use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use pg_query::protobuf::RawStmt;

use crate::cache::Lru;
use crate::collect::collect;
use crate::{tags, Analysis, AnalyzeError, Statement};

/// Texts longer than this are analyzed every time rather than cached, so the
/// cache's memory stays bounded by its capacity times this.
pub const MAX_CACHED_LEN: usize = 32 * 1024;

/// Analyzes statement texts, remembering the most recent ones. Share one
/// between sessions through an `Arc`; the cache sits behind a mutex held
/// only for the lookup and the insert, never while parsing. See
/// [`STACK_NEEDED`] for the stack the calling threads should have.
pub struct Analyzer {
    cache: Mutex<Lru<Arc<Analysis>>>,
}

impl Analyzer {
    /// An analyzer caching up to `cache_capacity` texts (0 disables caching).
    pub fn new(cache_capacity: usize) -> Analyzer {
        Analyzer {
            cache: Mutex::new(Lru::new(cache_capacity)),
        }
    }

    /// The analysis of `sql`: from the cache when this exact text was seen
    /// recently, otherwise parsed and analyzed now. Errors are not cached.
    pub fn analyze(&self, sql: &str) -> Result<Arc<Analysis>, AnalyzeError> {
        let cacheable = sql.len() <= MAX_CACHED_LEN;
        if cacheable {
            if let Some(hit) = self.cache().get(sql) {
                return Ok(hit);
            }
        }
        let analysis = Arc::new(analyze_uncached(sql)?);
        if !cacheable {
            return Ok(analysis);
        }
        Ok(self.cache().insert(sql, analysis))
    }

    /// How many texts are cached now.
    pub fn cached(&self) -> usize {
        self.cache().len()
    }

    fn cache(&self) -> MutexGuard<'_, Lru<Arc<Analysis>>> {
        // The cache is consistent between calls; a panic elsewhere while it
        // was locked cannot have left it half-updated.
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }
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
    stacker::maybe_grow(STACK_NEEDED, 2 * STACK_NEEDED, || analyze_here(sql))
}

fn analyze_here(sql: &str) -> Result<Analysis, AnalyzeError> {
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
        let text = statement_text(sql, raw);
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
            normalized: pg_query::normalize(text).map_err(pg_error)?,
            fingerprint: pg_query::fingerprint(text, 0, 0).map_err(pg_error)?.hex,
        });
    }
    Ok(Analysis {
        statements,
        tags: tags::tags(sql),
    })
}

/// A statement's own slice of the text. The parser reports byte offsets, and
/// a length of 0 for "to the end".
fn statement_text<'s>(sql: &'s str, raw: &RawStmt) -> &'s str {
    let start = usize::try_from(raw.stmt_location).unwrap_or(0);
    let end = match usize::try_from(raw.stmt_len) {
        Ok(0) | Err(_) => sql.len(),
        Ok(len) => start.saturating_add(len),
    };
    sql.get(start..end).unwrap_or(sql).trim()
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
        let a = analyzer.analyze("SELECT 1").unwrap();
        analyzer.analyze("SELECT 2").unwrap();
        assert!(Arc::ptr_eq(&a, &analyzer.analyze("SELECT 1").unwrap()));
        analyzer.analyze("SELECT 3").unwrap();
        assert_eq!(analyzer.cached(), 2);
        // "SELECT 2" was the least recently used and made room for "SELECT 3".
        assert!(Arc::ptr_eq(&a, &analyzer.analyze("SELECT 1").unwrap()));
        // Now "SELECT 3" is the least recently used.
        analyzer.analyze("SELECT 2").unwrap();
        assert!(Arc::ptr_eq(&a, &analyzer.analyze("SELECT 1").unwrap()));
        for i in 0..100 {
            analyzer.analyze(&format!("SELECT {i}")).unwrap();
            assert!(analyzer.cached() <= 2);
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
    fn statement_text_survives_odd_offsets() {
        let raw = RawStmt {
            stmt: None,
            stmt_location: 3,
            stmt_len: 1,
        };
        // Offset 3 falls inside 'é': fall back to the whole text rather than panic.
        assert_eq!(statement_text("ab é", &raw), "ab é");
        let raw = RawStmt {
            stmt: None,
            stmt_location: -5,
            stmt_len: 100,
        };
        assert_eq!(statement_text("SELECT 1", &raw), "SELECT 1");
    }
}
