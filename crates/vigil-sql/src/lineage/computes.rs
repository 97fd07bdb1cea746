//! Which expressions compute with what they read in a way an identity could
//! learn it from: by an error, a row count or a side effect.

use pg_query::protobuf::{self as pb, node::Node as N};
use pg_query::NodeRef;

/// Functions that never fail on what the given arguments hold, never change
/// how many rows come out and leave no trace: what a masked column may pass
/// through, in those arguments only. Anything else computes with its value,
/// and an error (`1/(…)`, `ssn::int`, a NULL key of `json_build_object`), a
/// row count (`generate_series(1, …)`) or a side effect (`set_config`,
/// `pg_notify`, advisory locks) could say what it is. (COALESCE, GREATEST,
/// LEAST and NULLIF are expressions of their own, judged in [`computes`].)
#[derive(Clone, Copy)]
enum Total {
    /// In every argument.
    All,
    /// In the first argument only (the others are lengths, positions,
    /// offsets, formats: numbers a masked value must not be).
    First,
    /// In the first two.
    FirstTwo,
    /// In the values of key/value pairs (odd positions), not in the keys:
    /// a NULL key is an error.
    Values,
}

fn total(name: &str) -> Option<Total> {
    use Total::*;
    Some(match name {
        "upper" | "lower" | "initcap" | "concat" | "concat_ws" | "reverse" | "translate"
        | "replace" | "btrim" | "ltrim" | "rtrim" | "trim" | "length" | "char_length"
        | "character_length" | "octet_length" | "bit_length" | "md5" | "starts_with" | "strpos"
        | "position" | "quote_literal" | "quote_nullable" | "quote_ident" | "count" | "min"
        | "max" | "string_agg" | "array_agg" | "json_agg" | "jsonb_agg" | "to_json"
        | "to_jsonb" | "row_to_json" | "json_build_array" | "jsonb_build_array"
        | "array_to_json" | "array_to_string" => All,
        "left" | "right" | "substr" | "substring" | "lpad" | "rpad" | "encode" | "first_value"
        | "last_value" | "lag" | "lead" | "nth_value" => First,
        "split_part" => FirstTwo,
        "json_build_object" | "jsonb_build_object" => Values,
        _ => return None,
    })
}

/// Whether the function `call` passes what its `index`th argument reads
/// through without failing on it.
pub(super) fn total_in(call: &pb::FuncCall, index: usize) -> bool {
    match total(&last(&call.funcname)) {
        Some(Total::All) => true,
        Some(Total::First) => index == 0,
        Some(Total::FirstTwo) => index < 2,
        Some(Total::Values) => index % 2 == 1,
        None => false,
    }
}

fn last(names: &[pb::Node]) -> String {
    names
        .iter()
        .rev()
        .find_map(|n| match &n.node {
            Some(N::String(s)) => Some(s.sval.to_ascii_lowercase()),
            _ => None,
        })
        .unwrap_or_default()
}

/// Operators that never fail on text: comparisons and concatenation.
const TOTAL_OPERATORS: &[&str] = &[
    "||", "=", "<>", "!=", "<", ">", "<=", ">=", "~~", "!~~", "~~*", "!~~*",
];

/// Casts that never fail: to text types.
const TOTAL_CASTS: &[&str] = &["text", "varchar", "bpchar", "name", "char"];

/// Whether evaluating `node` can fail (or return more or fewer rows than
/// it reads): a subquery, or any computation.
fn can_fail(node: &pb::Node) -> bool {
    use crate::walk::{walk, Visit, Visitor};
    struct Fails(bool);
    impl<'a> Visitor<'a> for Fails {
        fn enter(&mut self, visit: Visit<'a>) {
            self.0 |= matches!(visit.node, NodeRef::SubLink(_)) || computes(visit.node);
        }
        fn leave(&mut self, _: Visit<'a>) {}
    }
    let Some(inner) = &node.node else {
        return false;
    };
    let mut fails = Fails(false);
    walk(inner.to_ref(), &mut fails).is_err() || fails.0
}

/// Whether `node` computes with what it reads in a way that can fail,
/// change the row count or leave a trace (see [`TOTAL_FUNCTIONS`]).
pub(super) fn computes(node: NodeRef<'_>) -> bool {
    match node {
        NodeRef::FuncCall(call) => total(&last(&call.funcname)).is_none(),
        // Which arguments are evaluated depends on the others' values
        // (COALESCE stops at the first not NULL, AND and OR at the first
        // that decides): one that can fail makes the others an oracle.
        NodeRef::CoalesceExpr(e) => e.args.iter().any(can_fail),
        NodeRef::MinMaxExpr(e) => e.args.iter().any(can_fail),
        NodeRef::BoolExpr(e) => e.args.iter().any(can_fail),
        NodeRef::AExpr(expr) => {
            use pb::AExprKind as K;
            match K::try_from(expr.kind) {
                Ok(K::AexprOp | K::AexprOpAny | K::AexprOpAll) => {
                    !TOTAL_OPERATORS.contains(&last(&expr.name).as_str())
                }
                Ok(
                    K::AexprDistinct
                    | K::AexprNotDistinct
                    | K::AexprNullif
                    | K::AexprIn
                    | K::AexprLike
                    | K::AexprIlike
                    | K::AexprBetween
                    | K::AexprNotBetween
                    | K::AexprBetweenSym
                    | K::AexprNotBetweenSym,
                ) => false,
                _ => true,
            }
        }
        NodeRef::TypeCast(cast) => {
            let name = cast
                .type_name
                .as_ref()
                .map(|t| last(&t.names))
                .unwrap_or_default();
            !TOTAL_CASTS.contains(&name.as_str())
        }
        NodeRef::XmlExpr(_)
        | NodeRef::XmlSerialize(_)
        | NodeRef::JsonObjectConstructor(_)
        | NodeRef::JsonArrayConstructor(_)
        | NodeRef::JsonArrayQueryConstructor(_)
        | NodeRef::JsonObjectAgg(_)
        | NodeRef::JsonArrayAgg(_)
        | NodeRef::JsonParseExpr(_)
        | NodeRef::JsonScalarExpr(_)
        | NodeRef::JsonSerializeExpr(_)
        | NodeRef::JsonFuncExpr(_)
        | NodeRef::AIndirection(_) => true,
        _ => false,
    }
}
