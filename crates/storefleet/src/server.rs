//! `storefleet serve`: connect, migrate, start the controller and/or the API (`--component`), stop on
//! SIGTERM/Ctrl-C within seconds, whatever state the process is in.
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Patch, PatchParams};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Api, Client, CustomResourceExt, ResourceExt};

use kube::runtime::reflector::Store as StoreCache;

use crate::api::{self, AppState};
use crate::config::{Component, Config};
use crate::controller::{self, Context};
use crate::crd::Store;
use crate::dependencies::Dependencies;
use crate::helm::Helm;
use crate::leadership::Leadership;
use crate::metrics::Metrics;
use crate::storage::{Action, AuditEntry, Bootstrap, Database, Housekeeping};
use crate::store_feed::StoreFeed;
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
    let deps = Arc::new(Dependencies::default());
    let metrics = Arc::new(Metrics::new(crate::metrics::chart_version(&config.chart)));
    let mut tasks = tokio::task::JoinSet::new();
    {
        let (deps, client, db) = (deps.clone(), client.clone(), db.clone());
        tasks.spawn(async move { deps.keep_current(client, db).await });
    }

    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("listening on {}", config.listen))?;
    let addr = listener.local_addr()?;

    // Who runs the controllers: the Lease's holder, or this process alone (leader election off).
    let leadership = config
        .component
        .runs_controller()
        .then(|| match &config.leader_election {
            Some(settings) => Leadership::elect(client.clone(), settings, metrics.clone()),
            None => Leadership::always(metrics.clone()),
        });
    let (app, controller) = match config.component {
        Component::Api => (
            api_app(&config, &client, &db, &deps, &metrics, &mut tasks).await?,
            None,
        ),
        Component::Controller => {
            let leadership = leadership.clone().expect("runs the controller");
            let (controller, cache) =
                start_controller(&config, &client, &db, &deps, &metrics, leadership);
            let app = api::probes_router(api::ProbeState {
                metrics: metrics.clone(),
                deps: deps.clone(),
                cache,
                instance: config.instance.clone(),
            });
            (app, Some(controller))
        }
        Component::All => {
            let app = api_app(&config, &client, &db, &deps, &metrics, &mut tasks).await?;
            let leadership = leadership.clone().expect("runs the controller");
            let (controller, _cache) =
                start_controller(&config, &client, &db, &deps, &metrics, leadership);
            (app, Some(controller))
        }
    };
    tracing::info!(
        %addr,
        component = config.component.as_str(),
        instance = %config.instance,
        workload_watch = config.workload_watch.as_str(),
        leader_election = config.leader_election.is_some(),
        store_role = config.store_access.as_ref().map(|a| a.role.as_str()),
        mail_relay = config.mail.as_ref().map(|m| m.host.as_str()),
        "listening"
    );
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut server = tokio::spawn(async move {
        let mut stopped = stopped;
        // Not `axum::serve`: it cannot limit header size or time (see `guard::listener`).
        api::guard::listener::serve(listener, app, async move {
            let _ = stopped.wait_for(|s| *s).await;
        })
        .await
    });
    let controller = async move {
        match controller {
            Some(controller) => controller.await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        () = shutdown_signal() => {}
        () = controller => tracing::warn!("the controller stopped by itself"),
        joined = &mut server => {
            joined.context("the API server task")?.context("serving the API")?;
            return Ok(());
        }
    }
    // The controllers stopped with the select above (their helm processes killed on drop): hand
    // the Lease over first, so the next replica takes over while this one finishes its requests.
    if let Some(leadership) = &leadership {
        leadership.step_down().await;
    }
    // Drain: `/readyz` turns 503 at once, and the API keeps serving for the shutdown delay, while
    // the endpoints controller takes this pod out of the Service (until then kube-proxy still
    // sends it new connections, which a closed listener would refuse).
    deps.begin_shutdown();
    if !config.shutdown_delay.is_zero() {
        tracing::info!(
            delay_ms = config.shutdown_delay.as_millis() as u64,
            "draining: /readyz answers 503, requests are still served"
        );
        tokio::select! {
            () = tokio::time::sleep(config.shutdown_delay) => {}
            // A second signal ends the wait (an impatient operator, or a shorter grace period).
            () = shutdown_signal() => {}
        }
    }
    // Stop accepting; requests under way get a moment. Event streams never end by themselves, and
    // reconciles under way are safe to cut (a helm release left pending is unlocked at the next
    // start): SIGTERM ends the process within seconds whatever it was doing.
    let _ = stop.send(true);
    tasks.abort_all();
    match tokio::time::timeout(SHUTDOWN_GRACE, &mut server).await {
        Ok(joined) => joined
            .context("the API server task")?
            .context("serving the API")?,
        Err(_) => tracing::info!("closing the remaining connections"),
    }
    Ok(())
}

/// How long a stopping process waits for requests under way.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// The API side: its own watch of Stores (one, feeding every event stream), the stores service, the
/// admin bootstrap, the router.
async fn api_app(
    config: &Config,
    client: &Client,
    db: &Database,
    deps: &Arc<Dependencies>,
    metrics: &Arc<Metrics>,
    tasks: &mut tokio::task::JoinSet<()>,
) -> anyhow::Result<axum::Router> {
    bootstrap_admin(db, config).await?;
    // The API side keeps the database within its bounds (one housekeeper, also with two containers).
    let retention = Housekeeping::new(db.clone(), config.retention.clone(), metrics.clone());
    tasks.spawn(retention.run());
    let (feed, watch) = StoreFeed::start(client.clone(), &config.instance, deps.clone());
    tasks.spawn(watch);
    let cache = feed.cache();
    let stores = StoreService::new(
        client.clone(),
        config.plans.clone(),
        feed,
        config.instance.clone(),
        config.urls.clone(),
        config.max_stores,
        db.clone(),
        config.retention.idempotency_ttl,
    )
    .with_pool(config.pool.clone(), metrics.clone());
    let sessions = Arc::new(api::session::Sessions::new(
        db.sessions(),
        config.urls.scheme == crate::config::UrlScheme::Https,
    ));
    let streams = api::streams::Streams::new(config.guard.streams);
    tasks.spawn(streams.clone().keep_sweeping(db.users(), sessions.clone()));
    let stores = Arc::new(stores);
    let domains = crate::domains::DomainService::new(
        client.clone(),
        stores.clone(),
        db.audit(),
        config.domains.clone(),
    );
    let state = AppState {
        stores,
        domains: Arc::new(domains),
        audit: db.audit(),
        users: db.users(),
        db: db.clone(),
        client: client.clone(),
        sessions,
        wait_limit: config.wait_limit,
        metrics: metrics.clone(),
        cache,
        guard: Arc::new(api::guard::Guard::new(config.guard.clone())),
        streams,
        deps: deps.clone(),
        storefronts: Arc::new(crate::storefront::Storefronts::new(
            client.clone(),
            config.urls.clone(),
            crate::storefront::Checker::default(),
        )),
        backups: Arc::new(crate::backups::service::BackupService::new(
            client.clone(),
            config.instance.clone(),
            config.backups_offered,
        )),
        restores: Arc::new(crate::backups::restores::service::RestoreService::new(
            client.clone(),
            config.instance.clone(),
            config.backups_offered,
        )),
        backup_policy: Arc::new(config.backup_policy.clone()),
    };
    Ok(api::router(state))
}

/// The controller side: waits for the CRD (a controller without it would only fail, loudly, in a
/// loop), then reconciles while this process leads (`leadership`). Each term builds the controller
/// afresh: nothing carried over from an earlier term can act on what another leader changed since.
/// Answers the future that runs it and the current term's cache of Stores.
fn start_controller(
    config: &Config,
    client: &Client,
    db: &Database,
    deps: &Arc<Dependencies>,
    metrics: &Arc<Metrics>,
    leadership: Arc<Leadership>,
) -> (
    std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
    api::ControllerCache,
) {
    let slot: api::ControllerCache = Arc::new(std::sync::RwLock::new(
        kube::runtime::reflector::store::Writer::<Store>::default().as_reader(),
    ));
    let (config, client, db, deps, metrics) = (
        config.clone(),
        client.clone(),
        db.clone(),
        deps.clone(),
        metrics.clone(),
    );
    let term_slot = slot.clone();
    let controller = async move {
        deps.crd_served().await;
        if config.component == Component::Controller && config.leader_election.is_some() {
            // A standby has no watch to sync and is as ready as the leader: it takes over when
            // needed, and its pod must stay in the Service (the API container beside it serves).
            deps.store_watch_synced();
        }
        leadership
            .run_while_leading("the store controller and fleet rollouts", || {
                let (run, cache) = controller_term(&config, &client, &db, &metrics);
                *term_slot.write().expect("not poisoned") = cache.clone();
                let deps = deps.clone();
                let component = config.component;
                async move {
                    tracing::info!("starting the controller");
                    if component == Component::Controller {
                        // This process has no API-side watch: its readiness follows the controller's own.
                        tokio::spawn(async move {
                            if cache.wait_until_ready().await.is_ok() {
                                deps.store_watch_synced();
                            }
                        });
                    }
                    run.await;
                }
            })
            .await;
    };
    (Box::pin(controller), slot)
}

/// One term's controllers: the store controller and, beside it, the fleet rollouts of this
/// instance (they change Stores; it releases them).
fn controller_term(
    config: &Config,
    client: &Client,
    db: &Database,
    metrics: &Arc<Metrics>,
) -> (
    impl std::future::Future<Output = ()> + Send + use<>,
    StoreCache<Store>,
) {
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
            mail: config.mail.clone(),
            backup_egress: config.backups.as_ref().and_then(|b| b.egress.clone()),
            plans: config.plans.clone(),
        },
    ));
    let (run, cache) = controller::run(ctx.clone());
    // The warm pool's refill, beside them (it makes Stores; the store controller provisions them).
    let pool = crate::pool::controller::run(
        client.clone(),
        db.clone(),
        cache.clone(),
        crate::pool::controller::Settings {
            instance: config.instance.clone(),
            targets: config.pool.clone(),
            max_stores: config.max_stores,
            provision_timeout: config.provision_timeout,
        },
        metrics.clone(),
    );
    // The fleet rollouts of this instance, beside the store controller (they change Stores; it
    // releases them).
    // The domains' states, beside them too (they read Stores and claims, and change neither's spec).
    let domains = crate::domains::controller::Settings {
        instance: config.instance.clone(),
        public_addresses: config.public_addresses.clone(),
        tls: config.urls.scheme == crate::config::UrlScheme::Https,
    };
    let domain_client = client.clone();
    // With a backup target, rollouts back each store up before upgrading it.
    let rollout_backups = config.backups.is_some().then(|| {
        crate::backups::service::BackupService::new(client.clone(), config.instance.clone(), true)
    });
    // And the backups and restores of this instance, when the platform has a backup target.
    let backups = config.backups.clone().map(|platform| {
        let restores = crate::backups::restores::controller::run(
            client.clone(),
            config.instance.clone(),
            platform.clone(),
        );
        let backups = crate::backups::controller::run(
            client.clone(),
            config.instance.clone(),
            platform,
            metrics.clone(),
        );
        let service = || {
            crate::backups::service::BackupService::new(
                client.clone(),
                config.instance.clone(),
                true,
            )
        };
        // Schedules and retention; the final backup of a store asked to go.
        let scheduler = crate::backups::scheduler::run(
            client.clone(),
            config.instance.clone(),
            config.backup_policy.clone(),
            service(),
            db.audit(),
        );
        let safety_net = crate::backups::safety_net::run(
            client.clone(),
            config.instance.clone(),
            service(),
            db.audit(),
        );
        let clones =
            crate::backups::clones::controller::run(client.clone(), config.instance.clone());
        async move {
            tokio::join!(backups, restores, scheduler, safety_net, clones);
        }
    });
    let run = async move {
        let backups = async move {
            match backups {
                Some(b) => b.await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = run => {},
            () = crate::rollouts::controller::run(ctx, rollout_backups) => {},
            () = crate::domains::controller::run(domain_client, domains) => {},
            () = pool => {},
            () = backups => {},
        }
    };
    (run, cache)
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
    install_one_crd(client, crate::rollouts::StoreRollout::crd()).await?;
    install_one_crd(client, crate::domains::DomainClaim::crd()).await?;
    install_one_crd(client, crate::backups::StoreBackup::crd()).await?;
    install_one_crd(client, crate::backups::restores::StoreRestore::crd()).await?;
    install_one_crd(client, Store::crd()).await
}

async fn install_one_crd(client: &Client, crd: CustomResourceDefinition) -> anyhow::Result<()> {
    let crds = Api::<CustomResourceDefinition>::all(client.clone());
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
