//! A domain's state from what the controller saw: pure, so every case is a unit test. The order is
//! the order a shop owner works in: DNS first (they point the name at the platform), then the
//! certificate (cert-manager's HTTP-01 challenge needs that DNS), then active.
use std::net::IpAddr;

use super::types::DomainState;

/// What resolving the domain gave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Dns {
    /// The platform has no public address setting: DNS is not checked (a laptop, a test cluster).
    NotChecked,
    Resolved(Vec<IpAddr>),
    /// No such name, no answer, or a timeout (the resolver's words).
    Failed(String),
}

/// The domain's cert-manager `Certificate` in the store's namespace, as its conditions say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Certificate {
    /// TLS is off: the domain needs none.
    NotNeeded,
    /// No such object (yet: the release makes it), or cert-manager is not installed.
    Missing,
    Issued,
    /// Being issued; the Ready condition's message.
    Pending(String),
    /// cert-manager gave up for now (`status.lastFailureTime`); the Ready condition's message.
    Failed(String),
}

/// The state and the message a human reads with it.
pub fn decide(public: &[IpAddr], dns: &Dns, certificate: &Certificate) -> (DomainState, String) {
    let dns_note = match dns {
        Dns::NotChecked => Some("DNS not checked (the platform has no --public-address)"),
        _ => None,
    };
    if !public.is_empty() {
        match dns {
            Dns::NotChecked => {}
            Dns::Failed(why) => {
                return (
                    DomainState::WaitingForDns,
                    format!(
                        "the name does not resolve ({why}); point it at {}",
                        list(public)
                    ),
                );
            }
            // Every address must be the platform's: one that is not would send some visitors
            // elsewhere, and the certificate's HTTP-01 challenge would fail half the time.
            Dns::Resolved(found)
                if found.is_empty() || found.iter().any(|a| !public.contains(a)) =>
            {
                return (
                    DomainState::WaitingForDns,
                    format!(
                        "the name resolves to {}; point it at {} only",
                        if found.is_empty() {
                            "nothing".to_owned()
                        } else {
                            list(found)
                        },
                        list(public)
                    ),
                );
            }
            Dns::Resolved(_) => {}
        }
    }
    let with_note = |m: &str| match dns_note {
        Some(note) => format!("{m}; {note}"),
        None => m.to_owned(),
    };
    match certificate {
        Certificate::NotNeeded => (DomainState::Active, with_note("served over HTTP")),
        Certificate::Issued => (
            DomainState::Active,
            with_note("served over HTTPS, certificate issued"),
        ),
        Certificate::Missing => (
            DomainState::CertificatePending,
            with_note(
                "waiting for the domain's Certificate (the release makes it; cert-manager must be installed)",
            ),
        ),
        Certificate::Pending(why) => (
            DomainState::CertificatePending,
            with_note(&format!("certificate being issued: {why}")),
        ),
        Certificate::Failed(why) => (
            DomainState::Failed,
            with_note(&format!("certificate not issued: {why}")),
        ),
    }
}

fn list(addresses: &[IpAddr]) -> String {
    addresses
        .iter()
        .map(IpAddr::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn dns_first_then_the_certificate() {
        let public = [ip("203.0.113.7")];
        let right = Dns::Resolved(vec![ip("203.0.113.7")]);
        let (state, msg) = decide(
            &public,
            &Dns::Failed("NXDOMAIN".into()),
            &Certificate::Issued,
        );
        assert_eq!(state, DomainState::WaitingForDns);
        assert!(
            msg.contains("203.0.113.7") && msg.contains("NXDOMAIN"),
            "{msg}"
        );
        let (state, msg) = decide(
            &public,
            &Dns::Resolved(vec![ip("203.0.113.7"), ip("198.51.100.1")]),
            &Certificate::Issued,
        );
        assert_eq!(state, DomainState::WaitingForDns);
        assert!(msg.contains("198.51.100.1"), "{msg}");
        assert_eq!(
            decide(&public, &Dns::Resolved(vec![]), &Certificate::Issued).0,
            DomainState::WaitingForDns
        );
        assert_eq!(
            decide(&public, &right, &Certificate::Missing).0,
            DomainState::CertificatePending
        );
        assert_eq!(
            decide(&public, &right, &Certificate::Pending("Issuing".into())).0,
            DomainState::CertificatePending
        );
        let (state, msg) = decide(&public, &right, &Certificate::Failed("rate limited".into()));
        assert_eq!(state, DomainState::Failed);
        assert!(msg.contains("rate limited"));
        assert_eq!(
            decide(&public, &right, &Certificate::Issued).0,
            DomainState::Active
        );
        assert_eq!(
            decide(&public, &right, &Certificate::NotNeeded).0,
            DomainState::Active
        );
    }

    #[test]
    fn without_a_public_address_dns_is_not_checked_and_says_so() {
        let (state, msg) = decide(&[], &Dns::NotChecked, &Certificate::NotNeeded);
        assert_eq!(state, DomainState::Active);
        assert!(msg.contains("not checked"), "{msg}");
    }
}
