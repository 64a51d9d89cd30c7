//! A "compromised fleet": the tokens an incident responder finds on real servers, planted before a
//! run so `tokenfleet audit` and `sweep` have something true to classify. cPanel's own clustering
//! and dashboard tokens (system), a legitimate-looking offsite-backup token with an allow-list
//! (legit), the ordinary tokens of WordPress tooling on every account, some expired, some never
//! expiring (legit), and on a subset of hosts and accounts the attacker's: `WHM_FullRoot` (ACL
//! `all`, no allow-list, created 2026-03-01) for root, `lp<8 hex>` and `bkl` for accounts.
//!
//! Everything is decided from the seed and each host's name and account list alone, never from
//! where the host runs, so a fleet split over processes ([`crate::parts`]) plants exactly what one
//! process would, and [`plan_compromised`] tells a parent what its parts planted without asking
//! them. Planting is direct state insertion under one lock per host, no HTTP: 1,000 hosts × 50
//! accounts × 3 tokens take a fraction of a second.

use crate::spec::FleetSpec;
use crate::state::{HostState, TokenOwner};
use crate::{Fleet, SeedToken, SimHost, seed};

/// 2026-03-01T00:00:00Z: the day the attacker's tokens were made.
pub const ATTACK_TIME: i64 = 1_772_323_200;

/// What a planted token is, as the incident response must judge it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PlantKind {
    /// cPanel's own (`reverse_trust_…` clustering, `WebPros_Dashboard`): leave alone.
    System,
    /// Made by the intruder (`WHM_FullRoot`, `lp<8 hex>`, `bkl`): to sweep.
    Attacker,
    /// Made by the fleet's people or their tools (`backup-offsite`, `wp-toolkit-N`, …).
    Legit,
}

/// One planted token (never its secret).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Planted {
    /// The host's name.
    pub host: String,
    pub owner: TokenOwner,
    pub name: String,
    pub kind: PlantKind,
}

/// What [`seed_compromised`] planted (or [`plan_compromised`] would), host by host in fleet
/// order, root's tokens before each host's accounts'.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Seeded {
    pub planted: Vec<Planted>,
}

impl Seeded {
    /// The planted tokens of one kind.
    pub fn of_kind(&self, kind: PlantKind) -> impl Iterator<Item = &Planted> {
        self.planted.iter().filter(move |p| p.kind == kind)
    }

    pub fn count(&self, kind: PlantKind) -> usize {
        self.of_kind(kind).count()
    }

    /// The kind of the token `name` of `owner` on `host`, if it was planted.
    pub fn kind_of(&self, host: &str, owner: &TokenOwner, name: &str) -> Option<PlantKind> {
        self.planted
            .iter()
            .find(|p| p.host == host && &p.owner == owner && p.name == name)
            .map(|p| p.kind)
    }

    /// Hosts whose root has the attacker's `WHM_FullRoot`, in fleet order.
    pub fn hosts_with_full_root(&self) -> Vec<&str> {
        self.planted
            .iter()
            .filter(|p| p.name == "WHM_FullRoot")
            .map(|p| p.host.as_str())
            .collect()
    }

    /// `host,owner_type,owner,name,kind` lines with a header (no secret): for a person checking
    /// an audit of the example fleet by eye.
    pub fn to_csv(&self) -> String {
        let mut out = String::from("host,owner_type,owner,name,kind\n");
        for p in &self.planted {
            let (t, o) = match &p.owner {
                TokenOwner::Account(a) => ("account", a),
                TokenOwner::WhmUser(u) => ("whm", u),
            };
            let kind = match p.kind {
                PlantKind::System => "system",
                PlantKind::Attacker => "attacker",
                PlantKind::Legit => "legit",
            };
            out.push_str(&format!("{},{t},{o},{},{kind}\n", p.host, p.name));
        }
        out
    }
}

/// Plant the compromised-fleet tokens on every host of `fleet` (see the module's comment):
/// `per_account` ordinary tokens per account. Deterministic in `seed` (the secrets excepted, and
/// the few "expires soon" dates, which are days from now). Panics if a planted name is taken
/// (seed a fleet once).
pub fn seed_compromised(fleet: &Fleet, seed: u64, per_account: usize) -> Seeded {
    let mut planted = Vec::new();
    for host in fleet.hosts() {
        planted.extend(seed_compromised_host(host, seed, per_account));
    }
    Seeded { planted }
}

/// [`seed_compromised`] for one host.
pub fn seed_compromised_host(host: &SimHost, seed: u64, per_account: usize) -> Vec<Planted> {
    let accounts = host.accounts();
    let plan = plan_host(
        host.name(),
        &accounts,
        seed,
        per_account,
        crate::now_epoch(),
    );
    host.with_state(|state| plant(state, &plan));
    plan.into_iter().map(|(p, _)| p).collect()
}

/// What [`seed_compromised`] with these settings plants on a fleet started from `spec`, without
/// starting it (for a parent whose parts seed their own hosts).
pub fn plan_compromised(spec: &FleetSpec, seed: u64, per_account: usize) -> Seeded {
    let now = crate::now_epoch();
    let mut planted = Vec::new();
    for h in &spec.hosts {
        let mut accounts: Vec<String> = h.accounts.iter().map(|a| a.user.clone()).collect();
        accounts.sort();
        planted.extend(
            plan_host(&h.name, &accounts, seed, per_account, now)
                .into_iter()
                .map(|(p, _)| p),
        );
    }
    Seeded { planted }
}

fn plant(state: &mut HostState, plan: &[(Planted, SeedToken)]) {
    for (p, t) in plan {
        match &p.owner {
            TokenOwner::WhmUser(u) => {
                let tokens = state.whm_users.get_mut(u).expect("planned for root");
                seed(tokens, t.clone(), true);
            }
            TokenOwner::Account(a) => {
                let acct = state
                    .accounts
                    .get_mut(a)
                    .expect("planned from its accounts");
                seed(&mut acct.tokens, t.clone(), false);
            }
        }
    }
}

/// FNV-1a: a stable hash of a host's name (std's hasher may change between releases).
fn name_hash(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The host's number: the digits its name ends with (`web001` → 1).
fn host_number(name: &str) -> Option<u64> {
    let digits = name.len() - name.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    name[name.len() - digits..].parse().ok()
}

fn hex(rng: &mut fastrand::Rng, n: usize) -> String {
    (0..n)
        .map(|_| char::from_digit(rng.u32(..16), 16).expect("below 16"))
        .collect()
}

const DAY: i64 = 86_400;
/// 2023-01-01T00:00:00Z: the oldest ordinary token.
const OLDEST: i64 = 1_672_531_200;
/// 2028-01-01T00:00:00Z: ordinary tokens with an expiry expire after it (or expired in 2025).
const FAR_EXPIRY: i64 = 1_830_297_600;
/// 2025-01-01T00:00:00Z
const Y2025: i64 = 1_735_689_600;

const TOOLS: &[&str] = &["wp-toolkit", "softaculous", "jetbackup", "deploy"];

/// One host's plan. Host number 1 always has the attacker's root token and its first account the
/// attacker's account tokens, so any fleet has some; the others by chance (about 1 host in 4, 1
/// account in 10).
fn plan_host(
    host: &str,
    accounts: &[String],
    seed: u64,
    per_account: usize,
    now: i64,
) -> Vec<(Planted, SeedToken)> {
    let mut rng = fastrand::Rng::with_seed(seed ^ name_hash(host));
    let first_host = host_number(host) == Some(1);
    let mut out = Vec::with_capacity(4 + accounts.len() * (per_account + 1));
    let root = TokenOwner::WhmUser("root".to_string());
    let mut put = |owner: &TokenOwner, kind: PlantKind, t: SeedToken| {
        out.push((
            Planted {
                host: host.to_string(),
                owner: owner.clone(),
                name: t.name.clone(),
                kind,
            },
            t,
        ));
    };
    let uuid = format!(
        "{}-{}-{}-{}-{}",
        hex(&mut rng, 8),
        hex(&mut rng, 4),
        hex(&mut rng, 4),
        hex(&mut rng, 4),
        hex(&mut rng, 12)
    );
    let setup = OLDEST + rng.i64(0..365 * DAY);
    put(
        &root,
        PlantKind::System,
        SeedToken::named(&format!("reverse_trust_{uuid}"))
            .created(setup)
            .acls(&["clustering"]),
    );
    put(
        &root,
        PlantKind::System,
        SeedToken::named("WebPros_Dashboard").created(setup + rng.i64(0..30 * DAY)),
    );
    put(
        &root,
        PlantKind::Legit,
        SeedToken::named("backup-offsite")
            .created(Y2025 + rng.i64(0..200 * DAY))
            .expires(FAR_EXPIRY + rng.i64(0..365 * DAY))
            .acls(&["list-accts", "backup"])
            .whitelist(&["203.0.113.10", "198.51.100.0/24"]),
    );
    if first_host || rng.u32(..4) == 0 {
        put(
            &root,
            PlantKind::Attacker,
            SeedToken::named("WHM_FullRoot").created(ATTACK_TIME + rng.i64(0..DAY)),
        );
    }
    for (i, account) in accounts.iter().enumerate() {
        let owner = TokenOwner::Account(account.clone());
        for n in 1..=per_account {
            let name = if n == 1 && rng.bool() {
                "TNC-WP-TOOLBOX".to_string()
            } else {
                format!("{}-{n}", TOOLS[rng.usize(..TOOLS.len())])
            };
            let created = OLDEST + rng.i64(0..700 * DAY);
            let t = SeedToken::named(&name).created(created);
            let t = match rng.u32(..10) {
                // Expired during 2025: still listed, no longer authenticates.
                0..=2 => t.expires(Y2025 + rng.i64(0..360 * DAY)),
                3..=5 => t,
                6 => t.expires(now + DAY + rng.i64(0..5 * DAY)),
                _ => t.expires(FAR_EXPIRY + rng.i64(0..365 * DAY)),
            };
            put(&owner, PlantKind::Legit, t);
        }
        if (first_host && i == 0) || rng.u32(..10) == 0 {
            let at = ATTACK_TIME + rng.i64(0..DAY);
            put(
                &owner,
                PlantKind::Attacker,
                SeedToken::named(&format!("lp{}", hex(&mut rng, 8))).created(at),
            );
            if rng.bool() {
                put(
                    &owner,
                    PlantKind::Attacker,
                    SeedToken::named("bkl").created(at + rng.i64(0..3600)),
                );
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{AccountSpec, FleetSpec};

    #[test]
    fn a_plan_is_the_seeds_and_the_names_alone() {
        let accounts: Vec<String> = (1..=20).map(|a| format!("u1a{a:04}")).collect();
        let a = plan_host("web001", &accounts, 7, 3, 0);
        let b = plan_host("web001", &accounts, 7, 3, 0);
        assert_eq!(a, b);
        let c = plan_host("web001", &accounts, 8, 3, 0);
        assert_ne!(a, c, "another seed plants otherwise");
        // Host 1 always has the attacker's root token, and its first account the account ones.
        for seed in 0..20 {
            let p = plan_host("web001", &accounts, seed, 3, 0);
            assert!(p.iter().any(|(p, _)| p.name == "WHM_FullRoot"));
            assert!(p.iter().any(|(p, _)| {
                p.owner == TokenOwner::Account("u1a0001".into()) && p.name.starts_with("lp")
            }));
        }
    }

    #[test]
    fn names_are_valid_and_unique_per_owner() {
        let accounts: Vec<String> = (1..=50).map(|a| format!("u1a{a:04}")).collect();
        for seed in 0..10 {
            let plan = plan_host("web017", &accounts, seed, 5, 0);
            let mut seen = std::collections::BTreeSet::new();
            for (p, t) in &plan {
                assert!(crate::state::valid_token_name(&p.name), "{}", p.name);
                assert!(seen.insert((p.owner.clone(), p.name.clone())), "{p:?}");
                assert_eq!(p.name, t.name);
                if let Some(rest) = p.name.strip_prefix("lp") {
                    assert_eq!(rest.len(), 8);
                    assert!(rest.bytes().all(|b| b.is_ascii_hexdigit()));
                }
            }
        }
    }

    #[test]
    fn a_thousand_hosts_of_fifty_accounts_plant_by_direct_insertion() {
        let spec = FleetSpec::uniform(1000, 50);
        let plan = plan_compromised(&spec, 42, 3);
        let mut planted = 0;
        for h in &spec.hosts {
            let accounts: Vec<AccountSpec> = h.accounts.clone();
            let mut state = HostState::new(&accounts, &[], "ROOTTOKEN");
            let names: Vec<String> = accounts.iter().map(|a| a.user.clone()).collect();
            let p = plan_host(&h.name, &names, 42, 3, crate::now_epoch());
            plant(&mut state, &p);
            planted += p.len();
            let live = state.live(&h.name).len();
            assert_eq!(live, p.len() + 1, "the root token besides the planted ones");
        }
        assert_eq!(planted, plan.planted.len());
        assert!(planted >= 1000 * 50 * 3);
        assert!(plan.count(PlantKind::Attacker) > 0);
        assert_eq!(plan.count(PlantKind::System), 2000);
    }
}
