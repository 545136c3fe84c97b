//! The real PostgreSQL server of the tests: `scripts/test` starts one (`scripts/postgres start`) and
//! exports its superuser URL as `STOREFLEET_TEST_POSTGRES_URL`; each test takes a fresh database on it,
//! so tests run in parallel without seeing each other's rows.
use sqlx::Connection;

pub const URL_VAR: &str = "STOREFLEET_TEST_POSTGRES_URL";

/// The URL of a new, empty database on the test server. No server: a panic that says what to run.
pub async fn fresh_database() -> String {
    let admin = std::env::var(URL_VAR).unwrap_or_else(|_| {
        panic!(
            "no PostgreSQL: run `export {URL_VAR}=$(scripts/postgres start /tmp/storefleet-pg)` first \
             (scripts/test does; it installs Debian's postgresql once)"
        )
    });
    let name = format!("sf_{}{}", crate::random_suffix(), crate::random_suffix());
    let mut conn = sqlx::PgConnection::connect(&admin)
        .await
        .unwrap_or_else(|e| panic!("connecting to the test PostgreSQL ({URL_VAR}={admin}): {e}"));
    // `name` is ours (sf_ and hex), not input: a statement cannot take a database name as a parameter.
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
    conn.close().await.ok();
    let (base, _) = admin
        .rsplit_once('/')
        .expect("a postgres:// URL ends in /<database>");
    format!("{base}/{name}")
}
