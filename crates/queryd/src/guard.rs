//! The read-only SQL surface.
//!
//! Users may only run queries. Everything else is refused with the statement class
//! named: DDL, DML, COPY, external tables, settings, and any relation that looks
//! like a file path or a table function (the only way a query could read outside
//! the registered buckets). DataFusion's own `SQLOptions` are a second, independent
//! layer behind this one.

use std::collections::BTreeSet;
use std::ops::ControlFlow;

use datafusion::sql::parser::{DFParser, Statement as DFStatement};
use datafusion::sql::sqlparser::ast::{Statement, TableFactor, Visit, Visitor};
use lakehouse_shared::{LakehouseError, Result};

/// Check `sql` and return the table names it reads.
pub fn check_read_only(sql: &str) -> Result<BTreeSet<String>> {
    // DataFusion's own parser: it knows its extensions (COPY TO, CREATE EXTERNAL TABLE).
    let statements =
        DFParser::parse_sql(sql).map_err(|e| LakehouseError::InvalidInput(format!("SQL syntax error: {e}")))?;
    if statements.len() != 1 {
        return Err(LakehouseError::ReadOnlyViolation(format!(
            "exactly one statement per request, got {}",
            statements.len()
        )));
    }
    let query = only_query(&statements[0])?;
    let mut relations = RelationCollector::default();
    if let ControlFlow::Break(reason) = query.visit(&mut relations) {
        return Err(LakehouseError::ReadOnlyViolation(reason));
    }
    Ok(relations.tables)
}

/// The query inside a statement, or the refusal naming what it is.
fn only_query(statement: &DFStatement) -> Result<&Statement> {
    let refuse = |class: &str| Err(LakehouseError::ReadOnlyViolation(format!("{class} is not allowed; only SELECT queries are")));
    match statement {
        DFStatement::Statement(s) => match s.as_ref() {
            Statement::Query(_) => Ok(s),
            Statement::Explain { statement: inner, .. } if matches!(**inner, Statement::Query(_)) => Ok(s),
            other => refuse(statement_class(other)),
        },
        DFStatement::Explain(explain) => only_query(&explain.statement),
        DFStatement::CreateExternalTable(_) => refuse("CREATE EXTERNAL TABLE"),
        DFStatement::CopyTo(_) => refuse("COPY"),
        DFStatement::Reset(_) => refuse("RESET"),
    }
}

fn statement_class(statement: &Statement) -> &'static str {
    match statement {
        Statement::Insert(_) => "INSERT (DML)",
        Statement::Update(_) => "UPDATE (DML)",
        Statement::Delete(_) => "DELETE (DML)",
        Statement::Merge(_) => "MERGE (DML)",
        Statement::Truncate(_) => "TRUNCATE (DML)",
        Statement::Copy { .. } | Statement::CopyIntoSnowflake { .. } => "COPY",
        Statement::CreateTable(t) if t.external => "CREATE EXTERNAL TABLE",
        Statement::CreateTable(_)
        | Statement::CreateView(_)
        | Statement::CreateIndex(_)
        | Statement::CreateSchema { .. }
        | Statement::CreateFunction(_) => "CREATE (DDL)",
        Statement::AlterTable(_) => "ALTER (DDL)",
        Statement::Drop { .. } | Statement::DropFunction(_) => "DROP (DDL)",
        Statement::Set(_) => "SET",
        _ => "this statement",
    }
}

#[derive(Default)]
struct RelationCollector {
    tables: BTreeSet<String>,
}

impl Visitor for RelationCollector {
    type Break = String;

    fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<String> {
        match factor {
            TableFactor::Table { name, args: Some(_), .. } => {
                ControlFlow::Break(format!("table function {name} is not allowed"))
            }
            TableFactor::Table { name, .. } => {
                let text = name.to_string();
                let bare = text.trim_matches(|c| c == '"' || c == '\'' || c == '`');
                if bare.contains('/') || bare.contains('\\') || bare.contains("://") || bare.contains('.') && name.0.len() == 1 {
                    return ControlFlow::Break(format!(
                        "reading files ({text}) is not allowed; query datasets by name"
                    ));
                }
                self.tables.insert(bare.to_string());
                ControlFlow::Continue(())
            }
            TableFactor::Function { name, .. } => ControlFlow::Break(format!("table function {name} is not allowed")),
            TableFactor::TableFunction { .. } => ControlFlow::Break("table functions are not allowed".into()),
            _ => ControlFlow::Continue(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_queries_pass_and_report_their_tables() {
        let t = check_read_only("SELECT w.name FROM workers w JOIN placements p ON p.worker_id = w.worker_id").unwrap();
        assert_eq!(t.into_iter().collect::<Vec<_>>(), vec!["placements", "workers"]);
        check_read_only("WITH x AS (SELECT 1 AS a) SELECT * FROM x").unwrap();
        check_read_only("EXPLAIN SELECT * FROM workers").unwrap();
    }

    #[test]
    fn every_forbidden_class_is_refused_by_name() {
        let cases = [
            ("INSERT INTO workers VALUES (1)", "INSERT"),
            ("UPDATE workers SET name = 'x'", "UPDATE"),
            ("DELETE FROM workers", "DELETE"),
            ("DROP TABLE workers", "DROP"),
            ("CREATE TABLE t (a INT)", "CREATE"),
            ("CREATE VIEW v AS SELECT 1", "CREATE"),
            ("CREATE EXTERNAL TABLE t STORED AS CSV LOCATION '/etc/passwd'", "CREATE EXTERNAL TABLE"),
            ("COPY workers TO '/tmp/out.csv'", "COPY"),
            ("SET datafusion.execution.batch_size = 1", "SET"),
            ("SELECT * FROM '/etc/passwd'", "reading files"),
            ("SELECT * FROM \"../../etc/passwd\"", "reading files"),
            ("SELECT * FROM 'file.parquet'", "reading files"),
            ("SELECT 1; SELECT 2", "exactly one statement"),
        ];
        for (sql, expect) in cases {
            let err = check_read_only(sql).expect_err(sql);
            assert!(matches!(err, LakehouseError::ReadOnlyViolation(_)), "{sql}: {err}");
            assert!(err.to_string().contains(expect), "{sql}: {err}");
        }
    }
}
