//! How results are printed: aligned tables for people, JSON for scripts.

use serde_json::Value;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
}

/// Prints `rows` under `headers`, each column as wide as its widest cell, or
/// as a JSON array of objects keyed by the headers in lower case.
pub fn table(format: Format, headers: &[&str], rows: &[Vec<String>]) {
    match format {
        Format::Json => {
            let objects: Vec<Value> = rows
                .iter()
                .map(|row| {
                    let pairs = headers.iter().zip(row).map(|(h, cell)| {
                        let key = h.to_lowercase().replace(' ', "_");
                        // Numbers stay numbers for scripts.
                        let value = cell
                            .parse::<i64>()
                            .map(Value::from)
                            .unwrap_or_else(|_| Value::from(cell.as_str()));
                        (key, value)
                    });
                    Value::Object(pairs.collect())
                })
                .collect();
            println!("{}", Value::Array(objects));
        }
        Format::Table => {
            let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
            for row in rows {
                for (width, cell) in widths.iter_mut().zip(row) {
                    *width = (*width).max(cell.chars().count());
                }
            }
            let line = |cells: &mut dyn Iterator<Item = &str>| {
                let padded: Vec<String> = cells
                    .zip(&widths)
                    .map(|(cell, &width)| format!("{cell:<width$}"))
                    .collect();
                println!("{}", padded.join("  ").trim_end());
            };
            line(&mut headers.iter().copied());
            for row in rows {
                line(&mut row.iter().map(String::as_str));
            }
        }
    }
}

/// Prints a one-line confirmation, or `json` as a JSON object.
pub fn done(format: Format, message: &str, json: Value) {
    match format {
        Format::Table => println!("{message}"),
        Format::Json => println!("{json}"),
    }
}
