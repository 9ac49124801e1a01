//! The few ways the tool talks SQL, behind a trait so that the code paths
//! of servers not at hand (MySQL 8.0, 8.4) are tested against answers
//! recorded from them.

use mysql::prelude::Queryable;
use std::collections::BTreeMap;

/// One result row: column name to text value (NULL is None).
pub type Row = BTreeMap<String, Option<String>>;

pub trait Sql {
    /// Runs a statement, ignoring any result.
    fn run(&mut self, statement: &str) -> Result<(), mysql::Error>;
    /// Runs a query and returns its rows as text.
    fn rows(&mut self, query: &str) -> Result<Vec<Row>, mysql::Error>;

    /// The first column of the first row, if any.
    fn value(&mut self, query: &str) -> Result<Option<String>, mysql::Error> {
        Ok(self
            .rows(query)?
            .into_iter()
            .next()
            .and_then(|row| row.into_values().next().flatten()))
    }
}

fn text(value: mysql::Value) -> Option<String> {
    use mysql::Value::*;
    match value {
        NULL => None,
        Bytes(b) => Some(String::from_utf8_lossy(&b).into_owned()),
        Int(i) => Some(i.to_string()),
        UInt(u) => Some(u.to_string()),
        Float(f) => Some(f.to_string()),
        Double(d) => Some(d.to_string()),
        other => Some(other.as_sql(true).trim_matches('\'').to_string()),
    }
}

impl Sql for mysql::Conn {
    fn run(&mut self, statement: &str) -> Result<(), mysql::Error> {
        self.query_drop(statement)
    }

    fn rows(&mut self, query: &str) -> Result<Vec<Row>, mysql::Error> {
        let rows: Vec<mysql::Row> = self.query(query)?;
        Ok(rows
            .into_iter()
            .map(|row| {
                let names: Vec<String> = row
                    .columns_ref()
                    .iter()
                    .map(|c| c.name_str().into_owned())
                    .collect();
                names
                    .into_iter()
                    .zip(row.unwrap().into_iter().map(text))
                    .collect()
            })
            .collect())
    }
}

/// Answers recorded from a real server, for unit tests.
#[cfg(test)]
pub struct Recorded {
    pub answers: BTreeMap<&'static str, Vec<Row>>,
    pub ran: Vec<String>,
}

/// Recorded answers: a statement's start, and the rows it returns, each a
/// list of (column, value).
#[cfg(test)]
pub type Answers<'a> = [(&'static str, &'a [&'a [(&'a str, Option<&'a str>)]])];

#[cfg(test)]
impl Recorded {
    pub fn new(answers: &Answers) -> Self {
        Recorded {
            answers: answers
                .iter()
                .map(|(q, rows)| {
                    let rows = rows
                        .iter()
                        .map(|r| {
                            r.iter()
                                .map(|(k, v)| (k.to_string(), v.map(String::from)))
                                .collect()
                        })
                        .collect();
                    (*q, rows)
                })
                .collect(),
            ran: Vec::new(),
        }
    }
}

#[cfg(test)]
impl Sql for Recorded {
    fn run(&mut self, statement: &str) -> Result<(), mysql::Error> {
        self.ran.push(statement.to_string());
        Ok(())
    }

    fn rows(&mut self, query: &str) -> Result<Vec<Row>, mysql::Error> {
        self.ran.push(query.to_string());
        match self.answers.get(query) {
            Some(rows) => Ok(rows.clone()),
            None => panic!("no recorded answer for: {query}"),
        }
    }
}
