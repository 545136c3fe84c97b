//! `storefleet serve`: connect, migrate, start the controller and the API, stop on SIGTERM/Ctrl-C.
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Patch, PatchParams};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Api, Client, CustomResourceExt, ResourceExt};

use crate::api::{self, AppState};
use crate::config::Config;
use crate::controller::{self, Context};
use crate::crd::Store;
use crate::helm::Helm;
use crate::metrics::Metrics;
use crate::storage::{Action, AuditEntry, Bootstrap, Database};
use crate::stores::StoreService;

pub async fn serve(config: Config) -> anyhow::Result<()> {
    // Kubeconfig as kubectl finds it ($KUBECONFIG, ~/.kube/config), else in-cluster.
    let client = Client::try_default()
        .await
        .context("no Kubernetes configuration found")?;
    if config.install_crd {
        install_crd(&client).await?;
    }
    let db = Database::connect(&config.database_url).await?;
    bootstrap_admin(&db, &config).await?;

    let metrics = Arc::new(Metrics::default());
    let mut values_files = vec![config.env_values_file()];
    values_files.extend(config.extra_values.iter().cloned());
    let helm = Helm::new(
        config.helm.clone(),
        config.chart.clone(),
        values_files,
        config.max_parallel,
    )
    .with_metrics(metrics.clone());
    let ctx = Arc::new(Context::new(
        client.clone(),
        helm,
        db.audit(),
        metrics.clone(),
        controller::Settings {
            instance: config.instance.clone(),
            urls: config.urls.clone(),
            provision_timeout: config.provision_timeout,
            store_access: config.store_access.clone(),
            workload_watch: config.workload_watch,
        },
    ));
    let (controller, cache) = controller::run(ctx);

    let stores = StoreService::new(
        Api::all(client.clone()),
        cache.clone(),
        config.instance.clone(),
        config.urls.clone(),
        config.max_stores,
        db.idempotency(),
        db.audit(),
    );
    let state = AppState {
        stores: Arc::new(stores),
        audit: db.audit(),
        users: db.users(),
        db,
        client,
        sessions: Arc::new(api::session::Sessions::new(
            config.urls.scheme == crate::config::UrlScheme::Https,
        )),
        wait_limit: config.wait_limit,
        metrics,
        cache,
        guard: Arc::new(api::guard::Guard::new(config.guard.clone())),
    };
    let app = api::router(state);
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("listening on {}", config.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(
        %addr,
        instance = %config.instance,
        workload_watch = config.workload_watch.as_str(),
        store_role = config.store_access.as_ref().map(|a| a.role.as_str()),
        "listening"
    );

    let server = tokio::spawn(async move {
        // Not `axum::serve`: it cannot limit header size or time (see `guard::listener`).
        api::guard::listener::serve(listener, app, shutdown_signal()).await
    });
    // The controller runs until SIGTERM/Ctrl-C, then finishes the reconciles under way.
    controller.await;
    tracing::info!("controller stopped");
    // Event streams never end by themselves: give open connections a moment, not forever.
    match tokio::time::timeout(Duration::from_secs(5), server).await {
        Ok(joined) => joined
            .context("the API server task")?
            .context("serving the API")?,
        Err(_) => tracing::info!("closing the remaining connections"),
    }
    Ok(())
}

/// The built-in admin can always sign in: with `--admin-token`, or with a token generated at first
/// start, printed once on stdout (never into the log) and kept only as a hash.
async fn bootstrap_admin(db: &Database, config: &Config) -> anyhow::Result<()> {
    let outcome = db
        .users()
        .bootstrap(config.admin_token.as_deref(), config.max_stores)
        .await
        .context("setting up the admin user")?;
    if let Bootstrap::Generated(token, token_id) = outcome {
        println!(
            "storefleet: bootstrap admin token (shown once): {}",
            token.expose()
        );
        db.audit()
            .record(AuditEntry {
                actor: "storefleet".into(),
                action: Action::TokenCreated,
                store_id: None,
                store_owner: None,
                outcome: "created".into(),
                detail: format!("bootstrap token {token_id} for admin, printed once at start"),
                remote_addr: None,
            })
            .await;
    }
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    tokio::select! { () = ctrl_c => {}, () = term => {} }
    tracing::info!("shutting down");
}

/// Server-side applies the CRD (forced: several processes may do this at once) and waits until the
/// API server serves it.
async fn install_crd(client: &Client) -> anyhow::Result<()> {
    let crds = Api::<CustomResourceDefinition>::all(client.clone());
    let crd = Store::crd();
    let name = crd.name_any();
    crds.patch(
        &name,
        &PatchParams::apply("storefleet").force(),
        &Patch::Apply(&crd),
    )
    .await
    .with_context(|| format!("applying CRD {name}"))?;
    tokio::time::timeout(
        Duration::from_secs(60),
        await_condition(crds, &name, conditions::is_crd_established()),
    )
    .await
    .with_context(|| format!("CRD {name} not Established within 60s"))?
    .with_context(|| format!("waiting for CRD {name}"))?;
    tracing::info!(crd = %name, "CRD installed");
    Ok(())
}
