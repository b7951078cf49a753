//! Step 4: may this identity use this route? (SPEC §3: `roles_any`, `roles_all`,
//! `email_domains`, on the route and under `[policy]` for every authenticated
//! route.) Only this function makes a [`Permit`], and only a `Permit` lets
//! identity headers be set.

use crate::identity::Identity;

use super::route::{Requirements, Rule};

/// Proof that `policy::authorize` allowed an identity on a rule.
#[derive(Debug)]
pub struct Permit<'a> {
    identity: &'a Identity,
}

impl<'a> Permit<'a> {
    pub fn identity(&self) -> &'a Identity {
        self.identity
    }
}

/// Why an authenticated identity was refused (403). Logged in full.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denial {
    /// None of the `roles_any` roles.
    #[error("needs one of the roles {needed:?}")]
    NoneOfRoles { needed: Vec<String> },
    /// Missing some of the `roles_all` roles.
    #[error("lacks the roles {missing:?}")]
    MissingRoles { missing: Vec<String> },
    /// `email_domains` is set and the email is absent, unverified, malformed,
    /// or in another domain.
    #[error("email {email:?} is not a verified address in {domains:?}")]
    EmailDomain {
        email: Option<String>,
        domains: Vec<String>,
    },
}

/// Checks the global `[policy]` requirements, then the rule's own.
///
/// # Errors
/// The first requirement the identity fails, as a [`Denial`].
pub fn authorize<'a>(
    global: &Requirements,
    rule: &Rule,
    identity: &'a Identity,
) -> Result<Permit<'a>, Denial> {
    check(global, identity)?;
    check(&rule.requirements, identity)?;
    Ok(Permit { identity })
}

fn check(req: &Requirements, identity: &Identity) -> Result<(), Denial> {
    let has = |role: &String| identity.roles.iter().any(|r| r == role);
    if !req.roles_any.is_empty() && !req.roles_any.iter().any(has) {
        return Err(Denial::NoneOfRoles {
            needed: req.roles_any.clone(),
        });
    }
    let missing: Vec<String> = req.roles_all.iter().filter(|r| !has(r)).cloned().collect();
    if !missing.is_empty() {
        return Err(Denial::MissingRoles { missing });
    }
    if !req.email_domains.is_empty() && !is_in_domains(identity, &req.email_domains) {
        return Err(Denial::EmailDomain {
            email: identity.email.clone(),
            domains: req.email_domains.clone(),
        });
    }
    Ok(())
}

/// A verified email with exactly one `@` whose domain is one of `domains`
/// (exactly, case-insensitively: `example.com` does not admit `evil-example.com`
/// nor `sub.example.com`).
fn is_in_domains(identity: &Identity, domains: &[String]) -> bool {
    let Some(email) = identity
        .email
        .as_deref()
        .filter(|_| identity.email_verified)
    else {
        return false;
    };
    let mut parts = email.split('@');
    let (Some(local), Some(domain), None) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    !local.is_empty() && domains.iter().any(|d| d.eq_ignore_ascii_case(domain))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AuthMode;

    fn rule(req: Requirements) -> Rule {
        Rule {
            name: "r".into(),
            auth: AuthMode::Login,
            requirements: req,
        }
    }

    fn who(roles: &[&str], email: Option<&str>, verified: bool) -> Identity {
        Identity {
            sub: "u".into(),
            email: email.map(str::to_owned),
            email_verified: verified,
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
            ..Identity::default()
        }
    }

    fn req(any: &[&str], all: &[&str], domains: &[&str]) -> Requirements {
        let v = |xs: &[&str]| xs.iter().map(|x| (*x).to_owned()).collect();
        Requirements {
            roles_any: v(any),
            roles_all: v(all),
            email_domains: v(domains),
        }
    }

    #[test]
    fn roles_any_needs_one_of_them() {
        let r = rule(req(&["admin", "ops"], &[], &[]));
        assert!(authorize(&Requirements::default(), &r, &who(&["ops"], None, false)).is_ok());
        assert!(authorize(&Requirements::default(), &r, &who(&["user"], None, false)).is_err());
        assert!(authorize(&Requirements::default(), &r, &who(&[], None, false)).is_err());
    }

    #[test]
    fn roles_all_needs_every_one() {
        let r = rule(req(&[], &["admin", "ops"], &[]));
        assert!(authorize(
            &Requirements::default(),
            &r,
            &who(&["ops", "admin"], None, false)
        )
        .is_ok());
        assert_eq!(
            authorize(&Requirements::default(), &r, &who(&["admin"], None, false)).err(),
            Some(Denial::MissingRoles {
                missing: vec!["ops".into()]
            })
        );
    }

    #[test]
    fn email_domains_admit_only_verified_single_at_addresses_in_the_domain() {
        let r = rule(req(&[], &[], &["example.com"]));
        let ok = |email: &str, verified: bool| {
            authorize(
                &Requirements::default(),
                &r,
                &who(&[], Some(email), verified),
            )
            .is_ok()
        };
        assert!(ok("alice@example.com", true));
        assert!(ok("alice@EXAMPLE.com", true));
        assert!(!ok("alice@example.com", false), "unverified");
        assert!(!ok("alice@evil.com@example.com", true), "two @");
        assert!(!ok("alice@sub.example.com", true), "subdomain");
        assert!(!ok("alice@evil-example.com", true));
        assert!(!ok("alice@example.com.evil.com", true));
        assert!(!ok("@example.com", true), "empty local part");
        assert!(
            authorize(&Requirements::default(), &r, &who(&[], None, true)).is_err(),
            "no email"
        );
    }

    #[test]
    fn global_policy_applies_on_top_of_the_route() {
        let global = req(&["staff"], &[], &[]);
        let r = rule(req(&["admin"], &[], &[]));
        assert!(authorize(&global, &r, &who(&["admin"], None, false)).is_err());
        assert!(authorize(&global, &r, &who(&["admin", "staff"], None, false)).is_ok());
    }
}
