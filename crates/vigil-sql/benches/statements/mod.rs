//! The statements the analysis and policy benchmarks share (the policy bench
//! includes this file by path), so their numbers describe the same texts.

/// pgbench -S's statement, with one fixed account.
pub const SHORT: &str = "SELECT abalance FROM pgbench_accounts WHERE aid = 4711;";

/// A three-table join with WHERE, GROUP BY, HAVING and ORDER BY.
pub const MEDIUM: &str = "SELECT b.bid, t.tid, count(*) AS accounts, sum(a.abalance) AS balance \
     FROM pgbench_accounts a \
     JOIN pgbench_branches b ON b.bid = a.bid \
     JOIN pgbench_tellers t ON t.bid = b.bid \
     WHERE a.abalance > 0 AND b.bbalance < 100000 AND t.tid BETWEEN 1 AND 50 \
     GROUP BY b.bid, t.tid HAVING count(*) > 10 \
     ORDER BY balance DESC, b.bid LIMIT 20;";

/// A bulk insert of ~4 KB: 90 rows of literals.
pub fn long_insert() -> String {
    let mut sql = String::from("INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES ");
    for i in 0..90u32 {
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&format!(
            "({}, {}, {}, {}, '2024-05-{:02} 12:{:02}:00')",
            i % 100 + 1,
            i % 10 + 1,
            1_000 + i * 37,
            i as i32 * 13 - 400,
            i % 28 + 1,
            i % 60,
        ));
    }
    sql.push(';');
    sql
}

const SLICES: u32 = 11;

/// A report of ~4 KB: twelve CTEs over three tables, joined at the end.
pub fn long_report() -> String {
    let mut sql = String::from("WITH ");
    for i in 0..SLICES {
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&format!(
            "slice_{i} AS (SELECT a.bid, count(*) AS accounts, sum(a.abalance) AS balance, \
             count(*) FILTER (WHERE a.abalance < 0) AS overdrawn \
             FROM pgbench_accounts a JOIN pgbench_branches b ON b.bid = a.bid \
             WHERE a.aid BETWEEN {} AND {} AND b.bbalance >= 0 GROUP BY a.bid)",
            i * 100_000 + 1,
            (i + 1) * 100_000,
        ));
    }
    sql.push_str(
        ", tellers AS (SELECT t.bid, count(*) AS tellers, max(t.tbalance) AS top \
         FROM pgbench_tellers t GROUP BY t.bid) SELECT b.bid, tl.tellers, tl.top",
    );
    for i in 0..SLICES {
        sql.push_str(&format!(", coalesce(s{i}.balance, 0) AS balance_{i}"));
    }
    sql.push_str(" FROM pgbench_branches b LEFT JOIN tellers tl ON tl.bid = b.bid");
    for i in 0..SLICES {
        sql.push_str(&format!(" LEFT JOIN slice_{i} s{i} ON s{i}.bid = b.bid"));
    }
    sql.push_str(" ORDER BY b.bid;");
    sql
}
