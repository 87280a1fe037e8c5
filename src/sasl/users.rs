//! The users file (`--sasl-users-file`): lines `NAME:PASSWORD`, each made a
//! SCRAM-SHA-256 and a SCRAM-SHA-512 credential in the catalog at start (and
//! so a PLAIN user too). Blank lines and lines starting with `#` are skipped.
//! A credential that already matches its password is left as it is, so
//! agents restarting with the same file rewrite nothing.

use std::path::Path;

use anyhow::{bail, Context};
use streamhouse_metadata::credentials::ScramMechanism;
use streamhouse_metadata::Catalog;

use super::scram::{new_credential, password_matches, DEFAULT_ITERATIONS};

/// A user and password from the file.
#[derive(Debug, PartialEq, Eq)]
pub struct BootstrapUser {
    pub name: String,
    pub password: String,
}

pub fn parse(text: &str) -> anyhow::Result<Vec<BootstrapUser>> {
    let mut users = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let Some((name, password)) = line.split_once(':') else {
            bail!("line {}: expected NAME:PASSWORD", number + 1);
        };
        if name.is_empty() || password.is_empty() {
            bail!(
                "line {}: the name and the password must not be empty",
                number + 1
            );
        }
        users.push(BootstrapUser {
            name: name.to_owned(),
            password: password.to_owned(),
        });
    }
    Ok(users)
}

/// Reads the file and stores its users' credentials; the number of users.
pub async fn bootstrap(catalog: &dyn Catalog, path: &Path) -> anyhow::Result<usize> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read --sasl-users-file {}", path.display()))?;
    let users = parse(&text).with_context(|| format!("--sasl-users-file {}", path.display()))?;
    for user in &users {
        for mechanism in ScramMechanism::ALL {
            let stored = catalog.scram_credential(&user.name, mechanism).await?;
            if stored.is_some_and(|c| password_matches(&c, &user.password)) {
                continue;
            }
            let credential =
                new_credential(&user.name, mechanism, &user.password, DEFAULT_ITERATIONS);
            catalog.upsert_scram_credential(&credential).await?;
        }
    }
    Ok(users.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_name_colon_password() {
        let users = parse("# admins\nadmin:a:b\n\n  \nalice:pw\r\n").unwrap();
        assert_eq!(
            users,
            vec![
                BootstrapUser {
                    name: "admin".into(),
                    password: "a:b".into()
                },
                BootstrapUser {
                    name: "alice".into(),
                    password: "pw".into()
                },
            ]
        );
        let error = parse("alice:pw\nbob\n").unwrap_err().to_string();
        assert!(error.contains("line 2"), "{error}");
        assert!(parse(":pw").is_err());
        assert!(parse("alice:").is_err());
    }
}
