//! No input makes the analyzer panic: arbitrary text, and token soups that get
//! deeper into the grammar than random characters do.

use proptest::prelude::*;

use crate::analyze_uncached;

#[rustfmt::skip]
const TOKENS: &[&str] = &[
    "SELECT", "INSERT", "INTO", "UPDATE", "DELETE", "FROM", "WHERE", "WITH", "AS", "(", ")", ",",
    ";", "t", "u", "\"Q\"", "public.", "*", "=", "1", "'x'", "$$ y $$", "f(", "SET", "ROLE",
    "DROP", "TABLE", "CREATE", "VALUES", "RETURNING", "COPY", "TO", "STDOUT", "PROGRAM", "EXPLAIN",
    "ANALYZE", "PREPARE", "EXECUTE", "DO", "/*a='b'*/", "--c\n", "JOIN", "ON", "ARRAY[", "]",
    "||", "NOT", "CASE", "WHEN", "THEN", "END", "MERGE", "USING", "MATCHED", "LATERAL", "U&\"\\0061\"",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_text_never_panics(sql in "\\PC{0,200}") {
        let _ = analyze_uncached(&sql);
    }

    #[test]
    fn token_soup_never_panics(tokens in prop::collection::vec(prop::sample::select(TOKENS), 0..60)) {
        let _ = analyze_uncached(&tokens.join(" "));
    }
}
