//! The OpenAPI document fuzzed against the real `storefleet serve`: schemathesis (pinned, installed by
//! `scripts/schemathesis`) generates requests for every operation from `GET /openapi.json`, valid and
//! invalid, follows links between them (create, read, delete stores), and fails on any 5xx and on any
//! answer whose status, content type or body the document does not describe. Settings:
//! `tests/fuzz/schemathesis.toml`; more examples or another seed: `STOREFLEET_FUZZ_EXAMPLES`,
//! `STOREFLEET_FUZZ_SEED`.
mod support;

use reqwest::StatusCode;
use std::path::{Path, PathBuf};
use support::{Options, Server};

/// Fixed, so that a failure can be reproduced; `STOREFLEET_FUZZ_SEED` picks another.
const SEED: &str = "20240611";

fn schemathesis() -> PathBuf {
    let path = std::env::var_os("STOREFLEET_SCHEMATHESIS")
        .map(PathBuf::from)
        .or_else(|| {
            // Where scripts/schemathesis installs it, for a run without scripts/test.
            let cache = std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))?;
            Some(cache.join("storefleet/schemathesis/bin/schemathesis"))
        })
        .filter(|p| p.is_file());
    path.unwrap_or_else(|| {
        panic!(
            "schemathesis is not installed: run `export STOREFLEET_SCHEMATHESIS=$(scripts/schemathesis)` \
             (scripts/test does this)"
        )
    })
}

#[tokio::test]
async fn the_openapi_document_holds_under_fuzzing() {
    let exe = schemathesis();
    let server = Server::start(
        "fuzz",
        Options {
            // The fuzzer really creates stores; a few are enough to reach every answer.
            max_stores: 3,
            // `POST /stores?wait=true` is fuzzed too: it answers 202 after this at the latest.
            wait_limit: "3s",
            // The fuzzer is one client sending hundreds of requests a second; 429s would hide the
            // answers under test (the rate limits have their own tests).
            extra_args: [
                "--rate-limit-reads",
                "0",
                "--rate-limit-writes",
                "0",
                "--auth-failures-per-minute",
                "0",
            ]
            .map(String::from)
            .to_vec(),
            ..Options::default()
        },
    )
    .await;
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fuzz/schemathesis.toml");
    let seed = std::env::var("STOREFLEET_FUZZ_SEED").unwrap_or_else(|_| SEED.into());
    let mut args: Vec<String> = vec![
        "--config-file".into(),
        config.display().to_string(),
        "run".into(),
        server.url("/openapi.json"),
        "--seed".into(),
        seed.clone(),
    ];
    if let Ok(n) = std::env::var("STOREFLEET_FUZZ_EXAMPLES") {
        args.extend(["--max-examples".into(), n]);
    }
    // Its working directory takes whatever it writes (reports, caches).
    let workdir = tempfile::tempdir().unwrap();
    let output = tokio::process::Command::new(exe)
        .args(&args)
        // The token goes through the environment (the config file reads it), never the command line.
        .env("STOREFLEET_FUZZ_TOKEN", &server.token)
        .env("NO_COLOR", "1")
        .current_dir(workdir.path())
        .output()
        .await
        .expect("running schemathesis");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "schemathesis found problems (seed {seed}; {}):\n{report}",
        output.status
    );
    eprintln!("{report}");

    // The server survived it, and what the fuzzer created goes away through the API.
    server.assert_healthy().await;
    for store in server.cluster_stores().await {
        let id = store.metadata.name.unwrap();
        let (status, body) = server.delete_store(&id).await;
        assert!(
            status == StatusCode::ACCEPTED || status == StatusCode::NOT_FOUND,
            "DELETE {id}: {status} {body}"
        );
        server.wait_gone(&id).await;
    }
    assert!(server.cluster_stores().await.is_empty());
    assert!(server.cluster_namespaces().await.is_empty());
}
