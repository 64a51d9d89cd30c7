//! An in-memory [`Backend`] for tests of the run: one server's accounts and tokens (per owner),
//! faults scripted per operation, and counters of what was called. Each call sleeps a little
//! while counted in flight, so a test can see how many calls a host had at once.

use super::{AccountInfo, ApiError, Backend, NewToken, Owner, TokenInfo};
use crate::plan::{NewExpiry, TokenChange, TokenPolicy};
use crate::secret::Secret;
use crate::transport::TransportError;
use crate::trust::Pin;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The operations of [`Backend`], for scripting faults and counting calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    ListAccounts,
    List,
    Create,
    Revoke,
    Verify,
    Whoami,
    Update,
}

/// A token the server holds: what `list` shows, its secret, and whether it was created through
/// this backend (`false`: seeded, there before the run).
type Stored = (TokenInfo, String, bool);

fn info(name: &str, create_time: i64, expires_at: Option<i64>) -> TokenInfo {
    TokenInfo::new(name, Some(create_time), expires_at)
}

#[derive(Default)]
struct State {
    accounts: Vec<AccountInfo>,
    /// By (owner, token name): names are unique per owner.
    tokens: BTreeMap<(String, String), Stored>,
    /// Secrets of the tokens revoked, in order.
    revoked: Vec<String>,
    faults: HashMap<Op, VecDeque<ApiError>>,
    always: Option<ApiError>,
    /// The name of the WHM token the host's credential is.
    credential_token: Option<String>,
    /// Every call after this many fails with this error.
    always_after: Option<(usize, ApiError)>,
    /// Answers of the next creates, which are performed first (the token exists).
    after_create: VecDeque<ApiError>,
    calls: HashMap<Op, usize>,
    in_flight: usize,
    max_in_flight: usize,
    serial: u64,
    /// Where in the shared log each `release` came (its length then), in order.
    released: Vec<usize>,
}

/// One fake server. Clones share it: a test keeps one and gives the run a boxed other.
#[derive(Clone)]
pub struct FakeBackend {
    host: String,
    delay: Duration,
    state: Arc<Mutex<State>>,
    /// Every call as "HOST Op", in order; shared across hosts.
    log: Arc<Mutex<Vec<String>>>,
}

fn owner_key(owner: Owner<'_>) -> String {
    match owner {
        Owner::Account { user, .. } => user.to_string(),
        Owner::WhmUser { .. } => "@whm".to_string(),
    }
}

impl FakeBackend {
    pub fn new(host: &str, delay: Duration, log: &Arc<Mutex<Vec<String>>>) -> Self {
        let (host, state, log) = (host.to_string(), Arc::default(), log.clone());
        FakeBackend {
            host,
            delay,
            state,
            log,
        }
    }
    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.lock().unwrap())
    }
    pub fn set_accounts(&self, accounts: Vec<AccountInfo>) {
        self.with(|s| s.accounts = accounts);
    }
    /// A token that was on the server before the run.
    pub fn seed(&self, owner: &str, name: &str, create_time: i64) {
        let stored = (info(name, create_time, None), format!("seed-{name}"), false);
        self.with(|s| s.tokens.insert((owner.into(), name.into()), stored));
    }
    /// A token that was on the server before the run, expiring at `expires_at`.
    pub fn seed_expiring(&self, owner: &str, name: &str, create_time: i64, expires_at: i64) {
        let stored = (
            info(name, create_time, Some(expires_at)),
            format!("seed-{name}"),
            false,
        );
        self.with(|s| s.tokens.insert((owner.into(), name.into()), stored));
    }
    /// `owner`'s token `name` as the server holds it now.
    pub fn token(&self, owner: &str, name: &str) -> Option<TokenInfo> {
        self.with(|s| {
            s.tokens
                .get(&(owner.to_string(), name.to_string()))
                .map(|t| t.0.clone())
        })
    }
    /// The names of `owner`'s live tokens (`@whm` for the WHM user's), sorted.
    pub fn listed(&self, owner: &str) -> Vec<String> {
        self.with(|s| {
            s.tokens
                .keys()
                .filter(|(o, _)| o == owner)
                .map(|(_, n)| n.clone())
                .collect()
        })
    }
    /// The next calls of `op` fail with these errors, one each, in order.
    pub fn fail_next(&self, op: Op, errors: impl IntoIterator<Item = ApiError>) {
        self.with(|s| s.faults.entry(op).or_default().extend(errors));
    }
    /// The host's credential is the WHM token of this name.
    pub fn set_credential_token(&self, name: &str) {
        self.with(|s| s.credential_token = Some(name.to_string()));
    }
    /// Every call, once the scripted faults are used up, fails with `e`.
    pub fn fail_always(&self, e: ApiError) {
        self.with(|s| s.always = Some(e));
    }
    /// Every call after the first `n` fails with `e` (a host that stops answering).
    pub fn fail_after(&self, n: usize, e: ApiError) {
        self.with(|s| s.always_after = Some((n, e)));
    }
    /// The next `n` creates succeed on the server, but their answer is lost (a timeout).
    pub fn lose_creates(&self, n: usize) {
        let lost = ApiError::Transport(TransportError::Timeout { sent: true });
        self.fail_after_create(std::iter::repeat_n(lost, n));
    }
    /// The next creates succeed on the server, then answer with these errors, one each.
    pub fn fail_after_create(&self, errors: impl IntoIterator<Item = ApiError>) {
        self.with(|s| s.after_create.extend(errors));
    }
    pub fn calls(&self, op: Op) -> usize {
        self.with(|s| s.calls.get(&op).copied().unwrap_or(0))
    }
    pub fn total_calls(&self) -> usize {
        self.with(|s| s.calls.values().sum())
    }
    pub fn max_in_flight(&self) -> usize {
        self.with(|s| s.max_in_flight)
    }
    /// Where in the shared call log each `release` came (the number of calls logged by then).
    pub fn released(&self) -> Vec<usize> {
        self.with(|s| s.released.clone())
    }
    /// (owner, name, secret) of the live tokens this backend created (seeded ones left out).
    pub fn created_live(&self) -> Vec<(String, String, String)> {
        let live = |s: &mut State| {
            let mine = s.tokens.iter().filter(|(_, t)| t.2);
            mine.map(|((o, n), t)| (o.clone(), n.clone(), t.1.clone()))
                .collect()
        };
        self.with(live)
    }
    /// The secrets of every token revoked so far.
    pub fn revoked(&self) -> Vec<String> {
        self.with(|s| s.revoked.clone())
    }

    /// One call: counted, in flight for `delay`, then a scripted fault or `f` on the state.
    fn call<T>(
        &self,
        op: Op,
        f: impl FnOnce(&mut State) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        let mut log = self.log.lock().unwrap();
        log.push(format!("{} {op:?}", self.host));
        drop(log);
        self.with(|s| {
            *s.calls.entry(op).or_default() += 1;
            s.in_flight += 1;
            s.max_in_flight = s.max_in_flight.max(s.in_flight);
        });
        std::thread::sleep(self.delay);
        self.with(|s| {
            s.in_flight -= 1;
            let fault = s.faults.get_mut(&op).and_then(VecDeque::pop_front);
            let total: usize = s.calls.values().sum();
            let late = match &s.always_after {
                Some((n, e)) if total > *n => Some(e.clone()),
                _ => None,
            };
            match fault.or_else(|| s.always.clone()).or(late) {
                Some(e) => Err(e),
                None => f(s),
            }
        })
    }
}

impl Backend for FakeBackend {
    fn list_accounts(&self) -> Result<Vec<AccountInfo>, ApiError> {
        self.call(Op::ListAccounts, |s| Ok(s.accounts.clone()))
    }
    fn list_tokens(&self, owner: Owner<'_>) -> Result<Vec<TokenInfo>, ApiError> {
        let owner = owner_key(owner);
        let mine = move |s: &mut State| {
            s.tokens
                .iter()
                .filter(|((o, _), _)| *o == owner)
                .map(|(_, t)| t.0.clone())
                .collect()
        };
        self.call(Op::List, |s| Ok(mine(s)))
    }
    fn create_token(
        &self,
        owner: Owner<'_>,
        name: &str,
        expires_at: Option<i64>,
    ) -> Result<NewToken, ApiError> {
        let key = (owner_key(owner), name.to_string());
        self.call(Op::Create, |s| {
            if s.tokens.contains_key(&key) {
                return Err(ApiError::Conflict(format!(
                    "the token {name} already exists"
                )));
            }
            s.serial += 1;
            let secret = format!("{}-{name}-{}", self.host, s.serial);
            let create_time = jiff::Timestamp::now().as_second();
            let stored = (info(name, create_time, expires_at), secret.clone(), true);
            s.tokens.insert(key, stored);
            if let Some(e) = s.after_create.pop_front() {
                return Err(e);
            }
            let (name, token) = (name.to_string(), Secret::new(secret));
            Ok(NewToken {
                name,
                token,
                create_time,
                expires_at,
            })
        })
    }
    fn create_token_with(
        &self,
        owner: Owner<'_>,
        name: &str,
        expires_at: Option<i64>,
        policy: &TokenPolicy,
    ) -> Result<NewToken, ApiError> {
        let key = (owner_key(owner), name.to_string());
        let made = self.create_token(owner, name, expires_at);
        self.with(|s| {
            if let Some(t) = s.tokens.get_mut(&key) {
                t.0.acls = (!policy.acls.is_empty()).then(|| policy.acls.clone());
                t.0.whitelist_ips = policy.whitelist.clone();
            }
        });
        made
    }
    fn update_token(
        &self,
        owner: Owner<'_>,
        name: &str,
        change: &TokenChange,
    ) -> Result<(), ApiError> {
        let key = (owner_key(owner), name.to_string());
        self.call(Op::Update, |s| {
            let Some(t) = s.tokens.get_mut(&key) else {
                return Err(ApiError::Rejected(format!(
                    "The API token “{name}” does not exist."
                )));
            };
            match change.expires {
                Some(NewExpiry::At(at)) => t.0.expires_at = Some(at),
                Some(NewExpiry::Never) => t.0.expires_at = None,
                None => {}
            }
            if let Some(acls) = &change.acls {
                t.0.acls = Some(acls.clone());
            }
            if let Some(list) = &change.whitelist {
                t.0.whitelist_ips = list.clone();
            }
            Ok(())
        })
    }
    fn revoke_tokens(&self, owner: Owner<'_>, names: &[String]) -> Result<(), ApiError> {
        let owner = owner_key(owner);
        self.call(Op::Revoke, |s| {
            for name in names {
                if let Some(t) = s.tokens.remove(&(owner.clone(), name.clone())) {
                    s.revoked.push(t.1);
                }
            }
            Ok(())
        })
    }
    fn verify(&self, owner: Owner<'_>, _name: &str, token: &Secret) -> Result<(), ApiError> {
        let owner = owner_key(owner);
        self.call(Op::Verify, |s| {
            let mut mine = s.tokens.iter().filter(|((o, _), _)| *o == owner);
            if mine.any(|(_, t)| t.1 == token.expose()) {
                return Ok(());
            }
            Err(ApiError::Auth {
                status: 401,
                message: "unknown token".into(),
            })
        })
    }
    fn whoami(&self) -> Result<String, ApiError> {
        self.call(Op::Whoami, |_| Ok("fake 11.126".into()))
    }
    fn credential_token(&self) -> Result<Option<String>, ApiError> {
        self.call(Op::Whoami, |s| Ok(s.credential_token.clone()))
    }
    fn url(&self, _: Owner<'_>) -> String {
        format!("https://{}:2083", self.host)
    }
    fn peer_pin(&self) -> Option<Pin> {
        None
    }
    fn release(&self) {
        let at = self.log.lock().unwrap().len();
        self.with(|s| s.released.push(at));
    }
}
