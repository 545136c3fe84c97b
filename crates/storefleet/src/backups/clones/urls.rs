//! The clone's last step: WP-CLI's `search-replace` moves the site's URLs from the backed-up
//! store's address to the clone's, in every table of the store's prefix, serialized PHP values
//! included (WP-CLI unserializes, replaces and serializes them again; a plain SQL `REPLACE` would
//! break their lengths).
//!
//! It runs as a Job built from the store's own WP-CLI CronJob (`charts/store`'s `cronjob.yaml`):
//! the same image (the chart's setup image, with WP-CLI), environment (database settings from the
//! store's Secret), volumes, security contexts and labels (which the store's NetworkPolicies let
//! reach MariaDB), so nothing about the store's WordPress is guessed here. Only the command
//! changes, an argv vector: the URLs never pass through a shell.
//!
//! The argv follows WP-CLI's synopsis in wp-cli/search-replace-command (README.md, "wp
//! search-replace <old> <new> [<table>...] ... [--all-tables-with-prefix] ... [--skip-columns=
//! <columns>] ... [--report-changed-only]"). `guid` is skipped as WP-CLI's own docs advise: a
//! post's GUID is its permanent id, not a link.
use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, ListParams};
use kube::{Api, Client};

use crate::backups::job::LABEL_RESTORE;

/// The WordPress root in the chart's WP-CLI pods.
const WORDPRESS_ROOT: &str = "/var/www/html";

/// The argv that moves `from` to `to` (both as [`super::site_path`] gives them).
pub fn argv(from: &str, to: &str) -> Vec<String> {
    vec![
        "wp".into(),
        "search-replace".into(),
        from.into(),
        to.into(),
        "--all-tables-with-prefix".into(),
        "--skip-columns=guid".into(),
        "--report-changed-only".into(),
        format!("--path={WORDPRESS_ROOT}"),
    ]
}

/// The pod template of the store's WP-CLI CronJob in `namespace`, `None` when it has none. Read as
/// `batch/v1`, or `batch/v1beta1` where the cluster serves only that (Kubernetes 1.20, as the chart
/// renders it there); the pod template is the same in both.
pub async fn cron_pod(client: &Client, namespace: &str) -> kube::Result<Option<PodTemplateSpec>> {
    for version in ["v1", "v1beta1"] {
        let resource = ApiResource::from_gvk(&GroupVersionKind::gvk("batch", version, "CronJob"));
        let api = Api::<DynamicObject>::namespaced_with(client.clone(), namespace, &resource);
        let crons = match api
            .list(&ListParams::default().labels("app.kubernetes.io/component=cron"))
            .await
        {
            Ok(list) => list.items,
            // This version is not served here: try the older one.
            Err(kube::Error::Api(e)) if e.code == 404 => continue,
            Err(e) => return Err(e),
        };
        return Ok(crons.into_iter().find_map(|c| {
            serde_json::from_value(c.data["spec"]["jobTemplate"]["spec"]["template"].clone()).ok()
        }));
    }
    Ok(None)
}

/// The Job `name` in `namespace`, from the pod template of the store's WP-CLI CronJob.
pub fn job(
    cron_pod: &PodTemplateSpec,
    namespace: &str,
    name: &str,
    owner: OwnerReference,
    from: &str,
    to: &str,
) -> Result<Job, String> {
    let mut template = cron_pod.clone();
    let pod = template
        .spec
        .as_mut()
        .ok_or("the store's WP-CLI CronJob has no pod spec")?;
    let container = pod
        .containers
        .first_mut()
        .ok_or("the store's WP-CLI CronJob has no container")?;
    container.name = "search-replace".into();
    container.command = Some(argv(from, to));
    container.args = None;
    container.working_dir = Some(WORDPRESS_ROOT.into());
    pod.restart_policy = Some("Never".into());
    // The CronJob's pods must run beside WordPress's (a ReadWriteOnce volume); during a clone
    // WordPress is stopped, so that rule could never be met, and the volume is free anyway.
    if let Some(affinity) = pod.affinity.as_mut() {
        affinity.pod_affinity = None;
    }
    let mut labels: BTreeMap<String, String> = template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    labels.insert(LABEL_RESTORE.into(), name.into());
    let meta = template.metadata.get_or_insert_with(Default::default);
    meta.labels = Some(labels.clone());
    Ok(Job {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(namespace.into()),
            labels: Some(labels),
            owner_references: Some(vec![owner]),
            ..Default::default()
        },
        spec: Some(JobSpec {
            backoff_limit: Some(0),
            active_deadline_seconds: Some(1800),
            template,
            ..Default::default()
        }),
        status: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pod template of charts/store's cronjob.yaml, its parts this Job relies on.
    fn cron() -> PodTemplateSpec {
        serde_json::from_value(serde_json::json!({
            "metadata": {"labels": {"app.kubernetes.io/component": "cron"}},
            "spec": {
                "restartPolicy": "Never",
                "affinity": {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                    {"labelSelector": {"matchLabels": {"app.kubernetes.io/component": "wordpress"}},
                     "topologyKey": "kubernetes.io/hostname"}
                ]}},
                "containers": [{
                    "name": "wp-cron",
                    "image": "wordpress:cli-2.12.0-php8.3",
                    "command": ["/bin/sh", "/opt/storefleet/cron.sh"],
                    "env": [{"name": "WORDPRESS_DB_HOST", "value": "db"}]
                }]
            }
        }))
        .unwrap()
    }

    #[test]
    fn the_job_is_the_cron_pod_with_the_search_replace_argv() {
        let owner = OwnerReference {
            api_version: "storefleet.dev/v1alpha1".into(),
            kind: "StoreRestore".into(),
            name: "restore-x".into(),
            uid: "u".into(),
            ..Default::default()
        };
        let from = "//old.example; rm -rf /";
        let j = job(
            &cron(),
            "store-abc123",
            "restore-x-urls",
            owner,
            from,
            "//new.example",
        )
        .unwrap();
        let pod = j.spec.unwrap().template;
        assert!(
            pod.spec
                .as_ref()
                .unwrap()
                .affinity
                .as_ref()
                .unwrap()
                .pod_affinity
                .is_none(),
            "WordPress is stopped: no affinity to its pods"
        );
        let labels = pod.metadata.unwrap().labels.unwrap();
        assert_eq!(labels["app.kubernetes.io/component"], "cron");
        assert_eq!(labels[LABEL_RESTORE], "restore-x-urls");
        let c = &pod.spec.unwrap().containers[0];
        assert_eq!(c.image.as_deref(), Some("wordpress:cli-2.12.0-php8.3"));
        assert_eq!(c.env.as_ref().unwrap()[0].name, "WORDPRESS_DB_HOST");
        let command = c.command.clone().unwrap();
        assert_eq!(
            &command[..4],
            ["wp", "search-replace", from, "//new.example"]
        );
        assert_eq!(j.metadata.namespace.as_deref(), Some("store-abc123"));
    }

    #[test]
    fn a_cron_job_without_a_pod_is_refused() {
        let mut c = cron();
        c.spec = None;
        assert!(job(&c, "ns", "x", OwnerReference::default(), "//a", "//b").is_err());
    }
}
