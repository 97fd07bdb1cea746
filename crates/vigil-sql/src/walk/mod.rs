//! A depth-bounded, depth-first walk over a pg_query parse tree that calls a
//! [`Visitor`] on entering and leaving every node, with the field it hangs from.
//!
//! The child table is generated from pg_query's own type definitions, so the
//! walk reaches every node (a function call in a column default or a policy
//! expression as surely as one in a target list), and the depth bound keeps a
//! hostile tree from exhausting the stack.

mod children;
mod fields;

use pg_query::NodeRef;

/// Deeper than anything the parser hands over today (prost stops decoding at
/// 100 nested messages, about 50 nodes); a bound of our own keeps the walk
/// safe if that limit is ever lifted.
pub(crate) const MAX_DEPTH: usize = 256;

/// One node as the walk meets it.
#[derive(Clone, Copy)]
pub(crate) struct Visit<'a> {
    pub node: NodeRef<'a>,
    pub parent: Option<NodeRef<'a>>,
    /// The parent's field holding this node; empty for the root.
    pub field: &'static str,
}

/// Called for every node: `enter` before its children, `leave` after.
pub(crate) trait Visitor<'a> {
    fn enter(&mut self, visit: Visit<'a>);
    fn leave(&mut self, visit: Visit<'a>);
}

/// The tree is deeper than [`MAX_DEPTH`].
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct TooDeep;

/// Walks the tree below and including `root`.
pub(crate) fn walk<'a>(root: NodeRef<'a>, visitor: &mut impl Visitor<'a>) -> Result<(), TooDeep> {
    let root = Visit {
        node: root,
        parent: None,
        field: "",
    };
    walk_from(root, 0, visitor)
}

fn walk_from<'a, V: Visitor<'a>>(
    visit: Visit<'a>,
    depth: usize,
    visitor: &mut V,
) -> Result<(), TooDeep> {
    if depth > MAX_DEPTH {
        return Err(TooDeep);
    }
    visitor.enter(visit);
    let mut result = Ok(());
    children::for_each_child(visit.node, &mut |field, child| {
        if result.is_ok() {
            let child = Visit {
                node: child,
                parent: Some(visit.node),
                field,
            };
            result = walk_from(child, depth + 1, visitor);
        }
    });
    visitor.leave(visit);
    result
}
