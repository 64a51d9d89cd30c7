//! Why this file exists: cPHulk counts failed logins per client IP, across every account and
//! every port of a server (5 in 15 minutes, 4 on some fleets, block the IP for all of them). So a
//! wrong credential must cost one failed login per host per run, whatever `per_host` is and
//! however many accounts share it. The gate, one per host, stands in front of every request:
//!
//! - a credential that has not yet been accepted on this host goes out alone (the probe): the
//!   other requests carrying an unproven credential wait for its answer;
//! - once accepted, a credential goes out freely; each acceptance is counted, so a refusal that
//!   comes later (cPHulk started blocking, the token was revoked) is named as such;
//! - once refused, that credential is never sent again in this run, and no other unproven
//!   credential is sent to this host either (every failed login counts against the same IP);
//!   such calls fail at once with [`ApiError::Withheld`], nothing sent.
//!
//! Keys are digests of (port, user, secret): the gate holds no secret. New tokens being verified
//! share one key per port ([`Key::new_tokens`]): when the server refuses one, it refuses them
//! all (token logins off on the cPanel port), so the first refused verify stops the others.

use super::ApiError;
use crate::secret::Secret;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Condvar, Mutex};

/// Who a request logs in as, without the secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key([u8; 32]);

impl Key {
    /// `user` with `secret` on `port`.
    pub fn of(port: u16, user: &str, secret: &Secret) -> Key {
        let mut h = Sha256::new();
        h.update(b"tokenfleet-gate\0");
        h.update(port.to_be_bytes());
        h.update(user.as_bytes());
        h.update([0]);
        h.update(secret.expose().as_bytes());
        Key(h.finalize().into())
    }

    /// Every new token verified on `port`: one class.
    pub fn new_tokens(port: u16) -> Key {
        let mut h = Sha256::new();
        h.update(b"tokenfleet-gate-new-tokens\0");
        h.update(port.to_be_bytes());
        Key(h.finalize().into())
    }
}

#[derive(Debug, Clone)]
enum Seen {
    /// Accepted this many times.
    Accepted(u64),
    /// Refused: why, as first said.
    Refused(String),
}

#[derive(Debug, Default)]
struct State {
    creds: HashMap<Key, Seen>,
    /// An unproven credential is on the wire.
    probing: bool,
    /// A credential was refused on this host: no unproven one is sent any more.
    refused: Option<String>,
    /// A credential the host had accepted was refused (cPHulk blocking this IP, most likely):
    /// nothing at all is sent any more.
    blocked: Option<String>,
}

/// What an answer says of the credential that was sent.
fn verdict<T>(r: &Result<T, ApiError>) -> Option<bool> {
    match r {
        // The API answered, so the login passed: a refusal by the API itself included.
        Ok(_) | Err(ApiError::Rejected(_) | ApiError::Conflict(_)) => Some(true),
        Err(e) if e.is_refusal() => Some(false),
        // No answer, or not the API's: says nothing of the credential.
        Err(_) => None,
    }
}

/// One host's login gate.
#[derive(Debug, Default)]
pub struct Gate {
    state: Mutex<State>,
    turn: Condvar,
}

impl Gate {
    /// Forget every verdict (tests that send refused credentials on purpose).
    #[cfg(test)]
    pub fn forget(&self) {
        *self.state.lock().unwrap() = State::default();
    }

    /// Send `call` as `key`, unless the gate says it must not go out.
    pub fn pass<T>(
        &self,
        key: Key,
        call: impl FnOnce() -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let probe = loop {
            if let Some(why) = &st.blocked {
                return Err(ApiError::Withheld(format!(
                    "not sent: this host refused a credential it had accepted ({why}); nothing more is sent to it"
                )));
            }
            match st.creds.get(&key) {
                Some(Seen::Accepted(_)) => break false,
                Some(Seen::Refused(why)) => {
                    return Err(ApiError::Withheld(format!(
                        "not sent: this credential was refused on this host earlier in the run ({why})"
                    )));
                }
                None => {
                    if let Some(why) = &st.refused {
                        return Err(ApiError::Withheld(format!(
                            "not sent: a credential was refused on this host ({why}), and cPHulk counts every failed login against this IP"
                        )));
                    }
                    if !st.probing {
                        st.probing = true;
                        break true;
                    }
                    st = self.turn.wait(st).unwrap_or_else(|p| p.into_inner());
                }
            }
        };
        drop(st);
        // Should `call` panic, the probe slot is freed all the same (no caller waits for ever).
        struct Release<'g>(&'g Gate, bool);
        impl Drop for Release<'_> {
            fn drop(&mut self) {
                if self.1 {
                    let mut st = self.0.state.lock().unwrap_or_else(|p| p.into_inner());
                    st.probing = false;
                    drop(st);
                    self.0.turn.notify_all();
                }
            }
        }
        let mut release = Release(self, probe);
        let result = call();
        // Returned: the slot is freed below, with the verdict, under one lock.
        release.1 = false;
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if probe {
            st.probing = false;
        }
        let result = match verdict(&result) {
            Some(true) => {
                match st.creds.entry(key).or_insert(Seen::Accepted(0)) {
                    Seen::Accepted(n) => *n += 1,
                    // Refused meanwhile by another call: that refusal stands.
                    Seen::Refused(_) => {}
                }
                result
            }
            Some(false) => {
                let accepted = match st.creds.get(&key) {
                    Some(Seen::Accepted(n)) => *n,
                    _ => 0,
                };
                let result = match result {
                    Err(ApiError::Auth { status, message }) if accepted > 0 => {
                        Err(ApiError::RefusedAfter {
                            status,
                            accepted,
                            message,
                        })
                    }
                    other => other,
                };
                if let Err(e) = &result
                    && e.refused_by_server()
                {
                    let why = e.cause();
                    st.creds.insert(key, Seen::Refused(why.clone()));
                    if matches!(e, ApiError::RefusedAfter { .. }) {
                        st.blocked.get_or_insert(why.clone());
                    }
                    st.refused.get_or_insert(why);
                }
                result
            }
            None => result,
        };
        drop(st);
        self.turn.notify_all();
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    fn refused() -> ApiError {
        ApiError::Auth {
            status: 401,
            message: "Access denied".into(),
        }
    }

    #[test]
    fn a_wrong_credential_goes_out_once_however_many_ask_at_once() {
        let gate = Arc::new(Gate::default());
        let sent = Arc::new(AtomicUsize::new(0));
        let bad = Key::of(2087, "root", &Secret::new("BAD"));
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let (gate, sent) = (gate.clone(), sent.clone());
                std::thread::spawn(move || {
                    gate.pass(bad, || {
                        sent.fetch_add(1, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(20));
                        Err::<(), _>(refused())
                    })
                })
            })
            .collect();
        let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        assert_eq!(sent.load(Ordering::SeqCst), 1, "one failed login");
        assert_eq!(
            results
                .iter()
                .filter(|r| matches!(r, Err(ApiError::Withheld(_))))
                .count(),
            7
        );
        // Another unproven credential is not sent to this host either.
        let other = Key::of(2083, "alice", &Secret::new("ALSOBAD"));
        let r = gate.pass(other, || -> Result<(), ApiError> { panic!("sent") });
        assert!(matches!(r, Err(ApiError::Withheld(_))), "{r:?}");
    }

    #[test]
    fn an_accepted_credential_fans_out_and_a_later_refusal_says_so() {
        let gate = Gate::default();
        let good = Key::of(2087, "root", &Secret::new("GOOD"));
        for _ in 0..3 {
            gate.pass(good, || Ok::<_, ApiError>(())).unwrap();
        }
        let r = gate.pass(good, || Err::<(), _>(refused()));
        match r {
            Err(ApiError::RefusedAfter { accepted: 3, .. }) => {}
            other => panic!("{other:?}"),
        }
        let text = gate
            .pass(good, || Ok::<_, ApiError>(()))
            .unwrap_err()
            .to_string();
        assert!(text.starts_with("not sent"), "{text}");
    }

    #[test]
    fn a_refusal_after_acceptance_stops_every_credential_on_the_host() {
        let gate = Gate::default();
        let alice = Key::of(2083, "alice", &Secret::new("A"));
        let bob = Key::of(2083, "bob", &Secret::new("B"));
        gate.pass(alice, || Ok::<_, ApiError>(())).unwrap();
        gate.pass(bob, || Ok::<_, ApiError>(())).unwrap();
        // cPHulk starts blocking: bob is refused after having been accepted.
        let r = gate.pass(bob, || Err::<(), _>(refused()));
        assert!(matches!(r, Err(ApiError::RefusedAfter { .. })), "{r:?}");
        // Alice was accepted too, but nothing more goes to this host.
        let r = gate.pass(alice, || -> Result<(), ApiError> { panic!("sent") });
        assert!(matches!(r, Err(ApiError::Withheld(_))), "{r:?}");
    }

    #[test]
    fn no_answer_says_nothing_and_the_next_caller_probes() {
        let gate = Gate::default();
        let k = Key::new_tokens(2083);
        let lost = ApiError::Transport(crate::transport::TransportError::Timeout { sent: true });
        assert!(gate.pass(k, || Err::<(), _>(lost.clone())).is_err());
        gate.pass(k, || Ok::<_, ApiError>(())).unwrap();
        // An API refusal is an answer: the login passed.
        let other = Key::of(2087, "root", &Secret::new("X"));
        let _ = gate.pass(other, || {
            Err::<(), _>(ApiError::Rejected("no such user".into()))
        });
        gate.pass(other, || Ok::<_, ApiError>(())).unwrap();
    }
}
