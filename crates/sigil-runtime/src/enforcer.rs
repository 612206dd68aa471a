//! The enforcer: the one chokepoint every call into a plugin and every host call out of one
//! passes.
//!
//! It resolves the plugin, workspace and user of a check into the policy core's layers, asks
//! [`sigil_policy::decide`], and writes exactly one audit record for the decision. If that
//! record cannot be written, the decision becomes a deny: nothing happens unrecorded.
//!
//! A user acts only in the workspaces it belongs to (`[users.<name>] workspaces`): every
//! decision for an actor naming another workspace is a deny ([`DenyRule::NotMember`]),
//! whichever front end built the actor.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use sigil_audit::{Actor, AuditSink, NewRecord, RecordKind, Verdict};
use sigil_policy::{
    Capability, CapabilitySet, Decision, DenyRule, Layers, PluginAuthority, Reach, Scope,
};

use crate::config::Config;
use crate::events::{Event, Events};

mod journal;
pub(crate) use journal::CallJournal;
use journal::{Journals, is_effect};

/// Who a check is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject<'a> {
    /// A plugin acting on the actor's behalf (a host call): its grants, the operator's consent
    /// and its own denies apply, on top of the workspace and user.
    Plugin(&'a str),
    /// The actor calling into a plugin (invoking one of its tools): the plugin must be
    /// registered; the workspace and user decide.
    CallInto(&'a str),
}

impl Subject<'_> {
    fn plugin(&self) -> &str {
        match self {
            Subject::Plugin(id) | Subject::CallInto(id) => id,
        }
    }
}

/// One question for the enforcer.
#[derive(Debug, Clone, Copy)]
pub struct Check<'a> {
    /// Who acts.
    pub subject: Subject<'a>,
    /// What is needed.
    pub capability: &'a Capability,
    /// On whose behalf, and where.
    pub actor: &'a Actor,
    /// The tool call this check belongs to, if any.
    pub call_id: Option<&'a str>,
}

/// Capability text refused by [`Enforcer::check_text`]: what it asked for, as recorded, and
/// why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    /// The capability: canonical when it parsed, else the text as [`shown_text`] records it.
    pub capability: String,
    /// The rule that denied it.
    pub rule: DenyRule,
}

/// The most characters of text that breaks the capability grammar an audit record keeps.
pub const MALFORMED_TEXT_CHARS: usize = 256;

/// Text from outside (a plugin's kv key or path, say) as an audit record shows it when it is
/// no capability: every control or otherwise unprintable character and every backslash
/// escaped as Rust writes them (`\n`, `\0`, `\u{202e}`, `\\`), so the record is one line and
/// cannot be mistaken for other text, and cut after [`MALFORMED_TEXT_CHARS`] characters with
/// the original length noted.
pub fn shown_text(text: &str) -> String {
    escaped(text, |c| c == '\\' || c.escape_debug().len() > 1)
}

/// A parse error's reason as a rule shows it: on one line, cut like [`shown_text`]. The policy
/// core already quotes the characters it complains of (`'\n'`), so backslashes stay as written.
fn shown_reason(reason: &str) -> String {
    escaped(reason, |c| c != '\\' && c.escape_debug().len() > 1)
}

fn escaped(text: &str, escape: impl Fn(char) -> bool) -> String {
    let mut shown = String::with_capacity(text.len().min(MALFORMED_TEXT_CHARS) + 16);
    for (count, c) in text.chars().enumerate() {
        if count == MALFORMED_TEXT_CHARS {
            shown.push_str(&format!("… ({} bytes in all)", text.len()));
            break;
        }
        if escape(c) && c != '"' && c != '\'' {
            shown.extend(c.escape_debug());
        } else {
            shown.push(c);
        }
    }
    shown
}

/// A refusal the policy did not decide but that must be on the record like a decision: what a
/// tier holds for a plugin no longer matches what was granted or verified at load (a granted
/// directory that now resolves elsewhere, signed files changed since they were checked).
#[derive(Debug, Clone, Copy)]
pub struct Refusal<'a> {
    /// The plugin refused.
    pub plugin: &'a str,
    /// Its version, when the plugin is not (yet) registered; otherwise the registration's.
    pub version: Option<&'a str>,
    /// The capability refused, if the refusal is about one (`fs.read:/srv/data`).
    pub capability: Option<&'a str>,
    /// On whose behalf; the default actor outside any call.
    pub actor: &'a Actor,
    /// The tool call it belongs to, if any.
    pub call_id: Option<&'a str>,
    /// Why, for the operator reading the log.
    pub reason: &'a str,
}

/// A plugin's authority as registered with the enforcer.
#[derive(Debug, Clone)]
pub struct Registration {
    /// The plugin's version, recorded in audit records.
    pub version: String,
    /// Grants, consent and denies.
    pub authority: PluginAuthority,
}

#[derive(Debug, Default)]
struct State {
    plugins: HashMap<String, Registration>,
    workspaces: HashMap<String, Scope>,
    users: HashMap<String, Scope>,
    /// The workspaces each user belongs to.
    members: HashMap<String, Vec<String>>,
    global_deny: CapabilitySet,
}

impl State {
    /// The workspace and user layers of `actor`: both configured, and the user a member of the
    /// workspace.
    fn scopes(&self, actor: &Actor) -> Result<(&Scope, &Scope), DenyRule> {
        let workspace_name = actor.workspace.as_deref().unwrap_or("");
        let Some(workspace) = self.workspaces.get(workspace_name) else {
            return Err(DenyRule::UnknownWorkspace {
                workspace: workspace_name.to_string(),
            });
        };
        let user_name = actor.user.as_deref().unwrap_or("");
        let Some(user) = self.users.get(user_name) else {
            return Err(DenyRule::UnknownUser {
                user: user_name.to_string(),
            });
        };
        let member = self
            .members
            .get(user_name)
            .is_some_and(|workspaces| workspaces.iter().any(|w| w == workspace_name));
        if !member {
            return Err(DenyRule::NotMember {
                user: user_name.to_string(),
                workspace: workspace_name.to_string(),
            });
        }
        Ok((workspace, user))
    }
}

/// Decides and records. Cheap to share behind an `Arc`; checks run concurrently.
#[derive(Debug)]
pub struct Enforcer {
    state: RwLock<State>,
    audit: Arc<dyn AuditSink>,
    events: Events,
    journals: Journals,
}

impl Enforcer {
    /// An enforcer with the workspaces, users and global denies of `config`, and no plugins.
    pub fn new(config: &Config, audit: Arc<dyn AuditSink>) -> Enforcer {
        let enforcer = Enforcer {
            state: RwLock::new(State::default()),
            audit,
            events: Events::new(),
            journals: Journals::default(),
        };
        enforcer.reconfigure(config);
        enforcer
    }

    /// Replaces workspaces, users and global denies; plugin registrations stay.
    pub fn reconfigure(&self, config: &Config) {
        let mut state = self.write();
        state.workspaces = config
            .workspaces()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        state.users = config
            .users()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        state.members = config
            .users()
            .keys()
            .map(|user| (user.clone(), config.user_workspaces(user).to_vec()))
            .collect();
        state.global_deny = config.global_deny().clone();
    }

    /// Registers (or replaces) a plugin's authority.
    pub fn register(&self, registration: Registration) {
        let id = registration.authority.id.clone();
        self.write().plugins.insert(id, registration);
    }

    /// Removes a plugin: every later check for it is denied.
    pub fn unregister(&self, plugin: &str) {
        self.write().plugins.remove(plugin);
    }

    /// A deny pattern, at any level that applies to `plugin` acting for `actor`, that could
    /// cover `capability` or anything below it. See [`sigil_policy::Pattern::may_cover_within`].
    pub fn deny_within(
        &self,
        plugin: &str,
        actor: &Actor,
        capability: &Capability,
    ) -> Option<sigil_policy::Pattern> {
        let state = self.state.read().ok()?;
        let empty = CapabilitySet::default();
        let sets = [
            &state.global_deny,
            state
                .plugins
                .get(plugin)
                .map_or(&empty, |p| &p.authority.denies),
            state
                .workspaces
                .get(actor.workspace.as_deref().unwrap_or(""))
                .map_or(&empty, |w| &w.deny),
            state
                .users
                .get(actor.user.as_deref().unwrap_or(""))
                .map_or(&empty, |u| &u.deny),
        ];
        sets.into_iter()
            .flat_map(|set| set.patterns())
            .find(|pattern| pattern.may_cover_within(capability))
            .cloned()
    }

    /// The decision a check would get, without recording it: for `sigil policy explain`.
    pub fn explain(&self, check: &Check<'_>) -> Decision {
        self.decide(check).0
    }

    /// Whether `actor` may invoke `plugin`'s tool `tool`: the decision the first step of
    /// [`crate::Runtime::invoke`] would reach (`tool.<plugin>.<tool>`, the plugin registered,
    /// the workspace and user deciding), without recording it. For listings, which show a
    /// caller only what it may call and are not themselves an action.
    ///
    /// # Security
    /// Answers a question; authorises nothing. A call must still pass [`Enforcer::check`]
    /// (which [`crate::Runtime::invoke`] does), since the policy can change in between. A
    /// plugin or tool name that is no capability segment is a deny.
    pub fn explain_call(&self, plugin: &str, tool: &str, actor: &Actor) -> Decision {
        let capability = match Capability::parse(&format!("tool.{plugin}.{tool}")) {
            Ok(capability) => capability,
            Err(error) => {
                let rule = DenyRule::InvalidCapability {
                    error: error.to_string(),
                };
                return Decision::Deny { rule };
            }
        };
        self.explain(&Check {
            subject: Subject::CallInto(plugin),
            capability: &capability,
            actor,
            call_id: None,
        })
    }

    /// Decides a check and records it. Returns only once the audit record is durable; if it
    /// cannot be written, the result is a deny.
    ///
    /// A check belonging to a call whose journal is open (`Enforcer::open_journal`) is
    /// recorded in that journal: it is committed with the call's other records, and at once
    /// (with everything before it) when it allows an effect: anything but a read (`fs.read`, `kv.read`).
    pub async fn check(&self, check: &Check<'_>) -> Decision {
        let (decision, version) = self.decide(check);
        let effect = is_effect(check, &decision);
        let event = self.decision_event(check, &decision);
        match self
            .commit(record(check, &decision, version), event, effect)
            .await
        {
            Ok(()) => decision,
            Err(error) => audit_failed(check, error.to_string()),
        }
    }

    /// Records a deny that the host decided on top of the grants (a secret sent where it is
    /// not bound), as one audit record like any decision. Returns the deny, or the
    /// audit-failure deny when it cannot be written.
    pub async fn record_refusal(&self, check: &Check<'_>, rule: DenyRule) -> Decision {
        let version = self.state.read().ok().and_then(|state| {
            state
                .plugins
                .get(check.subject.plugin())
                .map(|p| p.version.clone())
        });
        let decision = Decision::Deny { rule };
        let event = self.decision_event(check, &decision);
        match self
            .commit(record(check, &decision, version), event, false)
            .await
        {
            Ok(()) => decision,
            Err(error) => audit_failed(check, error.to_string()),
        }
    }

    /// Decides a connection to the address in `check.capability` (`net.connect:<ip>:<port>`,
    /// the address actually connected to after name resolution), reached through `host`
    /// (`net.connect:<host>:<port>` as the plugin named it), and records it: one record naming
    /// the address. See [`sigil_policy::decide_destination`] for what `reach` asks.
    ///
    /// # Security
    /// As for [`Enforcer::check`]: exactly one audit record, and a deny if it cannot be
    /// written. The caller classifies the address; a class refusal or an unreachable address
    /// is a deny recorded like any other.
    pub async fn check_destination(
        &self,
        check: &Check<'_>,
        host: &Capability,
        reach: Reach<'_>,
    ) -> Decision {
        let (decision, version) = self.decide_with(check, |layers| {
            sigil_policy::decide_destination(check.capability, host, reach, layers)
        });
        let effect = is_effect(check, &decision);
        let event = self.decision_event(check, &decision);
        match self
            .commit(record(check, &decision, version), event, effect)
            .await
        {
            Ok(()) => decision,
            Err(error) => audit_failed(check, error.to_string()),
        }
    }

    /// Parses `text` and decides it as [`Enforcer::check`] does, for capability text that comes
    /// from outside: a plugin's kv key, path or host name made into a capability.
    ///
    /// # Security
    /// Text that breaks the capability grammar (a NUL or a newline in a path, say) is a deny
    /// like any other, recorded once with the rule `malformed capability: <why>` and the text
    /// as [`shown_text`] writes it. So every host call leaves exactly one record, whatever the
    /// plugin sends.
    ///
    /// # Errors
    /// The [`Denial`], when the text does not parse or the capability is denied.
    pub async fn check_text(
        &self,
        subject: Subject<'_>,
        text: &str,
        actor: &Actor,
        call_id: Option<&str>,
    ) -> Result<Capability, Denial> {
        let error = match Capability::parse(text) {
            Ok(capability) => {
                let check = Check {
                    subject,
                    capability: &capability,
                    actor,
                    call_id,
                };
                return match self.check(&check).await {
                    Decision::Allow { .. } => Ok(capability),
                    Decision::Deny { rule } => Err(Denial {
                        capability: capability.to_string(),
                        rule,
                    }),
                };
            }
            Err(error) => error,
        };
        Err(self
            .refuse_malformed(subject, text, error.reason(), actor, call_id)
            .await)
    }

    /// Refuses a host call whose input is no capability at all (text that breaks the grammar,
    /// or a URL with no host to make one from), recording the deny with the rule
    /// `malformed capability: <reason>` and `text` as [`shown_text`] writes it.
    ///
    /// # Security
    /// Exactly one audit record, as for [`Enforcer::check`]; if it cannot be written, the rule
    /// says so.
    pub async fn refuse_malformed(
        &self,
        subject: Subject<'_>,
        text: &str,
        reason: &str,
        actor: &Actor,
        call_id: Option<&str>,
    ) -> Denial {
        let capability = shown_text(text);
        let version = self.state.read().ok().and_then(|state| {
            state
                .plugins
                .get(subject.plugin())
                .map(|p| p.version.clone())
        });
        let rule = DenyRule::InvalidCapability {
            error: shown_reason(reason),
        };
        let record = NewRecord {
            kind: RecordKind::Decision,
            actor: actor.clone(),
            plugin: Some(subject.plugin().to_string()),
            plugin_version: version,
            capability: Some(capability.clone()),
            decision: Some(Verdict::Deny),
            rule: rule.to_string(),
            call_id: call_id.map(str::to_string),
            duration_us: None,
            outcome: None,
            steps: Vec::new(),
        };
        let event = self.events.is_watched().then(|| Event::Decision {
            seq: 0,
            plugin: Some(subject.plugin().to_string()),
            capability: capability.clone(),
            decision: Verdict::Deny,
            rule: rule.to_string(),
            actor: actor.clone(),
            call_id: call_id.map(str::to_string),
        });
        let rule = match self.commit(record, event, false).await {
            Ok(()) => rule,
            Err(error) => {
                tracing::error!(plugin = subject.plugin(), capability = %capability, %error, "audit record not written; denying");
                DenyRule::AuditFailed {
                    error: error.to_string(),
                }
            }
        };
        Denial { capability, rule }
    }

    /// [`Enforcer::check`] for threads outside an async runtime.
    pub fn check_blocking(&self, check: &Check<'_>) -> Decision {
        let (decision, version) = self.decide(check);
        let effect = is_effect(check, &decision);
        let event = self.decision_event(check, &decision);
        match self.commit_blocking(record(check, &decision, version), event, effect) {
            Ok(()) => decision,
            Err(error) => audit_failed(check, error.to_string()),
        }
    }

    /// Records `refusal` as a deny and publishes it once committed. The refusal stands whether
    /// or not the record can be written; a failure to write it is logged.
    pub async fn refuse(&self, refusal: &Refusal<'_>) {
        let record = self.refusal_record(refusal);
        let written = self
            .commit(record, self.refusal_event(refusal), false)
            .await;
        refused(refusal, written);
    }

    /// [`Enforcer::refuse`] for threads outside an async runtime.
    pub fn refuse_blocking(&self, refusal: &Refusal<'_>) {
        let record = self.refusal_record(refusal);
        let written = self.commit_blocking(record, self.refusal_event(refusal), false);
        refused(refusal, written);
    }

    fn refusal_record(&self, refusal: &Refusal<'_>) -> NewRecord {
        let version = refusal.version.map(str::to_string).or_else(|| {
            self.state
                .read()
                .ok()?
                .plugins
                .get(refusal.plugin)
                .map(|p| p.version.clone())
        });
        let mut record = NewRecord::decision(Verdict::Deny, refusal.reason)
            .with_actor(refusal.actor.clone())
            .with_plugin(refusal.plugin, version.as_deref());
        if let Some(capability) = refusal.capability {
            record = record.with_capability(capability);
        }
        if let Some(call_id) = refusal.call_id {
            record = record.with_call_id(call_id);
        }
        record
    }

    fn refusal_event(&self, refusal: &Refusal<'_>) -> Option<Event> {
        self.events.is_watched().then(|| Event::Decision {
            seq: 0,
            plugin: Some(refusal.plugin.to_string()),
            capability: refusal.capability.unwrap_or_default().to_string(),
            decision: Verdict::Deny,
            rule: refusal.reason.to_string(),
            actor: refusal.actor.clone(),
            call_id: refusal.call_id.map(str::to_string),
        })
    }

    /// The runtime's event hub: every recorded decision is published here once committed.
    pub fn events(&self) -> &Events {
        &self.events
    }

    /// Decides whether the actor itself, with no plugin involved, may use `capability` (for a
    /// gateway's management operations, such as `admin.plugins`), and records the decision.
    /// The workspace and user layers and the global denies decide; an unknown workspace or
    /// user is a deny.
    ///
    /// # Security
    /// As for [`Enforcer::check`]: exactly one audit record, and a deny if it cannot be written.
    pub async fn check_actor(&self, capability: &Capability, actor: &Actor) -> Decision {
        let decision = self.decide_actor(capability, actor);
        let check = ActorCheck { capability, actor };
        let event = self.events.is_watched().then(|| check.event(&decision));
        match self.commit(check.record(&decision), event, false).await {
            Ok(()) => decision,
            Err(error) => {
                tracing::error!(capability = %capability, %error, "audit record not written; denying");
                Decision::Deny {
                    rule: DenyRule::AuditFailed {
                        error: error.to_string(),
                    },
                }
            }
        }
    }

    /// [`Enforcer::check_actor`] without recording: what it would decide now. For a
    /// connection that outlives its request (an event stream) to ask again, and for listings.
    ///
    /// # Security
    /// Answers a question; authorises nothing.
    pub fn explain_actor(&self, capability: &Capability, actor: &Actor) -> Decision {
        self.decide_actor(capability, actor)
    }

    /// Whether `actor` may act at all: its user and workspace are configured and the user
    /// belongs to the workspace. Records nothing: a front end refusing an actor records that
    /// with [`Enforcer::check_membership`].
    ///
    /// # Errors
    /// The rule that refuses the actor: [`DenyRule::UnknownWorkspace`],
    /// [`DenyRule::UnknownUser`] or [`DenyRule::NotMember`].
    pub fn membership(&self, actor: &Actor) -> Result<(), DenyRule> {
        let Ok(state) = self.state.read() else {
            return Err(DenyRule::Internal {
                error: "the policy state was poisoned by a panic".into(),
            });
        };
        state.scopes(actor).map(|_| ())
    }

    /// [`Enforcer::membership`], recording a refusal: for a front end admitting a request in
    /// the workspace it names. An admitted actor is not recorded (each of its actions is).
    ///
    /// # Errors
    /// The refusing rule, once its audit record is written, or [`DenyRule::AuditFailed`].
    pub async fn check_membership(&self, actor: &Actor) -> Result<(), DenyRule> {
        let Err(rule) = self.membership(actor) else {
            return Ok(());
        };
        let record = NewRecord::decision(Verdict::Deny, rule.to_string()).with_actor(actor.clone());
        // Recorded, not published: a decision event names a capability, and this refusal is of
        // the actor itself.
        match self.commit(record, None, false).await {
            Ok(()) => Err(rule),
            Err(error) => {
                tracing::error!(%error, "audit record not written; denying");
                Err(DenyRule::AuditFailed {
                    error: error.to_string(),
                })
            }
        }
    }

    fn decide_actor(&self, capability: &Capability, actor: &Actor) -> Decision {
        let Ok(state) = self.state.read() else {
            let rule = DenyRule::Internal {
                error: "the policy state was poisoned by a panic".into(),
            };
            return Decision::Deny { rule };
        };
        let (workspace, user) = match state.scopes(actor) {
            Ok(scopes) => scopes,
            Err(rule) => return Decision::Deny { rule },
        };
        let layers = Layers {
            plugin: None,
            workspace,
            user,
            global_deny: &state.global_deny,
        };
        sigil_policy::decide(capability, layers)
    }

    /// The event of a decision, its `seq` filled in once committed; none when nobody watches.
    fn decision_event(&self, check: &Check<'_>, decision: &Decision) -> Option<Event> {
        if !self.events.is_watched() {
            return None;
        }
        let (verdict, rule) = verdict(decision);
        Some(Event::Decision {
            seq: 0,
            plugin: Some(check.subject.plugin().to_string()),
            capability: check.capability.to_string(),
            decision: verdict,
            rule,
            actor: check.actor.clone(),
            call_id: check.call_id.map(str::to_string),
        })
    }

    fn decide(&self, check: &Check<'_>) -> (Decision, Option<String>) {
        self.decide_with(check, |layers| {
            sigil_policy::decide(check.capability, layers)
        })
    }

    /// Resolves the layers of `check` and lets `decide` decide on them.
    fn decide_with(
        &self,
        check: &Check<'_>,
        decide: impl FnOnce(Layers<'_>) -> Decision,
    ) -> (Decision, Option<String>) {
        let state = match self.state.read() {
            Ok(state) => state,
            Err(_) => {
                let rule = DenyRule::Internal {
                    error: "the policy state was poisoned by a panic".into(),
                };
                return (Decision::Deny { rule }, None);
            }
        };
        let deny = |rule| (Decision::Deny { rule }, None);
        let Some(plugin) = state.plugins.get(check.subject.plugin()) else {
            return deny(DenyRule::UnknownPlugin {
                plugin: check.subject.plugin().to_string(),
            });
        };
        let version = Some(plugin.version.clone());
        let deny = |rule| (Decision::Deny { rule }, version.clone());
        let (workspace, user) = match state.scopes(check.actor) {
            Ok(scopes) => scopes,
            Err(rule) => return deny(rule),
        };
        let layers = Layers {
            plugin: match check.subject {
                Subject::Plugin(_) => Some(&plugin.authority),
                Subject::CallInto(_) => None,
            },
            workspace,
            user,
            global_deny: &state.global_deny,
        };
        (decide(layers), version)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        // Writers replace whole maps or entries; a panic elsewhere cannot leave them torn.
        self.state
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn verdict(decision: &Decision) -> (Verdict, String) {
    match decision {
        Decision::Allow { rule } => (Verdict::Allow, rule.to_string()),
        Decision::Deny { rule } => (Verdict::Deny, rule.to_string()),
    }
}

/// A check of the actor alone ([`Enforcer::check_actor`]).
struct ActorCheck<'a> {
    capability: &'a Capability,
    actor: &'a Actor,
}

impl ActorCheck<'_> {
    fn record(&self, decision: &Decision) -> NewRecord {
        let (verdict, rule) = verdict(decision);
        NewRecord {
            kind: RecordKind::Decision,
            actor: self.actor.clone(),
            plugin: None,
            plugin_version: None,
            capability: Some(self.capability.to_string()),
            decision: Some(verdict),
            rule,
            call_id: None,
            duration_us: None,
            outcome: None,
            steps: Vec::new(),
        }
    }

    fn event(&self, decision: &Decision) -> Event {
        let (verdict, rule) = verdict(decision);
        Event::Decision {
            seq: 0,
            plugin: None,
            capability: self.capability.to_string(),
            decision: verdict,
            rule,
            actor: self.actor.clone(),
            call_id: None,
        }
    }
}

fn record(check: &Check<'_>, decision: &Decision, version: Option<String>) -> NewRecord {
    let (verdict, rule) = verdict(decision);
    NewRecord {
        kind: RecordKind::Decision,
        actor: check.actor.clone(),
        plugin: Some(check.subject.plugin().to_string()),
        plugin_version: version,
        capability: Some(check.capability.to_string()),
        decision: Some(verdict),
        rule,
        call_id: check.call_id.map(str::to_string),
        duration_us: None,
        outcome: None,
        steps: Vec::new(),
    }
}

/// Logs a refusal whose audit record could not be written; the refusal stands.
fn refused(refusal: &Refusal<'_>, written: Result<(), sigil_audit::AuditError>) {
    if let Err(error) = written {
        tracing::error!(
            plugin = refusal.plugin,
            reason = refusal.reason,
            %error,
            "the audit record of a refusal was not written"
        );
    }
}

fn audit_failed(check: &Check<'_>, error: String) -> Decision {
    tracing::error!(
        plugin = check.subject.plugin(),
        capability = %check.capability,
        %error,
        "audit record not written; denying"
    );
    Decision::Deny {
        rule: DenyRule::AuditFailed { error },
    }
}
