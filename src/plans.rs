//! Plans and quotas (issue 16): what a workspace may publish and how many calls its servers may
//! make a month, enforced on the MCP hot path from counters, never by scanning the log.
//!
//! - A workspace's plan is its own (`workspaces.plan`, set by the operator through `/ops/plan`;
//!   billing is out of scope) or the deployment's default (`FLOWCP_DEFAULT_PLAN`). With neither,
//!   the workspace is *unmetered*: no limits (a self-hosted deployment).
//! - The operator can override single limits of a workspace (a custom contract): [`LimitOverrides`].
//! - Limits: servers per workspace (checked when one is created), enabled tools per server
//!   (checked at publish; the meta-tools do not count), calls per server per month and calls
//!   per caller per month (the hot path, [`Gate`]). A call counts when FlowCP sent it upstream;
//!   a call refused before (bad arguments, no credential, over quota) and every meta-tool call
//!   (`list_skills`, `tool_search`, `search_tools`, `describe_tool`) does not.
//! - Months are UTC calendar months.
//!
//! The hot path ([`Gate`]) reads the plan and this month's counts of the server and the caller
//! in one D1 query, keeps them [`crate::auth::user_key::EPOCH_CACHE_TTL_MS`] (10 s) in the
//! isolate and adds the calls it lets through at once, so one isolate never lets more calls
//! through than the limit; across isolates a quota can be overshot by what other isolates let
//! through in those 10 s. The counters themselves are written with the audit rows, by the
//! trigger of migration 0015, when the audit queue's consumer (or the direct writer) inserts
//! them: a few seconds after the call. When D1 cannot be read the call goes through
//! (quotas are metering, not authorization) and the operator log says so.

use std::cell::RefCell;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::auth::user_key::EpochCache;
use crate::manifest::Manifest;
use crate::mcp::server::{OverQuota, QuotaFuture, QuotaGate};
use crate::store::usage;
use crate::store::Db;
use crate::vocab::Plan;

/// Workspaces one account may make on a deployment with plans (`FLOWCP_DEFAULT_PLAN` set):
/// each has its own quotas.
pub const MAX_WORKSPACES_PER_ACCOUNT: i64 = 5;

/// A plan's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Limits {
    /// Servers a workspace may have.
    pub servers: i64,
    /// Tools a published server may enable (the meta-tools do not count).
    pub tools_per_server: i64,
    /// Calls a server may make in a calendar month (UTC), across its callers.
    pub calls_per_server_month: i64,
    /// Calls one caller (an end user, an access key, an OAuth connection) may make on one server
    /// in a calendar month.
    pub calls_per_user_month: i64,
    /// Calls all of a workspace's servers may make in a calendar month, those deleted during it
    /// included (deleting and recreating a server does not start its quota over).
    pub calls_per_workspace_month: i64,
    /// Store tools (answered from a synced cache) are available.
    pub store_tools: bool,
}

impl Limits {
    pub const fn of(plan: Plan) -> Limits {
        match plan {
            Plan::Free => Limits {
                servers: 3,
                tools_per_server: 100,
                calls_per_server_month: 5_000,
                calls_per_user_month: 500,
                calls_per_workspace_month: 15_000,
                store_tools: false,
            },
            Plan::Pro => Limits {
                servers: 25,
                tools_per_server: 2_000,
                calls_per_server_month: 200_000,
                calls_per_user_month: 20_000,
                calls_per_workspace_month: 1_000_000,
                store_tools: false,
            },
            Plan::Team => Limits {
                servers: 200,
                tools_per_server: 20_000,
                calls_per_server_month: 2_000_000,
                calls_per_user_month: 100_000,
                calls_per_workspace_month: 10_000_000,
                store_tools: true,
            },
        }
    }

    fn with(mut self, o: &LimitOverrides) -> Limits {
        self.servers = o.servers.unwrap_or(self.servers);
        self.tools_per_server = o.tools_per_server.unwrap_or(self.tools_per_server);
        self.calls_per_server_month = o.calls_per_server_month.unwrap_or(self.calls_per_server_month);
        self.calls_per_user_month = o.calls_per_user_month.unwrap_or(self.calls_per_user_month);
        self.calls_per_workspace_month = o.calls_per_workspace_month.unwrap_or(self.calls_per_workspace_month);
        self.store_tools = o.store_tools.unwrap_or(self.store_tools);
        self
    }
}

/// The operator's changes to single limits of one workspace's plan.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LimitOverrides {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub servers: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools_per_server: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calls_per_server_month: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calls_per_user_month: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calls_per_workspace_month: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store_tools: Option<bool>,
}

/// Largest limit an override may set.
pub const MAX_LIMIT: i64 = 1_000_000_000_000;

impl LimitOverrides {
    /// Every number is 0 to [`MAX_LIMIT`].
    pub fn check(&self) -> Result<(), String> {
        let numbers = [
            ("servers", self.servers),
            ("tools_per_server", self.tools_per_server),
            ("calls_per_server_month", self.calls_per_server_month),
            ("calls_per_user_month", self.calls_per_user_month),
            ("calls_per_workspace_month", self.calls_per_workspace_month),
        ];
        match numbers.iter().find(|(_, v)| v.is_some_and(|v| !(0..=MAX_LIMIT).contains(&v))) {
            Some((name, _)) => Err(format!("limits.{name} must be 0 to {MAX_LIMIT}.")),
            None => Ok(()),
        }
    }

    pub fn is_empty(&self) -> bool {
        *self == LimitOverrides::default()
    }
}

/// What governs a workspace now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Effective {
    /// `None`: unmetered (no plan of its own and no deployment default).
    pub plan: Option<Plan>,
    /// The plan is the deployment's default, not one set for this workspace.
    pub default: bool,
    /// `None` when unmetered.
    pub limits: Option<Limits>,
}

/// The workspace's plan: its own, else the deployment's default, else none. Overrides that do
/// not parse (corrupt storage) are ignored: the plan's own limits apply.
pub fn effective(own: Option<Plan>, overrides: Option<&str>, default: Option<Plan>) -> Effective {
    let Some(plan) = own.or(default) else { return Effective { plan: None, default: false, limits: None } };
    let limits = Limits::of(plan);
    let limits = match (own, overrides.and_then(|o| serde_json::from_str::<LimitOverrides>(o).ok())) {
        (Some(_), Some(o)) => limits.with(&o),
        _ => limits,
    };
    Effective { plan: Some(plan), default: own.is_none(), limits: Some(limits) }
}

/// A workspace's plan now (a workspace that does not exist is unmetered: nothing to limit).
pub async fn of_workspace(
    db: &impl Db,
    ws: &str,
    default: Option<Plan>,
) -> Result<Effective, crate::store::StoreError> {
    let (own, overrides) = usage::plan_of(db, ws).await?.unwrap_or((None, None));
    Ok(effective(own, overrides.as_deref(), default))
}

/// `YYYY-MM` of a time (UTC).
pub fn month_of(ms: i64) -> String {
    crate::civil::utc_date(ms)[..7].to_string()
}

/// `YYYY-MM-01`, the first day after `month` (`YYYY-MM`): when its quotas reset.
pub fn resets_on(month: &str) -> String {
    let (y, m) = month.split_once('-').unwrap_or(("1970", "01"));
    let (y, m): (i64, i64) = (y.parse().unwrap_or(1970), m.parse().unwrap_or(1));
    let (y, m) = if m >= 12 { (y + 1, 1) } else { (y, m + 1) };
    format!("{y:04}-{m:02}-01")
}

/// The month before `month` (`YYYY-MM`).
pub fn previous_month(month: &str) -> String {
    let (y, m) = month.split_once('-').unwrap_or(("1970", "01"));
    let (y, m): (i64, i64) = (y.parse().unwrap_or(1970), m.parse().unwrap_or(1));
    let (y, m) = if m <= 1 { (y - 1, 12) } else { (y, m - 1) };
    format!("{y:04}-{m:02}")
}

/// A refused call: which quota, and the message the caller gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Over {
    pub message: String,
}

/// This month's calls a decision is made on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub workspace: i64,
    pub server: i64,
    /// `None` for a caller without a connection (public servers).
    pub user: Option<i64>,
}

/// Decides a call from this month's counts: `Err` when the caller's, the server's or the
/// workspace's quota is used up.
pub fn decide(plan: Plan, limits: &Limits, month: &str, counts: Counts) -> Result<(), Over> {
    let Counts { workspace: workspace_calls, server: server_calls, user: user_calls } = counts;
    let resets = resets_on(month);
    if user_calls.is_some_and(|n| n >= limits.calls_per_user_month) {
        return Err(Over {
            message: format!(
                "Monthly quota reached: each caller may make {} calls a month to this server on its {} plan, and you have made them. It resets on {resets} (UTC); the server's owner can move to a larger plan.",
                limits.calls_per_user_month,
                plan.as_str()
            ),
        });
    }
    if server_calls >= limits.calls_per_server_month {
        return Err(Over {
            message: format!(
                "Monthly quota reached: this server may make {} calls a month on its {} plan. It resets on {resets} (UTC); the server's owner can move to a larger plan.",
                limits.calls_per_server_month,
                plan.as_str()
            ),
        });
    }
    if workspace_calls >= limits.calls_per_workspace_month {
        return Err(Over {
            message: format!(
                "Monthly quota reached: this server's workspace may make {} calls a month in all on its {} plan. It resets on {resets} (UTC); the owner can move to a larger plan.",
                limits.calls_per_workspace_month,
                plan.as_str()
            ),
        });
    }
    Ok(())
}

/// What an isolate remembers of a server (subject `""`) or a caller: the month it counted, the
/// plan read with it, and the calls (read from D1, plus those this isolate let through since);
/// a server's entry also holds its workspace's calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counted {
    month: String,
    effective: Effective,
    calls: i64,
    workspace_calls: i64,
}

/// The isolate's quota cache, keyed by (server, subject).
pub type QuotaCache = RefCell<EpochCache<Counted>>;

/// Servers and callers an isolate keeps (an entry is ~150 bytes).
pub const QUOTA_CACHE_ENTRIES: usize = 20_000;

thread_local! {
    static ISOLATE_CACHE: std::rc::Rc<QuotaCache> =
        std::rc::Rc::new(RefCell::new(EpochCache::with_capacity(QUOTA_CACHE_ENTRIES)));
}

/// The isolate's [`QuotaCache`].
pub fn isolate_cache() -> std::rc::Rc<QuotaCache> {
    ISOLATE_CACHE.with(std::rc::Rc::clone)
}

/// The hot path's quota check ([`QuotaGate`]) over D1.
pub struct Gate<'a, D: Db> {
    pub db: &'a D,
    /// `FLOWCP_DEFAULT_PLAN`.
    pub default_plan: Option<Plan>,
    pub clock: &'a dyn Fn() -> i64,
    pub cache: &'a QuotaCache,
    /// Why the counters could not be read, for the operator log (the calls went through).
    pub failure: RefCell<Option<String>>,
}

impl<D: Db> Gate<'_, D> {
    /// Reserves one call of a server: `Ok(plan)` (`None`: unmetered), or the refusal.
    pub async fn reserve_for(
        &self,
        workspace_id: &str,
        server_id: &str,
        connection: Option<&str>,
    ) -> Result<Option<Plan>, OverQuota> {
        let now = (self.clock)();
        let month = month_of(now);
        let fresh = |c: &Counted| c.month == month;
        let hit = {
            let cache = self.cache.borrow();
            cache.get(server_id, usage::SERVER, now).filter(fresh).is_some()
                && connection.is_none_or(|c| cache.get(server_id, c, now).filter(fresh).is_some())
        };
        if !hit {
            let snap = match usage::snapshot(self.db, workspace_id, server_id, connection, &month).await {
                Ok(s) => s,
                // Metering is not authorization: the call goes through, and the glue logs why.
                Err(e) => {
                    *self.failure.borrow_mut() = Some(e.to_string());
                    return Ok(None);
                }
            };
            let effective = effective(snap.plan, snap.overrides.as_deref(), self.default_plan);
            let mut cache = self.cache.borrow_mut();
            // Counts only grow within a month, and D1 lags this isolate (its calls are written
            // after their responses): keep the larger of what D1 says and what it knew.
            let before = cache.peek(server_id, usage::SERVER).filter(fresh);
            let server = Counted {
                month: month.clone(),
                effective,
                calls: snap.server_calls.max(before.as_ref().map_or(0, |c| c.calls)),
                workspace_calls: snap.workspace_calls.max(before.as_ref().map_or(0, |c| c.workspace_calls)),
            };
            let user = connection.map(|c| Counted {
                month: month.clone(),
                effective,
                calls: snap.user_calls.max(cache.peek(server_id, c).filter(fresh).map_or(0, |u| u.calls)),
                workspace_calls: 0,
            });
            cache.put(server_id, usage::SERVER, server, now);
            if let (Some(c), Some(u)) = (connection, user) {
                cache.put(server_id, c, u, now);
            }
        }
        // Decide and count in one step, with no await between: this isolate's concurrent calls
        // see each other's.
        let mut cache = self.cache.borrow_mut();
        let Some(server) = cache.peek(server_id, usage::SERVER) else { return Ok(None) };
        let (Some(plan), Some(limits)) = (server.effective.plan, server.effective.limits) else { return Ok(None) };
        let user = connection.map(|c| cache.peek(server_id, c).map_or(0, |u| u.calls));
        let counts = Counts { workspace: server.workspace_calls, server: server.calls, user };
        decide(plan, &limits, &month, counts).map_err(|o| OverQuota { plan, message: o.message })?;
        cache.update(server_id, usage::SERVER, now, |c| {
            c.calls += 1;
            c.workspace_calls += 1;
        });
        if let Some(c) = connection {
            cache.update(server_id, c, now, |u| u.calls += 1);
        }
        Ok(Some(plan))
    }
}

impl<D: Db> QuotaGate for Gate<'_, D> {
    fn reserve<'g>(&'g self, m: &'g Manifest, connection: Option<&'g str>) -> QuotaFuture<'g> {
        Box::pin(self.reserve_for(&m.workspace_id, &m.server_id, connection))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_and_resets_are_utc_calendar_months() {
        assert_eq!(month_of(1_796_083_199_000), "2026-11");
        assert_eq!(month_of(1_796_083_200_000), "2026-12");
        assert_eq!(resets_on("2026-11"), "2026-12-01");
        assert_eq!(resets_on("2026-12"), "2027-01-01");
        assert_eq!(previous_month("2027-01"), "2026-12");
        assert_eq!(previous_month("2026-12"), "2026-11");
    }

    #[test]
    fn the_plan_is_the_workspaces_own_then_the_default_then_none() {
        assert_eq!(effective(None, None, None), Effective { plan: None, default: false, limits: None });
        let d = effective(None, Some(r#"{"servers":1}"#), Some(Plan::Free));
        assert_eq!((d.plan, d.default, d.limits), (Some(Plan::Free), true, Some(Limits::of(Plan::Free))));
        let own = effective(Some(Plan::Pro), Some(r#"{"calls_per_user_month":3}"#), Some(Plan::Free));
        assert_eq!(own.plan, Some(Plan::Pro));
        assert!(!own.default);
        assert_eq!(own.limits.unwrap().calls_per_user_month, 3);
        assert_eq!(own.limits.unwrap().servers, Limits::of(Plan::Pro).servers);
        // Corrupt overrides: the plan's own limits.
        assert_eq!(effective(Some(Plan::Team), Some("{"), None).limits, Some(Limits::of(Plan::Team)));
    }

    #[test]
    fn a_call_past_either_quota_is_refused_with_when_it_resets() {
        let l = Limits { calls_per_server_month: 10, calls_per_user_month: 3, ..Limits::of(Plan::Free) };
        let at = |server, user| Counts { workspace: 0, server, user };
        assert!(decide(Plan::Free, &l, "2026-12", at(9, Some(2))).is_ok());
        let user = decide(Plan::Free, &l, "2026-12", at(9, Some(3))).unwrap_err().message;
        assert!(user.contains("3 calls a month") && user.contains("2027-01-01") && user.contains("free"), "{user}");
        let server = decide(Plan::Free, &l, "2026-12", at(10, Some(0))).unwrap_err().message;
        assert!(server.contains("this server may make 10 calls"), "{server}");
        assert!(decide(Plan::Free, &l, "2026-12", at(10, None)).is_err());
        assert!(decide(Plan::Free, &l, "2026-12", at(0, None)).is_ok());
        let all = Counts { workspace: l.calls_per_workspace_month, server: 0, user: Some(0) };
        let ws = decide(Plan::Free, &l, "2026-12", all).unwrap_err().message;
        assert!(ws.contains("workspace may make 15000 calls a month in all"), "{ws}");
    }

    #[test]
    fn overrides_are_checked() {
        assert!(LimitOverrides { servers: Some(-1), ..Default::default() }.check().is_err());
        assert!(LimitOverrides { calls_per_user_month: Some(MAX_LIMIT + 1), ..Default::default() }.check().is_err());
        assert!(LimitOverrides { calls_per_user_month: Some(0), ..Default::default() }.check().is_ok());
        assert!(serde_json::from_str::<LimitOverrides>(r#"{"unknown":1}"#).is_err());
    }
}
