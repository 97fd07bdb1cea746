//! What the upstream catalog says about the relations results come from:
//! each relation's OID, schema, name, kind and columns, and each view's
//! definition. RowDescription names a column's source by table OID and
//! attribute number; this turns that into `schema.table.column`.
//!
//! One catalog per configured database, shared by its sessions and read on a
//! connection of its own (Vigil's service role). A DDL statement seen by any
//! session, or an OID no catalog knows, marks it stale; it is then read again
//! in the background and sessions pick it up at their next statement. Until
//! then an unknown OID is a source Vigil cannot know, and is masked.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::io::AsyncWriteExt;
use tokio_rustls::TlsConnector;
use vigil_config::Database;

use crate::upstream::{self, simple_query, UpstreamError};

/// Objects PostgreSQL creates at initdb have OIDs below this
/// (`FirstNormalObjectId`): the system catalogs and `information_schema`.
pub(crate) const FIRST_NORMAL_OID: u32 = 16384;
/// A catalog older than this is read again at the next use.
const MAX_AGE: Duration = Duration::from_secs(300);

/// One relation with columns: table, view, materialized view, foreign table.
#[derive(Debug, Clone)]
pub(crate) struct RelationInfo {
    pub(crate) schema: String,
    pub(crate) name: String,
    /// `r`, `p`, `v`, `m` or `f`, as in `pg_class.relkind`.
    pub(crate) kind: char,
    /// `(attnum, name, type OID)`, in attnum order, dropped columns left out.
    pub(crate) columns: Vec<(i16, String, u32)>,
    /// For views and materialized views: `pg_get_viewdef`.
    pub(crate) definition: Option<String>,
}

impl RelationInfo {
    pub(crate) fn is_view(&self) -> bool {
        matches!(self.kind, 'v' | 'm')
    }
}

/// The relations of one database at one moment, and the names of the
/// functions and operators its users defined.
#[derive(Debug, Default)]
pub(crate) struct Catalog {
    pub(crate) relations: HashMap<u32, RelationInfo>,
    /// OIDs by relation name (any schema): unqualified names in SQL may
    /// resolve to any of them.
    pub(crate) by_name: HashMap<String, Vec<u32>>,
    /// Names of functions and operators defined outside `pg_catalog` and
    /// `information_schema` other than by an extension: an unqualified call
    /// of one of those names may resolve to the user's overload.
    pub(crate) user_functions: HashSet<String>,
    pub(crate) user_operators: HashSet<String>,
}

impl Catalog {
    fn from_rows(rows: Vec<Vec<Option<String>>>) -> Result<Catalog, UpstreamError> {
        let mut catalog = Catalog::default();
        let bad = || UpstreamError::Protocol("unexpected catalog row".into());
        for row in rows {
            let [oid, schema, name, kind, attnum, attname, typid, definition] =
                <[Option<String>; 8]>::try_from(row).map_err(|_| bad())?;
            let oid: u32 = oid.and_then(|o| o.parse().ok()).ok_or_else(bad)?;
            let attnum: i16 = attnum.and_then(|a| a.parse().ok()).ok_or_else(bad)?;
            let typid: u32 = typid.and_then(|t| t.parse().ok()).ok_or_else(bad)?;
            let relation = catalog
                .relations
                .entry(oid)
                .or_insert_with(|| RelationInfo {
                    schema: schema.unwrap_or_default(),
                    name: name.unwrap_or_default(),
                    kind: kind.and_then(|k| k.chars().next()).unwrap_or('r'),
                    columns: Vec::new(),
                    definition: None,
                });
            relation
                .columns
                .push((attnum, attname.unwrap_or_default(), typid));
            if definition.is_some() {
                relation.definition = definition;
            }
        }
        for (oid, relation) in &catalog.relations {
            catalog
                .by_name
                .entry(relation.name.clone())
                .or_default()
                .push(*oid);
        }
        Ok(catalog)
    }

    /// The relations a name as written in SQL (`t` or `s.t`) may be.
    pub(crate) fn named(&self, written: &str) -> Vec<(u32, &RelationInfo)> {
        let (schema, name) = match written.rsplit_once('.') {
            Some((schema, name)) => (Some(schema), name),
            None => (None, written),
        };
        self.by_name
            .get(name)
            .into_iter()
            .flatten()
            .filter_map(|oid| {
                let relation = self.relations.get(oid)?;
                schema
                    .is_none_or(|s| s == relation.schema)
                    .then_some((*oid, relation))
            })
            .collect()
    }
}

const CATALOG_QUERY: &str = "\
SELECT c.oid, n.nspname, c.relname, c.relkind, a.attnum, a.attname, a.atttypid, \
       CASE WHEN c.relkind IN ('v', 'm') AND a.attnum = 1 THEN pg_get_viewdef(c.oid) END \
FROM pg_catalog.pg_class c \
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped \
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND c.oid >= 16384 \
ORDER BY c.oid, a.attnum";

/// Functions (`f`) and operators (`o`) the database's users defined, by
/// name; those an extension brought are installed by the DBAs and trusted
/// as what they overload.
const USER_ROUTINES_QUERY: &str = "\
SELECT DISTINCT 'f', p.proname FROM pg_catalog.pg_proc p \
WHERE p.pronamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace) \
  AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d WHERE d.classid = 'pg_catalog.pg_proc'::regclass \
                  AND d.objid = p.oid AND d.deptype = 'e') \
UNION ALL \
SELECT DISTINCT 'o', o.oprname FROM pg_catalog.pg_operator o \
WHERE o.oprnamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace) \
  AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d WHERE d.classid = 'pg_catalog.pg_operator'::regclass \
                  AND d.objid = o.oid AND d.deptype = 'e')";

/// One database's catalog, as sessions share it.
#[derive(Default)]
struct Entry {
    current: Mutex<Option<(Arc<Catalog>, Instant)>>,
    /// Bumped by every invalidation; a load started before one is stale.
    invalidations: AtomicU64,
    /// The invalidation count the current catalog was loaded after.
    loaded_after: AtomicU64,
    /// Bumped every time a new catalog is stored.
    version: AtomicU64,
    /// Held while loading, so concurrent sessions wait for one load.
    loading: tokio::sync::Mutex<()>,
    /// When a session last had the catalog read again because a statement
    /// named a relation it did not know.
    last_forced: Mutex<Option<Instant>>,
}

impl Entry {
    fn fresh(&self) -> Option<Arc<Catalog>> {
        let current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        let (catalog, at) = current.as_ref()?;
        let valid = self.loaded_after.load(Ordering::Acquire)
            == self.invalidations.load(Ordering::Acquire)
            && at.elapsed() < MAX_AGE;
        valid.then(|| Arc::clone(catalog))
    }
}

/// The catalogs of all configured databases, by client-facing name.
#[derive(Default)]
pub(crate) struct Catalogs {
    entries: Mutex<HashMap<String, Arc<Entry>>>,
}

impl Catalogs {
    fn entry(&self, database: &str) -> Arc<Entry> {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(entry) = entries.get(database) {
            return Arc::clone(entry);
        }
        Arc::clone(entries.entry(database.to_owned()).or_default())
    }

    /// A fresh catalog of `db`, read now if there is none.
    pub(crate) async fn get(
        &self,
        db: &Database,
        tls: Option<&(TlsConnector, String)>,
    ) -> Result<Arc<Catalog>, UpstreamError> {
        let entry = self.entry(&db.name);
        if let Some(catalog) = entry.fresh() {
            return Ok(catalog);
        }
        let _loading = entry.loading.lock().await;
        if let Some(catalog) = entry.fresh() {
            return Ok(catalog);
        }
        let after = entry.invalidations.load(Ordering::Acquire);
        let catalog = Arc::new(load(db, tls).await?);
        tracing::debug!(database = %db.name, relations = catalog.relations.len(), "catalog read");
        *entry.current.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((Arc::clone(&catalog), Instant::now()));
        entry.loaded_after.store(after, Ordering::Release);
        entry.version.fetch_add(1, Ordering::AcqRel);
        Ok(catalog)
    }

    /// The latest catalog of `database` (fresh or not) and its version,
    /// without waiting.
    pub(crate) fn latest(&self, database: &str) -> Option<(Arc<Catalog>, u64)> {
        let entry = self.entry(database);
        let version = entry.version.load(Ordering::Acquire);
        let current = entry.current.lock().unwrap_or_else(|e| e.into_inner());
        current.as_ref().map(|(c, _)| (Arc::clone(c), version))
    }

    /// The version of the latest catalog of `database`.
    pub(crate) fn version(&self, database: &str) -> u64 {
        self.entry(database).version.load(Ordering::Acquire)
    }

    /// Whether the catalog of `database` should be read again.
    pub(crate) fn stale(&self, database: &str) -> bool {
        self.entry(database).fresh().is_none()
    }

    /// Whether a statement naming a relation the catalog of `database` does
    /// not know may have it read again now: at most once a second, so a
    /// client naming relations that do not exist cannot keep Vigil reading.
    /// Marks the catalog stale when it may.
    pub(crate) fn force(&self, database: &str) -> bool {
        const MIN_INTERVAL: Duration = Duration::from_secs(1);
        let entry = self.entry(database);
        let mut last = entry.last_forced.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_some_and(|at| at.elapsed() < MIN_INTERVAL) {
            return false;
        }
        *last = Some(Instant::now());
        entry.invalidations.fetch_add(1, Ordering::AcqRel);
        true
    }

    /// Something changed the relations of `database` (DDL, an OID nobody
    /// knew): the next [`get`](Self::get) reads the catalog again.
    pub(crate) fn invalidate(&self, database: &str) {
        self.entry(database)
            .invalidations
            .fetch_add(1, Ordering::AcqRel);
    }
}

/// Reads the catalog of `db` on a connection of its own.
async fn load(
    db: &Database,
    tls: Option<&(TlsConnector, String)>,
) -> Result<Catalog, UpstreamError> {
    let mut upstream = upstream::connect(db, tls, &[("application_name", "vigil catalog")]).await?;
    let rows = tokio::time::timeout(
        Duration::from_millis(db.connect_timeout_ms.max(1_000) * 6),
        simple_query(&mut upstream, CATALOG_QUERY),
    )
    .await
    .map_err(|_| UpstreamError::Timeout(db.connect_timeout_ms.max(1_000) * 6))??;
    let routines = tokio::time::timeout(
        Duration::from_millis(db.connect_timeout_ms.max(1_000) * 6),
        simple_query(&mut upstream, USER_ROUTINES_QUERY),
    )
    .await
    .map_err(|_| UpstreamError::Timeout(db.connect_timeout_ms.max(1_000) * 6))??;
    let mut out = BytesMut::new();
    vigil_wire::backend::terminate(&mut out);
    let _ = upstream.stream.write_all(&out).await;
    let mut catalog = Catalog::from_rows(rows)?;
    for row in routines {
        if let [Some(kind), Some(name)] = row.as_slice() {
            match kind.as_str() {
                "f" => catalog.user_functions.insert(name.clone()),
                _ => catalog.user_operators.insert(name.clone()),
            };
        }
    }
    Ok(catalog)
}
