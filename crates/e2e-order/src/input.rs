//! What the user gives on the command line, checked once so a typo is reported before any
//! request is sent (and before an order is placed).

use std::fmt;
use std::str::FromStr;

/// SKU of the product to buy. Never empty: products without a SKU answer `"sku": ""`, so an
/// empty SKU would pick an arbitrary one of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sku(String);

impl FromStr for Sku {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let sku = text.trim();
        if sku.is_empty() {
            return Err("the SKU is empty".into());
        }
        Ok(Sku(sku.to_string()))
    }
}

impl Sku {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Sku {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Billing e-mail of the test order. It is also what proves access to the guest order when it
/// is read back, so it must be one address WooCommerce accepts (`is_email`): `local@domain`,
/// no spaces, a dot in the domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BillingEmail(String);

impl FromStr for BillingEmail {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = |why: &str| Err(format!("{text:?} is not an e-mail address: {why}"));
        let email = text.trim();
        let Some((local, domain)) = email.split_once('@') else {
            return bad("no @");
        };
        if local.is_empty() || domain.is_empty() {
            return bad("nothing before or after the @");
        }
        if domain.contains('@') {
            return bad("more than one @");
        }
        if email.chars().any(char::is_whitespace) {
            return bad("it contains a space");
        }
        if !domain.contains('.') || domain.starts_with('.') || domain.ends_with('.') {
            return bad("the domain has no dot between two labels");
        }
        Ok(BillingEmail(email.to_string()))
    }
}

impl BillingEmail {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for BillingEmail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sku_must_not_be_empty() {
        assert_eq!(
            " woo-beanie ".parse::<Sku>().unwrap().as_str(),
            "woo-beanie"
        );
        assert!("".parse::<Sku>().is_err());
        assert!("   ".parse::<Sku>().is_err());
    }

    #[test]
    fn billing_email_must_be_one_address() {
        assert_eq!(
            "buyer+e2e@example.com"
                .parse::<BillingEmail>()
                .unwrap()
                .as_str(),
            "buyer+e2e@example.com"
        );
        for bad in [
            "",
            "buyer",
            "@example.com",
            "buyer@",
            "buyer@localhost",
            "a@b@example.com",
            "buyer @example.com",
            "buyer@example.",
        ] {
            let err = bad.parse::<BillingEmail>().expect_err(bad);
            assert!(err.contains("is not an e-mail address"), "{bad:?}: {err}");
        }
    }
}
