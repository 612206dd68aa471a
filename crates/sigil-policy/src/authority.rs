//! The authority decision: one capability against every layer of policy.
//!
//! Effective authority = plugin grants ∩ operator consent ∩ workspace allow ∩ user permissions,
//! minus every deny at any level. Denies are checked first, so a deny always wins, including one
//! that carves a sub-scope out of a wildcard grant.

use std::fmt;

use crate::{Capability, CapabilitySet, Pattern};

/// What a plugin may do: its manifest's requests, the operator's consent, the manifest's denies.
#[derive(Debug, Clone)]
pub struct PluginAuthority {
    /// The plugin's id, used to name rules.
    pub id: String,
    /// Capabilities the manifest requested.
    pub grants: CapabilitySet,
    /// Capabilities the operator consented to. Compiled-in plugins are consented by construction.
    pub consent: CapabilitySet,
    /// Capabilities the manifest denies itself.
    pub denies: CapabilitySet,
}

/// A workspace's allow list or a user's permissions, each with its denies.
#[derive(Debug, Clone)]
pub struct Scope {
    /// The workspace or user name, used to name rules.
    pub name: String,
    /// What the scope allows. Empty allows nothing.
    pub allow: CapabilitySet,
    /// What the scope denies, whatever else allows it.
    pub deny: CapabilitySet,
}

/// Everything one decision is made against.
#[derive(Debug, Clone, Copy)]
pub struct Layers<'a> {
    /// The plugin acting, for host calls out of a plugin. `None` when the subject is the
    /// calling user alone (a user invoking a tool): then no plugin grant is needed.
    pub plugin: Option<&'a PluginAuthority>,
    /// The workspace the call runs in.
    pub workspace: &'a Scope,
    /// The user on whose behalf the call runs.
    pub user: &'a Scope,
    /// Denies that hold everywhere (`[policy] deny` in `sigil.toml`).
    pub global_deny: &'a CapabilitySet,
}

/// The level of policy a rule belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Level {
    /// The operator's global policy.
    Policy,
    /// The plugin's manifest.
    Plugin,
    /// The operator's consent for the plugin.
    Consent,
    /// The workspace.
    Workspace,
    /// The calling user.
    User,
}

/// The outcome of a check, with the rule that decided it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Allowed: every layer had a matching pattern and no deny matched.
    Allow {
        /// The patterns that allowed it, one per layer.
        rule: AllowRule,
    },
    /// Denied, and why.
    Deny {
        /// The rule that denied it.
        rule: DenyRule,
    },
}

/// The patterns that allowed a capability, one per layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowRule {
    /// The plugin and its matching grant and consent, when the subject was a plugin.
    pub plugin: Option<(String, Pattern, Pattern)>,
    /// The workspace and its matching allow pattern.
    pub workspace: (String, Pattern),
    /// The user and their matching permission.
    pub user: (String, Pattern),
}

/// Why a capability was denied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DenyRule {
    /// The plugin is not registered with the enforcer.
    UnknownPlugin {
        /// The plugin id asked for.
        plugin: String,
    },
    /// The workspace is not configured.
    UnknownWorkspace {
        /// The workspace name asked for.
        workspace: String,
    },
    /// The user is not configured.
    UnknownUser {
        /// The user name asked for.
        user: String,
    },
    /// The user does not belong to the workspace the call runs in (`[users.<name>] workspaces`
    /// in `sigil.toml`).
    NotMember {
        /// The user.
        user: String,
        /// The workspace named for the call.
        workspace: String,
    },
    /// The user's permission set is empty.
    NoPermissions {
        /// The user.
        user: String,
    },
    /// An explicit deny matched.
    Denied {
        /// The level of the deny.
        level: Level,
        /// Which plugin, workspace or user holds it.
        holder: String,
        /// The deny pattern that matched.
        pattern: Pattern,
    },
    /// No allow pattern at this level matched.
    NotGranted {
        /// The level that does not allow it.
        level: Level,
        /// Which plugin, workspace or user that is.
        holder: String,
    },
    /// The destination address is of a class (loopback, private, link-local, ...) that only a
    /// grant naming it reaches, and this level holds no such grant.
    Restricted {
        /// The address class, as the host named it (`loopback`, `private`, ...).
        class: String,
        /// The level without a naming grant: [`Level::Plugin`] or [`Level::Consent`].
        level: Level,
        /// The plugin.
        holder: String,
    },
    /// The destination is never reachable, whatever is granted (Sigil's own listening
    /// address).
    Unreachable {
        /// Why, as the host said it.
        reason: String,
    },
    /// The capability text did not parse.
    InvalidCapability {
        /// The parse error.
        error: String,
    },
    /// A secret would be sent to a destination it is not bound to (`[secrets.NAME]
    /// destinations`), although the grants allow both the secret and the connection.
    SecretNotBound {
        /// Which secret, where the request was going and where it may go, without its value.
        reason: String,
    },
    /// The decision's audit record could not be written, so the call is refused.
    AuditFailed {
        /// The storage error.
        error: String,
    },
    /// The enforcer failed internally; it refuses rather than guess.
    Internal {
        /// What failed.
        error: String,
    },
}

impl Decision {
    /// Whether the decision allows the call.
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allow { .. })
    }
}

/// Decides `capability` against `layers`. Pure: no I/O, no allocation on the allow path
/// beyond the rule it returns.
pub fn decide(capability: &Capability, layers: Layers<'_>) -> Decision {
    let deny = |level, holder: &str, set: &CapabilitySet| {
        set.find(capability).map(|pattern| Decision::Deny {
            rule: DenyRule::Denied {
                level,
                holder: holder.to_string(),
                pattern: pattern.clone(),
            },
        })
    };
    let not_granted = |level, holder: &str| Decision::Deny {
        rule: DenyRule::NotGranted {
            level,
            holder: holder.to_string(),
        },
    };

    let denies = [
        deny(Level::Policy, "sigil.toml", layers.global_deny),
        layers
            .plugin
            .and_then(|p| deny(Level::Plugin, &p.id, &p.denies)),
        deny(
            Level::Workspace,
            &layers.workspace.name,
            &layers.workspace.deny,
        ),
        deny(Level::User, &layers.user.name, &layers.user.deny),
    ];
    if let Some(denied) = denies.into_iter().flatten().next() {
        return denied;
    }

    if layers.user.allow.is_empty() {
        return Decision::Deny {
            rule: DenyRule::NoPermissions {
                user: layers.user.name.clone(),
            },
        };
    }

    let plugin = match layers.plugin {
        None => None,
        Some(plugin) => {
            let Some(grant) = plugin.grants.find(capability) else {
                return not_granted(Level::Plugin, &plugin.id);
            };
            let Some(consent) = plugin.consent.find(capability) else {
                return not_granted(Level::Consent, &plugin.id);
            };
            Some((plugin.id.clone(), grant.clone(), consent.clone()))
        }
    };
    let Some(workspace) = layers.workspace.allow.find(capability) else {
        return not_granted(Level::Workspace, &layers.workspace.name);
    };
    let Some(user) = layers.user.allow.find(capability) else {
        return not_granted(Level::User, &layers.user.name);
    };
    Decision::Allow {
        rule: AllowRule {
            plugin,
            workspace: (layers.workspace.name.clone(), workspace.clone()),
            user: (layers.user.name.clone(), user.clone()),
        },
    }
}

/// How an address a connection would go to may be reached, by its class. The host that
/// resolves and connects (`sigil-egress`) classifies the address; the policy decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach<'a> {
    /// An ordinary address: the grants on the host as the plugin named it decide.
    Open,
    /// An address of a restricted class (loopback, private, link-local, unspecified,
    /// multicast, ...): reachable only when the plugin's grant and the operator's consent each
    /// hold a pattern naming the host or the address without a wildcard
    /// ([`Pattern::names_host`]).
    Named {
        /// The class, for the rule (`loopback`).
        class: &'a str,
    },
    /// Never reachable, whatever is granted.
    Closed {
        /// Why, for the rule.
        reason: &'a str,
    },
}

/// Decides a connection to `address` (`net.connect:<ip>:<port>`, the address actually
/// connected to, after name resolution), reached through `host` (`net.connect:<host>:<port>`
/// as the plugin named it; the same as `address` when the plugin named the address).
///
/// In order: a [`Reach::Closed`] address is denied; a deny at any level that matches the
/// address is denied (so `net.connect:127.0.0.1` denied holds for `localhost` too); the host
/// is decided as by [`decide`]; for a [`Reach::Named`] address the plugin's grant and the
/// operator's consent must each name the host or the address.
pub fn decide_destination(
    address: &Capability,
    host: &Capability,
    reach: Reach<'_>,
    layers: Layers<'_>,
) -> Decision {
    if let Reach::Closed { reason } = reach {
        return Decision::Deny {
            rule: DenyRule::Unreachable {
                reason: reason.to_string(),
            },
        };
    }
    if address != host {
        let denies = [
            (Level::Policy, "sigil.toml", Some(layers.global_deny)),
            (
                Level::Plugin,
                layers.plugin.map_or("", |p| p.id.as_str()),
                layers.plugin.map(|p| &p.denies),
            ),
            (
                Level::Workspace,
                layers.workspace.name.as_str(),
                Some(&layers.workspace.deny),
            ),
            (
                Level::User,
                layers.user.name.as_str(),
                Some(&layers.user.deny),
            ),
        ];
        for (level, holder, set) in denies {
            if let Some(pattern) = set.and_then(|set| set.find(address)) {
                return Decision::Deny {
                    rule: DenyRule::Denied {
                        level,
                        holder: holder.to_string(),
                        pattern: pattern.clone(),
                    },
                };
            }
        }
    }
    let decision = decide(host, layers);
    let Reach::Named { class } = reach else {
        return decision;
    };
    let mut rule = match decision {
        Decision::Allow { rule } => rule,
        denied => return denied,
    };
    let restricted = |level, holder: &str| Decision::Deny {
        rule: DenyRule::Restricted {
            class: class.to_string(),
            level,
            holder: holder.to_string(),
        },
    };
    let Some(plugin) = layers.plugin else {
        // Only a plugin's grant can name a destination.
        return restricted(Level::Plugin, "");
    };
    let naming = |set: &CapabilitySet| {
        set.find_naming(host)
            .or_else(|| set.find_naming(address))
            .cloned()
    };
    let Some(grant) = naming(&plugin.grants) else {
        return restricted(Level::Plugin, &plugin.id);
    };
    let Some(consent) = naming(&plugin.consent) else {
        return restricted(Level::Consent, &plugin.id);
    };
    rule.plugin = Some((plugin.id.clone(), grant, consent));
    Decision::Allow { rule }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Decision::Allow { rule } => write!(f, "allow: {rule}"),
            Decision::Deny { rule } => write!(f, "deny: {rule}"),
        }
    }
}

impl fmt::Display for AllowRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some((plugin, grant, consent)) = &self.plugin {
            write!(
                f,
                "plugin `{plugin}` requests `{grant}`, consented as `{consent}`; "
            )?;
        }
        write!(
            f,
            "workspace `{}` allows `{}`; user `{}` holds `{}`",
            self.workspace.0, self.workspace.1, self.user.0, self.user.1
        )
    }
}

impl fmt::Display for DenyRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DenyRule::UnknownPlugin { plugin } => write!(f, "plugin `{plugin}` is not registered"),
            DenyRule::UnknownWorkspace { workspace } if workspace.is_empty() => {
                write!(f, "no workspace was named for the call")
            }
            DenyRule::UnknownWorkspace { workspace } => {
                write!(f, "workspace `{workspace}` is not configured in sigil.toml")
            }
            DenyRule::UnknownUser { user } if user.is_empty() => {
                write!(f, "no user was named for the call")
            }
            DenyRule::UnknownUser { user } => {
                write!(f, "user `{user}` is not configured in sigil.toml")
            }
            DenyRule::NotMember { user, workspace } => write!(
                f,
                "user `{user}` is not a member of workspace `{workspace}` (see `workspaces` in [users.{user}])"
            ),
            DenyRule::NoPermissions { user } => write!(f, "user `{user}` has no permissions"),
            DenyRule::Denied {
                level,
                holder,
                pattern,
            } => match level {
                Level::Policy => write!(f, "the operator's policy denies `{pattern}`"),
                Level::Plugin => write!(f, "plugin `{holder}`'s manifest denies `{pattern}`"),
                Level::Consent => write!(
                    f,
                    "the operator's consent for `{holder}` denies `{pattern}`"
                ),
                Level::Workspace => write!(f, "workspace `{holder}` denies `{pattern}`"),
                Level::User => write!(f, "user `{holder}` is denied `{pattern}`"),
            },
            DenyRule::NotGranted { level, holder } => match level {
                Level::Policy => write!(f, "the operator's policy does not allow it"),
                Level::Plugin => write!(f, "plugin `{holder}` did not request it in its manifest"),
                Level::Consent => write!(
                    f,
                    "the operator has not consented to it for plugin `{holder}`"
                ),
                Level::Workspace => write!(f, "workspace `{holder}` does not allow it"),
                Level::User => write!(f, "user `{holder}` does not hold it"),
            },
            DenyRule::Restricted {
                class,
                level,
                holder,
            } => match level {
                Level::Consent => write!(
                    f,
                    "a {class} address is reachable only through a grant naming it or its host, \
                     and the operator's consent for `{holder}` names neither"
                ),
                _ => write!(
                    f,
                    "a {class} address is reachable only through a grant naming it or its host, \
                     and plugin `{holder}` requests none"
                ),
            },
            DenyRule::Unreachable { reason } => {
                write!(f, "unreachable whatever is granted: {reason}")
            }
            DenyRule::InvalidCapability { error } => write!(f, "malformed capability: {error}"),
            DenyRule::SecretNotBound { reason } => f.write_str(reason),
            DenyRule::AuditFailed { error } => {
                write!(
                    f,
                    "the audit record could not be written, so the call is refused: {error}"
                )
            }
            DenyRule::Internal { error } => write!(f, "internal error, refused: {error}"),
        }
    }
}
