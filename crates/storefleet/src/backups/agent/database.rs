//! The store's MariaDB, as the agent reaches it: connection settings parsed at the edge, and the two
//! client programs run with argv vectors. The password never appears in argv (which `ps` and
//! `/proc` show): it goes to the client in `MYSQL_PWD`, which the MariaDB client library reads.
use std::future::Future;
use std::path::PathBuf;
use std::process::Stdio;

use anyhow::Context;
use clap::Args;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::{Child, ChildStdin, Command};

use super::checked::ends_after;

/// At most this much of a client's stderr is kept for the error message (its last bytes).
const STDERR_TAIL: usize = 2048;

#[derive(Args, Debug)]
pub struct DatabaseArgs {
    /// The store's database server (a host name or address: the connection is TCP).
    #[arg(long, env = "STOREFLEET_DB_HOST")]
    pub db_host: String,
    #[arg(long, env = "STOREFLEET_DB_PORT", default_value_t = 3306)]
    pub db_port: u16,
    #[arg(long, env = "STOREFLEET_DB_USER", value_parser = DbIdent::parse)]
    pub db_user: DbIdent,
    #[arg(long, env = "STOREFLEET_DB_NAME", value_parser = DbIdent::parse)]
    pub db_name: DbIdent,
    /// A file holding the password (a mounted Secret). Unset: STOREFLEET_DB_PASSWORD.
    #[arg(long, env = "STOREFLEET_DB_PASSWORD_FILE")]
    pub db_password_file: Option<PathBuf>,
    /// The dump program.
    #[arg(long, env = "STOREFLEET_MARIADB_DUMP", default_value = "mariadb-dump")]
    pub mariadb_dump: PathBuf,
    /// The client a restore feeds the dump into.
    #[arg(long, env = "STOREFLEET_MARIADB", default_value = "mariadb")]
    pub mariadb: PathBuf,
}

/// A database or user name as the store chart makes them: letters, digits, `_`, `$`, `-`, not
/// starting with `-` (so it can never be read as an option), at most 64 characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DbIdent(String);

impl DbIdent {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let ok = !raw.is_empty()
            && raw.len() <= 64
            && !raw.starts_with('-')
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'$' | b'-'));
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(format!(
                "{raw:?} is not a database or user name (letters, digits, `_$-`, not starting with `-`, at most 64)"
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl DatabaseArgs {
    fn password(&self) -> anyhow::Result<String> {
        match &self.db_password_file {
            Some(file) => Ok(std::fs::read_to_string(file)
                .with_context(|| format!("reading the database password from {}", file.display()))?
                .trim_end_matches(['\n', '\r'])
                .to_owned()),
            None => std::env::var("STOREFLEET_DB_PASSWORD").map_err(|_| {
                anyhow::anyhow!(
                    "no database password: give --db-password-file (STOREFLEET_DB_PASSWORD_FILE) or set STOREFLEET_DB_PASSWORD"
                )
            }),
        }
    }

    /// The options both clients share. `--no-defaults` first: no option file of the image or of a
    /// home folder changes what runs.
    fn connection(&self) -> Vec<String> {
        vec![
            "--no-defaults".into(),
            format!("--host={}", self.db_host),
            format!("--port={}", self.db_port),
            "--protocol=tcp".into(),
            format!("--user={}", self.db_user.as_str()),
        ]
    }

    fn command(&self, program: &PathBuf, args: Vec<String>) -> anyhow::Result<Command> {
        let mut c = Command::new(program);
        c.args(args)
            .env("MYSQL_PWD", self.password()?)
            .stderr(Stdio::piped())
            // A backup or restore stopped half-way must not leave its client running.
            .kill_on_drop(true);
        Ok(c)
    }

    /// The database's consistent dump (`--single-transaction`: one snapshot, no locks on InnoDB
    /// tables), as a source that fails at its end if `mariadb-dump` did not exit 0.
    pub fn dump(&self) -> anyhow::Result<impl AsyncRead + Send + Unpin + 'static> {
        let mut args = self.connection();
        args.extend(
            [
                "--single-transaction",
                "--routines",
                "--triggers",
                "--events",
                // Tablespaces need the PROCESS privilege, which a store's own user does not have.
                "--no-tablespaces",
                "--hex-blob",
                "--default-character-set=utf8mb4",
            ]
            .map(String::from),
        );
        args.push(self.db_name.as_str().to_owned());
        let mut child = self
            .command(&self.mariadb_dump, args)?
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", self.mariadb_dump.display()))?;
        let stdout = child.stdout.take().expect("stdout is piped");
        Ok(ends_after(stdout, verdict(child, "mariadb-dump")))
    }

    /// Runs `mariadb` on the database with `feed` writing the dump into its stdin; the client's own
    /// complaint (its stderr) wins over the broken pipe it causes.
    pub async fn import<F, Fut>(&self, feed: F) -> anyhow::Result<()>
    where
        F: FnOnce(ChildStdin) -> Fut,
        Fut: Future<Output = Result<(), crate::backups::BackupError>>,
    {
        let mut args = self.connection();
        args.push(format!("--database={}", self.db_name.as_str()));
        args.push("--default-character-set=utf8mb4".into());
        let mut child = self
            .command(&self.mariadb, args)?
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", self.mariadb.display()))?;
        let stdin = child.stdin.take().expect("stdin is piped");
        let verdict = verdict(child, "mariadb");
        let fed = feed(stdin).await;
        verdict.await?;
        fed?;
        Ok(())
    }
}

/// The client's verdict: `Err` with its stderr's tail unless it exited 0. Its stderr is read from
/// now on, on a task of its own, so a chatty client never blocks on a full stderr pipe while we are
/// busy with its stdin or stdout.
fn verdict(
    mut child: Child,
    name: &'static str,
) -> impl Future<Output = std::io::Result<()>> + Send + 'static {
    let mut stderr = child.stderr.take().expect("stderr is piped");
    let tail = tokio::spawn(async move {
        let mut tail = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = stderr.read(&mut buf).await {
            if n == 0 {
                break;
            }
            tail.extend_from_slice(&buf[..n]);
            if tail.len() > STDERR_TAIL {
                tail.drain(..tail.len() - STDERR_TAIL);
            }
        }
        tail
    });
    async move {
        let status = child.wait().await?;
        let tail = tail.await.unwrap_or_default();
        if status.success() {
            Ok(())
        } else {
            Err(std::io::Error::other(format!(
                "{name} failed ({status}): {}",
                String::from_utf8_lossy(&tail).trim()
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_cannot_be_options() {
        assert!(DbIdent::parse("wordpress").is_ok());
        assert!(DbIdent::parse("wp_store-00aa11").is_ok());
        for bad in [
            "",
            "-e",
            "--execute=DROP",
            "a b",
            "a;b",
            "a'b",
            &"x".repeat(65),
        ] {
            assert!(DbIdent::parse(bad).is_err(), "{bad:?}");
        }
    }
}
