//! Per-pod memory of the stand-in: when a pod was first seen (for the ready delay) and which pod IP it
//! holds. IPs already reported in pod statuses count as taken, so a restarted stand-in never hands out
//! an IP twice.

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use tokio::time::Instant;

/// Pod IPs come from 10.244.0.0/16, the usual pod network of a one-node test cluster.
const NETWORK: u32 = u32::from_be_bytes([10, 244, 0, 0]);
const HOSTS: u32 = (1 << 16) - 2; // .0.1 ..= .255.254

#[derive(Default)]
pub struct PodBook {
    first_seen: HashMap<String, Instant>,
    ips: HashMap<String, Ipv4Addr>,
    cursor: u32,
}

fn in_network(ip: Ipv4Addr) -> bool {
    u32::from(ip) >> 16 == NETWORK >> 16
}

fn reported_ip(pod: &Pod) -> Option<Ipv4Addr> {
    let ip = pod.status.as_ref()?.pod_ip.as_ref()?.parse().ok()?;
    in_network(ip).then_some(ip)
}

impl PodBook {
    /// When the stand-in first saw this pod.
    pub fn first_seen(&mut self, uid: &str) -> Instant {
        *self
            .first_seen
            .entry(uid.to_owned())
            .or_insert_with(Instant::now)
    }

    /// The pod's IP: the one it reports, the one it was given, or a free one. `None` when all are taken.
    /// `pods` are all pods on the node as the watch sees them.
    pub fn ip_for(&mut self, pod: &Pod, pods: &[Arc<Pod>]) -> Option<Ipv4Addr> {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        if let Some(ip) = reported_ip(pod) {
            self.ips.insert(uid, ip);
            return Some(ip);
        }
        if let Some(ip) = self.ips.get(&uid) {
            return Some(*ip);
        }
        self.forget_gone(pods);
        let taken: HashSet<Ipv4Addr> = pods
            .iter()
            .filter_map(|p| reported_ip(p))
            .chain(self.ips.values().copied())
            .collect();
        for _ in 0..HOSTS {
            self.cursor = self.cursor % HOSTS + 1;
            let ip = Ipv4Addr::from(NETWORK + self.cursor);
            if !taken.contains(&ip) {
                self.ips.insert(uid, ip);
                return Some(ip);
            }
        }
        None
    }

    /// Drops what it knows about pods that no longer exist.
    fn forget_gone(&mut self, pods: &[Arc<Pod>]) {
        let live: HashSet<&str> = pods
            .iter()
            .filter_map(|p| p.metadata.uid.as_deref())
            .collect();
        self.first_seen.retain(|uid, _| live.contains(uid.as_str()));
        self.ips.retain(|uid, _| live.contains(uid.as_str()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(uid: &str, ip: Option<&str>) -> Arc<Pod> {
        Arc::new(
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": uid, "uid": uid},
                "status": {"podIP": ip},
            }))
            .unwrap(),
        )
    }

    #[test]
    fn ips_are_unique_and_respect_reported_ones() {
        let mut book = PodBook::default();
        let old = pod("old", Some("10.244.0.1"));
        let (a, b) = (pod("a", None), pod("b", None));
        let all = vec![old.clone(), a.clone(), b.clone()];
        assert_eq!(book.ip_for(&old, &all), Some(Ipv4Addr::new(10, 244, 0, 1)));
        let ia = book.ip_for(&a, &all).unwrap();
        let ib = book.ip_for(&b, &all).unwrap();
        assert!(
            ia != ib && ia != Ipv4Addr::new(10, 244, 0, 1) && ib != Ipv4Addr::new(10, 244, 0, 1)
        );
        assert_eq!(book.ip_for(&a, &all), Some(ia), "stable per pod");
    }
}
