//! Which expressions compute with what they read in a way an identity could
//! learn it from: by an error, a row count or a side effect.

use pg_query::protobuf::{self as pb, node::Node as N};
use pg_query::NodeRef;

/// Functions, operators and casts that never fail on any text, never change
/// how many rows come out and leave no trace: what a masked column may pass
/// through. Anything else computes with its value, and an error (`1/(…)`,
/// `ssn::int`), a row count (`generate_series(1, …)`) or a side effect
/// (`set_config`, `pg_notify`, advisory locks) could say what it is.
const TOTAL_FUNCTIONS: &[&str] = &[
    "upper",
    "lower",
    "initcap",
    "concat",
    "concat_ws",
    "left",
    "right",
    "substr",
    "substring",
    "replace",
    "reverse",
    "translate",
    "btrim",
    "ltrim",
    "rtrim",
    "trim",
    "lpad",
    "rpad",
    "length",
    "char_length",
    "character_length",
    "octet_length",
    "bit_length",
    "md5",
    "split_part",
    "starts_with",
    "strpos",
    "position",
    "quote_literal",
    "quote_nullable",
    "quote_ident",
    "coalesce",
    "nullif",
    "greatest",
    "least",
    "count",
    "min",
    "max",
    "string_agg",
    "array_agg",
    "json_agg",
    "jsonb_agg",
    "to_json",
    "to_jsonb",
    "row_to_json",
    "json_build_object",
    "jsonb_build_object",
    "json_build_array",
    "jsonb_build_array",
    "array_to_json",
    "array_to_string",
    "convert_to",
    "encode",
    "first_value",
    "last_value",
    "lag",
    "lead",
    "nth_value",
];

/// Operators that never fail on text: comparisons and concatenation.
const TOTAL_OPERATORS: &[&str] = &[
    "||", "=", "<>", "!=", "<", ">", "<=", ">=", "~~", "!~~", "~~*", "!~~*",
];

/// Casts that never fail: to text types.
const TOTAL_CASTS: &[&str] = &["text", "varchar", "bpchar", "name", "char"];

/// Whether `node` computes with what it reads in a way that can fail,
/// change the row count or leave a trace (see [`TOTAL_FUNCTIONS`]).
pub(super) fn computes(node: NodeRef<'_>) -> bool {
    let last = |names: &[pb::Node]| {
        names
            .iter()
            .rev()
            .find_map(|n| match &n.node {
                Some(N::String(s)) => Some(s.sval.to_ascii_lowercase()),
                _ => None,
            })
            .unwrap_or_default()
    };
    match node {
        NodeRef::FuncCall(call) => !TOTAL_FUNCTIONS.contains(&last(&call.funcname).as_str()),
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
