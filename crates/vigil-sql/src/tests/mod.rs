//! Behaviour tests over the public API: attacks first, then classification,
//! objects, column lineage, errors, walk coverage and robustness (caching is tested beside it).

mod attacks;
mod classes;
mod coverage;
mod errors;
mod lineage;
mod objects;
mod robustness;
mod shapes;

use crate::{analyze_uncached, Access, Analysis, Relation, Statement};

fn analyze(sql: &str) -> Analysis {
    match analyze_uncached(sql) {
        Ok(analysis) => analysis,
        Err(e) => panic!("{sql:?} did not analyze: {e:?}"),
    }
}

/// The only statement of `sql`.
fn one(sql: &str) -> Statement {
    let mut analysis = analyze(sql);
    assert_eq!(analysis.statements.len(), 1, "{sql:?}");
    analysis.statements.remove(0)
}

fn rel(schema: Option<&str>, name: &str, access: Access) -> Relation {
    Relation {
        schema: schema.map(str::to_owned),
        name: name.to_owned(),
        access,
    }
}

fn read(name: &str) -> Relation {
    rel(None, name, Access::Read)
}

fn write(name: &str) -> Relation {
    rel(None, name, Access::Write)
}
