//! The names PostgreSQL gives unaliased target entries (`FigureColname` in
//! `parse_target.c`), for the simple expressions whose name is certain.

use pg_query::protobuf::{self as pb, node::Node as N};

/// PostgreSQL's name for an unaliased target entry (`FigureColname`), where
/// it is simple, with its strength: 2 for a name PostgreSQL keeps over a
/// cast's type name, 1 for a weaker one.
pub(super) fn default_name(node: &N) -> Option<(String, u8)> {
    let last_string = |nodes: &[pb::Node]| {
        nodes.iter().rev().find_map(|n| match &n.node {
            Some(N::String(s)) => Some(s.sval.clone()),
            _ => None,
        })
    };
    match node {
        N::ColumnRef(c) => match c.fields.last().and_then(|f| f.node.as_ref()) {
            Some(N::String(s)) => Some((s.sval.clone(), 2)),
            _ => None,
        },
        N::AIndirection(i) => match i.indirection.last().and_then(|f| f.node.as_ref()) {
            Some(N::String(s)) => Some((s.sval.clone(), 2)),
            _ => None,
        },
        N::FuncCall(f) => last_string(&f.funcname).map(|n| (n, 2)),
        N::TypeCast(cast) => {
            let inner = cast.arg.as_deref().and_then(|n| n.node.as_ref());
            match inner.and_then(default_name) {
                Some((name, 2)) => Some((name, 2)),
                _ => cast
                    .type_name
                    .as_ref()
                    .and_then(|t| last_string(&t.names))
                    .map(|n| (n, 1)),
            }
        }
        N::CollateClause(c) => c
            .arg
            .as_deref()
            .and_then(|n| n.node.as_ref())
            .and_then(default_name),
        N::CaseExpr(_) => Some(("case".to_owned(), 1)),
        N::AArrayExpr(_) => Some(("array".to_owned(), 2)),
        N::RowExpr(_) => Some(("row".to_owned(), 2)),
        N::CoalesceExpr(_) => Some(("coalesce".to_owned(), 2)),
        N::GroupingFunc(_) => Some(("grouping".to_owned(), 2)),
        N::MinMaxExpr(m) => Some((
            if m.op == pb::MinMaxOp::IsGreatest as i32 {
                "greatest"
            } else {
                "least"
            }
            .to_owned(),
            2,
        )),
        N::SubLink(link) => {
            use pb::SubLinkType as T;
            match T::try_from(link.sub_link_type) {
                Ok(T::ExistsSublink) => Some(("exists".to_owned(), 2)),
                Ok(T::ArraySublink) => Some(("array".to_owned(), 2)),
                Ok(T::ExprSublink) => match link.subselect.as_deref().and_then(|n| n.node.as_ref())
                {
                    Some(N::SelectStmt(s)) => {
                        match s.target_list.first().and_then(|t| t.node.as_ref()) {
                            Some(N::ResTarget(t)) if !t.name.is_empty() => {
                                Some((t.name.clone(), 2))
                            }
                            Some(N::ResTarget(t)) => t
                                .val
                                .as_deref()
                                .and_then(|n| n.node.as_ref())
                                .and_then(default_name),
                            _ => None,
                        }
                    }
                    _ => None,
                },
                _ => None,
            }
        }
        _ => None,
    }
}
