//! What the throwaway server is asked: CHECK TABLE … EXTENDED on every
//! table of every engine, several at once; and whether the tables it
//! knows are the ones whose files the archive held.

use mysnap::mysql::ConnectOptions;
use mysnap::{Error, Exit, Result};
use mysql::prelude::Queryable;
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Mutex;

/// A table, by schema and name.
pub type Name = (String, String);

/// One table's check.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Checked {
    pub schema: String,
    pub table: String,
    pub ok: bool,
    /// The server's words: its error and status rows, "OK" when fine.
    pub result: String,
}

/// What the checks found.
#[derive(Debug, Default)]
pub struct Found {
    pub version: String,
    pub checked: Vec<Checked>,
    pub schemas: usize,
    /// Tables whose files the archive held that the server does not know.
    pub missing: Vec<Name>,
    /// Tables the server knows that no file of the archive holds.
    pub unlisted: Vec<Name>,
}

impl Found {
    pub fn failed(&self) -> impl Iterator<Item = &Checked> {
        self.checked.iter().filter(|c| !c.ok)
    }

    pub fn passed(&self) -> bool {
        self.failed().next().is_none() && self.missing.is_empty() && self.unlisted.is_empty()
    }
}

/// Schemas the server makes up, with no files in the datadir.
const VIRTUAL: [&str; 2] = ["information_schema", "performance_schema"];

/// The server's version, and its tables (all but temporary ones and
/// system views), in order.
fn tables(connect: &ConnectOptions) -> Result<(String, Vec<Name>)> {
    let mut conn = connect.connect()?;
    let version: String = conn
        .query_first("SELECT VERSION()")
        .map_err(query_failed)?
        .unwrap_or_default();
    let names: Vec<(String, String)> = conn
        .query(
            "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES \
             WHERE TABLE_SCHEMA NOT IN ('information_schema', 'performance_schema') \
             AND TABLE_TYPE NOT IN ('SYSTEM VIEW', 'TEMPORARY') \
             ORDER BY TABLE_SCHEMA, TABLE_NAME",
        )
        .map_err(query_failed)?;
    Ok((version, names))
}

fn query_failed(e: mysql::Error) -> Error {
    // A server that goes away during the checks died on the data.
    Error::new(
        Exit::DataErr,
        format!(
            "the server on the restored data failed a query: {}",
            mysnap::mysql::describe(&e)
        ),
    )
}

fn quote(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// CHECK TABLE … EXTENDED on one connection; None when the server went
/// away (it died on this table: that is its result).
fn check(conn: &mut mysql::Conn, (schema, table): &Name) -> std::result::Result<Checked, String> {
    let sql = format!("CHECK TABLE {}.{} EXTENDED", quote(schema), quote(table));
    let rows: Vec<(String, String, String, String)> =
        conn.query(sql).map_err(|e| mysnap::mysql::describe(&e))?;
    // An error row, or a last status that is not OK, fails the table. A
    // note ("doesn't support check") does not.
    let mut said = Vec::new();
    let mut ok = true;
    for (_, _, kind, text) in &rows {
        match kind.to_ascii_lowercase().as_str() {
            "error" => {
                ok = false;
                said.push(format!("error: {text}"));
            }
            "status" if !text.eq_ignore_ascii_case("OK") => {
                ok = false;
                said.push(format!("status: {text}"));
            }
            "warning" => said.push(format!("warning: {text}")),
            _ => {}
        }
    }
    if rows.is_empty() {
        ok = false;
        said.push("no answer".to_string());
    }
    Ok(Checked {
        schema: schema.clone(),
        table: table.clone(),
        ok,
        result: if said.is_empty() {
            "OK".to_string()
        } else {
            said.join("; ")
        },
    })
}

/// Every table, `jobs` at once, each with its own connection.
pub fn run(connect: &ConnectOptions, datadir: &Path, jobs: usize) -> Result<Found> {
    let (version, names) = tables(connect)?;
    let listed = listed_tables(datadir)?;
    let known: BTreeSet<Name> = names.iter().cloned().collect();
    let schemas: BTreeSet<&String> = names.iter().map(|(s, _)| s).collect();
    let queue = Mutex::new(names.clone().into_iter());
    let results = Mutex::new(Vec::new());
    let died: Mutex<Option<String>> = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..jobs.min(names.len()).max(1) {
            scope.spawn(|| {
                let mut conn = match connect.connect() {
                    Ok(conn) => conn,
                    Err(e) => {
                        died.lock().unwrap().get_or_insert(e.message().to_string());
                        return;
                    }
                };
                loop {
                    let Some(name) = queue.lock().unwrap().next() else {
                        return;
                    };
                    match check(&mut conn, &name) {
                        Ok(checked) => {
                            log::debug!("{}.{}: {}", checked.schema, checked.table, checked.result);
                            results.lock().unwrap().push(checked);
                        }
                        Err(why) => {
                            results.lock().unwrap().push(Checked {
                                schema: name.0.clone(),
                                table: name.1.clone(),
                                ok: false,
                                result: format!("the server went away: {why}"),
                            });
                            died.lock().unwrap().get_or_insert(why);
                            return;
                        }
                    }
                }
            });
        }
    });
    let mut checked = results.into_inner().unwrap();
    if let Some(why) = died.into_inner().unwrap() {
        if checked.iter().all(|c| c.ok) {
            return Err(Error::new(
                Exit::DataErr,
                format!("the server on the restored data stopped answering: {why}"),
            ));
        }
    }
    checked.sort_by(|a, b| (&a.schema, &a.table).cmp(&(&b.schema, &b.table)));
    Ok(Found {
        version,
        schemas: schemas.len(),
        missing: listed.difference(&known).cloned().collect(),
        unlisted: known
            .iter()
            .filter(|(schema, _)| listed.iter().any(|(s, _)| s == schema))
            .filter(|name| !listed.contains(*name))
            .cloned()
            .collect(),
        checked,
    })
}

/// The tables whose files the restored directory holds: a `.frm` each
/// (MariaDB, MySQL 5.7), or where there is none, an `.ibd` (MySQL 8). Names
/// are as the server encodes them in file names (`@0020` for a space).
pub fn listed_tables(datadir: &Path) -> Result<BTreeSet<Name>> {
    let read = |dir: &Path| {
        std::fs::read_dir(dir)
            .map_err(|e| Error::new(Exit::IoErr, format!("reading {}: {e}", dir.display())))
    };
    let mut frm = BTreeSet::new();
    let mut ibd = BTreeSet::new();
    for entry in read(datadir)? {
        let entry = entry.map_err(|e| Error::new(Exit::IoErr, e.to_string()))?;
        let Some(dir_name) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        if !entry.file_type().is_ok_and(|t| t.is_dir())
            || dir_name.starts_with('#')
            || dir_name.starts_with('.')
            || dir_name == "lost+found"
            || VIRTUAL.contains(&decode(&dir_name).as_str())
        {
            continue;
        }
        let schema = decode(&dir_name);
        for file in read(&entry.path())? {
            let file = file.map_err(|e| Error::new(Exit::IoErr, e.to_string()))?;
            let Some(name) = file.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if name.starts_with('#') {
                continue;
            }
            // Partitions (t#P#p0.ibd) belong to their table.
            if let Some(stem) = name.strip_suffix(".frm") {
                frm.insert((schema.clone(), decode(stem)));
            } else if let Some(stem) = name.strip_suffix(".ibd") {
                let table = stem
                    .split_once("#P#")
                    .or_else(|| stem.split_once("#p#"))
                    .map_or(stem, |(table, _)| table);
                if !table.contains('#') {
                    ibd.insert((schema.clone(), decode(table)));
                }
            }
        }
    }
    Ok(if frm.is_empty() { ibd } else { frm })
}

/// A name as the server wrote it into a file name: `@XXXX` is the
/// character U+XXXX, the rest as it is.
pub fn decode(encoded: &str) -> String {
    let mut out = String::new();
    let mut rest = encoded;
    while let Some(at) = rest.find('@') {
        out.push_str(&rest[..at]);
        let code = rest
            .get(at + 1..at + 5)
            .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
            .and_then(|h| u32::from_str_radix(h, 16).ok())
            .and_then(char::from_u32);
        match code {
            Some(c) => {
                out.push(c);
                rest = &rest[at + 5..];
            }
            None => {
                out.push('@');
                rest = &rest[at + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_decode_to_table_names() {
        assert_eq!(decode("plain_name1"), "plain_name1");
        assert_eq!(decode("my@0020table"), "my table");
        assert_eq!(decode("@0024x@002d"), "$x-");
        assert_eq!(decode("bad@zz"), "bad@zz");
        assert_eq!(decode("end@"), "end@");
    }

    #[test]
    fn the_listed_tables_are_the_frm_files_else_the_ibd_files() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for (path, body) in [
            ("shop/orders.frm", ""),
            ("shop/orders.ibd", ""),
            ("shop/my@0020view.frm", ""),
            ("shop/#sql-1a2b.frm", ""),
            ("mysql/user.frm", ""),
            ("#innodb_temp/temp_1.ibt", ""),
            ("performance_schema/db.opt", ""),
            ("ibdata1", ""),
        ] {
            let p = root.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, body).unwrap();
        }
        let names = |list: &[(&str, &str)]| -> BTreeSet<Name> {
            list.iter()
                .map(|(s, t)| (s.to_string(), t.to_string()))
                .collect()
        };
        assert_eq!(
            listed_tables(root).unwrap(),
            names(&[("mysql", "user"), ("shop", "my view"), ("shop", "orders")])
        );
        // MySQL 8: no .frm anywhere.
        let dir = tempfile::tempdir().unwrap();
        for path in ["app/t1.ibd", "app/t2#p#p0.ibd", "app/t2#p#p1.ibd"] {
            let p = dir.path().join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, "").unwrap();
        }
        assert_eq!(
            listed_tables(dir.path()).unwrap(),
            names(&[("app", "t1"), ("app", "t2")])
        );
    }
}
