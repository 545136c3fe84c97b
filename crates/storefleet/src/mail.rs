//! Store mail: the platform's SMTP relay, parsed from `storefleet serve` flags into newtypes.
//!
//! Stores send through it with the must-use plugin of the store chart (`files/mu-plugins/`); the
//! controller passes the relay in the store's values (host, port, TLS mode, CIDR, From) and its login
//! in a Secret of the store namespace (`controller/mail.rs`), never in values.
use std::fmt;
use std::net::IpAddr;
use std::path::Path;

use anyhow::{Context, bail, ensure};
use serde::Serialize;

use crate::cidr::Cidr;

/// The relay's host name or IP address (what PHPMailer connects to, and checks a certificate against).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SmtpHost(String);

impl SmtpHost {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        if crate::config::is_dns_name(raw) || raw.parse::<IpAddr>().is_ok() {
            Ok(Self(raw.to_ascii_lowercase()))
        } else {
            Err(format!("{raw:?} is neither a DNS name nor an IP address"))
        }
    }

    pub fn ip(&self) -> Option<IpAddr> {
        self.0.parse().ok()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// How the connection to the relay is protected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain SMTP (a relay inside a trusted network, or a test server).
    None,
    /// Plain connection upgraded with STARTTLS, refused if the relay does not offer it (port 587).
    Starttls,
    /// TLS from the first byte, "SMTPS" (port 465).
    Tls,
}

impl SmtpTls {
    pub fn as_str(self) -> &'static str {
        match self {
            SmtpTls::None => "none",
            SmtpTls::Starttls => "starttls",
            SmtpTls::Tls => "tls",
        }
    }
}

/// A mailbox address for `From:` (`local@domain`). Deliberately strict: it ends up in a mail header
/// and in an SMTP `MAIL FROM`, so no spaces, no angle brackets, no line breaks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EmailAddress(String);

impl EmailAddress {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        let bad = || format!("{raw:?} is not an e-mail address (`local@domain`)");
        let (local, domain) = raw.rsplit_once('@').ok_or_else(bad)?;
        let local_ok = !local.is_empty()
            && local.len() <= 64
            && local
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~.".contains(&b))
            && !local.starts_with('.')
            && !local.ends_with('.')
            && !local.contains("..");
        if !local_ok || !domain.contains('.') || SmtpHost::parse(domain).is_err() {
            return Err(bad());
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The display name of `From:`; any text but control characters (a line break would be a header
/// injection), at most 100 characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FromName(String);

impl FromName {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let name = raw.trim();
        if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
            return Err(format!(
                "{raw:?}: a From name is 1 to 100 characters without control characters"
            ));
        }
        Ok(Self(name.to_owned()))
    }
}

/// The relay's login. The password stays out of `Debug` and out of every values file.
#[derive(Clone, PartialEq, Eq)]
pub struct SmtpLogin {
    pub username: String,
    pub password: String,
}

impl fmt::Debug for SmtpLogin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpLogin")
            .field("username", &self.username)
            .field("password", &"<hidden>")
            .finish()
    }
}

/// The platform's SMTP relay, as every store gets it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MailRelay {
    pub host: SmtpHost,
    pub port: u16,
    pub tls: SmtpTls,
    /// What the store's egress NetworkPolicy opens (with `port`).
    pub cidr: Cidr,
    pub from: EmailAddress,
    /// `None`: each store's own title.
    pub from_name: Option<FromName>,
    /// `None`: the relay takes mail without a login (allowed by address).
    pub login: Option<SmtpLogin>,
}

/// The raw `--smtp-*` flags (cli.rs), before they are checked together.
#[derive(Debug, Default)]
pub struct RelayFlags {
    pub host: Option<String>,
    pub port: u16,
    pub tls: Option<SmtpTls>,
    pub cidr: Option<String>,
    pub from: Option<String>,
    pub from_name: Option<String>,
    pub username: Option<String>,
    pub password_file: Option<std::path::PathBuf>,
}

impl MailRelay {
    /// `None` without `--smtp-host`: stores then say `MailConfigured=False/NoRelay`.
    pub fn from_flags(flags: RelayFlags) -> anyhow::Result<Option<Self>> {
        let Some(host) = flags.host.filter(|h| !h.trim().is_empty()) else {
            ensure!(
                flags.cidr.is_none()
                    && flags.from.is_none()
                    && flags.username.is_none()
                    && flags.password_file.is_none(),
                "--smtp-relay-cidr, --mail-from, --smtp-username and --smtp-password-file need --smtp-host"
            );
            return Ok(None);
        };
        let host = SmtpHost::parse(&host).map_err(|e| anyhow::anyhow!("--smtp-host {e}"))?;
        ensure!(flags.port != 0, "--smtp-port must be 1 to 65535");
        // NetworkPolicy names addresses, not host names: a relay given by name needs its range
        // (resolving it here would freeze whatever DNS said at start, and hide a provider's change).
        let cidr = match (flags.cidr, host.ip()) {
            (Some(raw), ip) => {
                let cidr =
                    Cidr::parse(&raw).map_err(|e| anyhow::anyhow!("--smtp-relay-cidr {e}"))?;
                if let Some(ip) = ip {
                    ensure!(
                        cidr.contains(ip),
                        "--smtp-relay-cidr {cidr} does not contain --smtp-host {ip}"
                    );
                }
                cidr
            }
            (None, Some(ip)) => Cidr::host(ip),
            (None, None) => bail!(
                "--smtp-host {} is a name: give the addresses it resolves to with --smtp-relay-cidr \
                 (the stores' NetworkPolicy opens exactly that range and port)",
                host.as_str()
            ),
        };
        let from = flags
            .from
            .context("--mail-from (the From address of every store's mail) goes with --smtp-host")
            .and_then(|f| {
                EmailAddress::parse(&f).map_err(|e| anyhow::anyhow!("--mail-from {e}"))
            })?;
        let from_name = flags
            .from_name
            .filter(|n| !n.trim().is_empty())
            .map(|n| FromName::parse(&n).map_err(|e| anyhow::anyhow!("--mail-from-name {e}")))
            .transpose()?;
        let tls = flags.tls.unwrap_or(SmtpTls::Starttls);
        let login = match (
            flags.username.filter(|u| !u.is_empty()),
            flags.password_file,
        ) {
            (Some(username), Some(file)) => Some(SmtpLogin {
                username,
                password: read_password(&file)?,
            }),
            (None, None) => None,
            _ => bail!("--smtp-username and --smtp-password-file go together"),
        };
        ensure!(
            login.is_none() || tls != SmtpTls::None,
            "--smtp-tls none with a login would send the relay's password in clear text: use starttls or tls"
        );
        Ok(Some(Self {
            host,
            port: flags.port,
            tls,
            cidr,
            from,
            from_name,
            login,
        }))
    }

    /// What the store chart gets under `mail` (no password: see [`StoreMailValues`]).
    pub fn values(&self, credentials_secret: Option<String>) -> StoreMailValues {
        StoreMailValues {
            relay: RelayValues {
                host: self.host.as_str().to_owned(),
                port: self.port,
                tls: self.tls,
                cidr: self.cidr.to_string(),
                credentials_secret: credentials_secret.unwrap_or_default(),
            },
            from: FromValues {
                address: self.from.as_str().to_owned(),
                name: self
                    .from_name
                    .as_ref()
                    .map(|n| n.0.clone())
                    .unwrap_or_default(),
            },
        }
    }

    /// One line for the store's `MailConfigured` condition.
    pub fn describe(&self) -> String {
        let tls = match self.tls {
            SmtpTls::None => "no TLS",
            SmtpTls::Starttls => "STARTTLS",
            SmtpTls::Tls => "TLS",
        };
        let login = if self.login.is_some() {
            "with a login"
        } else {
            "without a login"
        };
        format!(
            "mail goes through the SMTP relay {}:{} ({tls}, {login}) from {}",
            self.host.as_str(),
            self.port,
            self.from.as_str()
        )
    }
}

/// The password file's content without a trailing line break (`echo pw > file` writes one).
fn read_password(path: &Path) -> anyhow::Result<String> {
    let raw = std::fs::read_to_string(path)
        .with_context(|| format!("--smtp-password-file {}", path.display()))?;
    let password = raw.trim_end_matches(['\r', '\n']).to_owned();
    ensure!(
        !password.is_empty(),
        "--smtp-password-file {} is empty",
        path.display()
    );
    Ok(password)
}

/// The store chart's `mail` values: the relay and the From, and the name of the Secret holding the
/// login (written by the controller), never the login itself.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StoreMailValues {
    pub relay: RelayValues,
    pub from: FromValues,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RelayValues {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub cidr: String,
    pub credentials_secret: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct FromValues {
    pub address: String,
    pub name: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(host: &str) -> RelayFlags {
        RelayFlags {
            host: Some(host.into()),
            port: 587,
            from: Some("shop@stores.example.com".into()),
            ..Default::default()
        }
    }

    #[test]
    fn hosts_and_addresses() {
        assert!(SmtpHost::parse("smtp.eu.mailgun.org").is_ok());
        assert!(SmtpHost::parse("10.1.2.3").is_ok());
        assert!(SmtpHost::parse("smtp example").is_err());
        assert!(SmtpHost::parse("smtp.example.com:587").is_err());
        assert!(EmailAddress::parse("no-reply@stores.example.com").is_ok());
        for bad in [
            "no-reply",
            "a b@example.com",
            "x@localhost",
            "<x@example.com>",
            "x@example.com\r\nBcc: y@example.com",
        ] {
            assert!(EmailAddress::parse(bad).is_err(), "{bad}");
        }
        assert!(FromName::parse("Läden & Co").is_ok());
        assert!(FromName::parse("Shop\r\nBcc: x@example.com").is_err());
    }

    #[test]
    fn relay_flags_go_together() {
        assert_eq!(MailRelay::from_flags(RelayFlags::default()).unwrap(), None);
        // A name needs its address range; an IP address is its own.
        let named = MailRelay::from_flags(flags("smtp.example.com")).unwrap_err();
        assert!(named.to_string().contains("--smtp-relay-cidr"), "{named}");
        let relay = MailRelay::from_flags(flags("10.1.2.3")).unwrap().unwrap();
        assert_eq!(relay.cidr.to_string(), "10.1.2.3/32");
        assert_eq!(relay.tls, SmtpTls::Starttls);
        let outside = RelayFlags {
            cidr: Some("10.9.0.0/16".into()),
            ..flags("10.1.2.3")
        };
        assert!(MailRelay::from_flags(outside).is_err());
        let no_from = RelayFlags {
            from: None,
            ..flags("10.1.2.3")
        };
        assert!(MailRelay::from_flags(no_from).is_err());
        let stray = RelayFlags {
            cidr: Some("10.0.0.0/8".into()),
            ..Default::default()
        };
        assert!(MailRelay::from_flags(stray).is_err());
    }

    #[test]
    fn a_login_needs_tls_and_stays_out_of_values_and_logs() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("password");
        std::fs::write(&file, "s3cret-relay-pw\n").unwrap();
        let with_login = |tls| RelayFlags {
            username: Some("postmaster@example.com".into()),
            password_file: Some(file.clone()),
            tls: Some(tls),
            ..flags("10.1.2.3")
        };
        assert!(MailRelay::from_flags(with_login(SmtpTls::None)).is_err());
        let relay = MailRelay::from_flags(with_login(SmtpTls::Starttls))
            .unwrap()
            .unwrap();
        assert_eq!(relay.login.as_ref().unwrap().password, "s3cret-relay-pw");
        assert!(!format!("{relay:?}").contains("s3cret"));
        let values =
            serde_yaml::to_string(&relay.values(Some("store-abcdef-mail-relay".into()))).unwrap();
        assert!(!values.contains("s3cret"), "{values}");
        assert!(
            values.contains("credentialsSecret: store-abcdef-mail-relay"),
            "{values}"
        );
        let half = RelayFlags {
            password_file: None,
            ..with_login(SmtpTls::Tls)
        };
        assert!(MailRelay::from_flags(half).is_err());
    }
}
