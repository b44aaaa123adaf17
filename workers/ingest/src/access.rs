//! Who may post, and about what: each source's signing mode and its allowed targets.
//!
//! Secure by default: a source without a secret refuses every webhook (401, with the fix in
//! the answer) unless its `allow_unsigned` is true, and a ticket event is accepted only for a
//! target its source lists (`projects`, `repositories`; `"*"` for any). The gateway still
//! starts with nothing configured, so `chatgptd up` works out of the box; its webhooks just
//! say what to configure.

use axum::http::{HeaderMap, HeaderName};
use chatgptd_types::source::AllowList;
use tracing::{info, warn};

use crate::options::SourceOptions;
use crate::secrets::Secret;
use crate::signature::{self, Refusal};
use crate::source::{GITHUB_SIGNATURE_HEADER, JIRA_SIGNATURE_HEADER, Source, route};

/// How a source's webhooks are authenticated.
pub(crate) enum Signing {
    /// Every webhook must be signed with this secret.
    Secret(Secret),
    /// No secret, and `allow_unsigned = true`: nothing is checked.
    Unsigned,
    /// No secret and unsigned webhooks not allowed: every webhook is refused.
    Refused,
}

/// Why a webhook was refused before its payload was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Denied {
    /// A missing or wrong signature.
    Signature(Refusal),
    /// The source has no secret and does not allow unsigned webhooks.
    NoSecret,
}

impl Signing {
    /// Decides the mode at build, and says so in the log at every start: loudly when
    /// webhooks are not checked.
    pub(crate) fn new(source: Source, options: &SourceOptions, secret: Option<Secret>) -> Self {
        let name = source.as_str();
        match secret {
            Some(secret) => {
                if options.allow_unsigned {
                    info!(
                        source = name,
                        "ingest.{name}.allow_unsigned has no effect: a secret is configured and every webhook must be signed"
                    );
                }
                Signing::Secret(secret)
            }
            None if options.allow_unsigned => {
                warn!(
                    source = name,
                    "UNSIGNED WEBHOOKS ACCEPTED: ingest.{name}.allow_unsigned = true and no secret, so anyone who can reach {} can post events; set ingest.{name}.secret_env instead",
                    route(source)
                );
                Signing::Unsigned
            }
            None => {
                info!(
                    source = name,
                    "no webhook secret for {name}: its webhooks are refused with 401 until ingest.{name}.secret_env (or allow_unsigned = true) is set"
                );
                Signing::Refused
            }
        }
    }

    /// Checks a request's signature over the raw body.
    pub(crate) fn verify(
        &self,
        source: Source,
        headers: &HeaderMap,
        body: &[u8],
        servicenow_header: &HeaderName,
    ) -> Result<(), Denied> {
        let secret = match self {
            Signing::Secret(secret) => secret.expose(),
            Signing::Unsigned => return Ok(()),
            Signing::Refused => return Err(Denied::NoSecret),
        };
        let header = |name: &str| headers.get(name).map(|value| value.as_bytes());
        let verified = match source {
            Source::Jira => signature::verify_hex(secret, body, header(JIRA_SIGNATURE_HEADER)),
            Source::GitHub => signature::verify_hex(secret, body, header(GITHUB_SIGNATURE_HEADER)),
            Source::ServiceNow => signature::verify_base64(
                secret,
                body,
                headers.get(servicenow_header).map(|value| value.as_bytes()),
            ),
        };
        verified.map_err(Denied::Signature)
    }
}

/// The targets a source accepts (see [`AllowList`]).
pub(crate) struct Targets(AllowList);

impl Targets {
    pub(crate) fn new(source: Source, listed: &[String]) -> Self {
        let targets = AllowList::new(listed);
        if targets.allows_nothing() {
            info!(
                source = source.as_str(),
                "ingest.{}.{} is empty: every ticket webhook of this source is refused with 403",
                source.as_str(),
                setting(source)
            );
        }
        Targets(targets)
    }

    /// Whether events about `target` are accepted; an event without one only under `"*"`.
    pub(crate) fn allows(&self, target: Option<&str>) -> bool {
        self.0.allows(target)
    }
}

/// The setting that lists a source's targets.
pub(crate) fn setting(source: Source) -> &'static str {
    match source {
        Source::Jira => "projects",
        Source::GitHub => "repositories",
        Source::ServiceNow => "targets",
    }
}

/// What a ticket event is about, as its source's setting names it: the project key of a
/// Jira issue (`PROJ` of `PROJ-12`), the `owner/name` of a GitHub issue (`owner/name#3`).
pub(crate) fn target_of(source: Source, ticket_key: &str) -> Option<String> {
    let key = ticket_key.trim();
    let target = match source {
        Source::Jira => key.rsplit_once('-').map(|(project, _)| project),
        Source::GitHub => key.rsplit_once('#').map(|(repository, _)| repository),
        Source::ServiceNow => None,
    }?;
    (!target.is_empty()).then(|| target.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn targets(listed: &[&str]) -> Targets {
        let listed: Vec<String> = listed.iter().map(|name| name.to_string()).collect();
        Targets::new(Source::GitHub, &listed)
    }

    #[test]
    fn only_listed_targets_pass_and_a_star_passes_all() {
        let listed = targets(&["Codertocat/Hello-World", " acme/app "]);
        assert!(listed.allows(Some("codertocat/hello-world")));
        assert!(listed.allows(Some("acme/app")));
        assert!(!listed.allows(Some("acme/other")));
        assert!(!listed.allows(None));
        assert!(!targets(&[]).allows(Some("acme/app")), "empty: none");
        assert!(targets(&["*"]).allows(Some("anyone/anything")));
        assert!(targets(&["*"]).allows(None));
    }

    #[test]
    fn targets_come_from_the_ticket_key() {
        assert_eq!(
            target_of(Source::GitHub, "Codertocat/Hello-World#1").as_deref(),
            Some("Codertocat/Hello-World")
        );
        assert_eq!(target_of(Source::Jira, "KT-22").as_deref(), Some("KT"));
        assert_eq!(
            target_of(Source::Jira, "MY-PROJ-7").as_deref(),
            Some("MY-PROJ")
        );
        assert_eq!(target_of(Source::Jira, "10509"), None);
        assert_eq!(target_of(Source::ServiceNow, "INC0000046"), None);
    }
}
