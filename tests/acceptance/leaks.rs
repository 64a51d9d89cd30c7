//! No credential or token reaches an output, whatever a server says (issue 9). Servers that echo
//! the Authorization header (a 401 body, a 403 JSON error, `metadata.reason`) and servers whose
//! inner create errors quote the token they just made are driven through `create` (both scopes),
//! `rotate` and `list`; then no secret the fleet knows (the root credential, every account
//! credential, every token the simulator holds, live or revoked) and no credential the runs used
//! may appear in stdout, stderr, the JSON report or the journal's plaintext (its sealed fields
//! are base64 age ciphertext, so a plain substring search is right).
//!
//! These tests assert "nothing leaked" and a failing exit code where a failure is expected, not
//! the statuses: how create reacts to an inner error is another change's business.

use crate::common::*;
use cpanel_sim::{EchoAuth, Faults};
use std::path::Path;

/// A credential no host accepts (a typo'd or stale WHM token): the runs send it, so the echo
/// quotes it, and it is a credential of the run like any other.
const WRONG_ROOT: &str = "WR0NGR00TT0KENWR0NGR00TT0KEN1234";

/// Everything that must stay secret: what the fleet knows now (root token, every live and
/// revoked token, passwords) plus `extra`.
fn forbidden(env: &Env, extra: &[String]) -> Vec<String> {
    let mut all = env.fleet.known_secrets();
    all.extend(extra.iter().cloned());
    all.extend(env.secrets.iter().cloned());
    all.sort();
    all.dedup();
    assert!(all.len() > 1, "the fleet holds secrets to look for");
    all
}

/// No forbidden string in any run's stdout or stderr, in any of `files` (reports, journals), nor
/// in any other plaintext file of the test's folder.
#[track_caller]
fn assert_nothing_leaked(env: &Env, runs: &[(&str, &Run)], files: &[&str], extra: &[String]) {
    let secrets = forbidden(env, extra);
    for (label, run) in runs {
        for s in &secrets {
            assert!(
                !run.stdout.contains(s.as_str()),
                "{label}: a secret leaked to stdout:\n{}",
                run.stdout
            );
            assert!(
                !run.stderr.contains(s.as_str()),
                "{label}: a secret leaked to stderr:\n{}",
                run.stderr
            );
        }
    }
    for file in files {
        let path = env.path(file);
        assert!(path.exists(), "{file} was written");
        let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
        for s in &secrets {
            assert!(!text.contains(s.as_str()), "a secret leaked into {file}");
        }
    }
    env.assert_no_secret_leaked(&runs.iter().map(|(_, r)| *r).collect::<Vec<_>>(), &secrets);
}

/// The server's text did arrive, and was redacted (not merely absent): some output says
/// `[redacted]` where the echo was.
#[track_caller]
fn assert_redacted_somewhere(env: &Env, runs: &[(&str, &Run)], files: &[&str]) {
    let mut seen = runs
        .iter()
        .any(|(_, r)| r.stderr.contains("[redacted]") || r.stdout.contains("[redacted]"));
    for file in files {
        if let Ok(bytes) = std::fs::read(env.path(file)) {
            seen |= String::from_utf8_lossy(&bytes).contains("[redacted]");
        }
    }
    assert!(
        seen,
        "no output shows the redacted server text: {:#?}",
        runs.iter().map(|(l, r)| (l, &r.stderr)).collect::<Vec<_>>()
    );
}

fn run_strings(env: &Env, args: &[String]) -> Run {
    env.run(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

#[track_caller]
fn assert_failed(label: &str, run: &Run) {
    assert!(
        run.code != 0,
        "{label}: a failure was expected\n--- stderr\n{}",
        run.stderr
    );
    assert!(!run.stderr.contains("panicked"), "{label}: {}", run.stderr);
}

fn echo(mode: EchoAuth, fail: &[(&str, u16)]) -> Faults {
    let mut f = Faults {
        echo_auth: Some(mode),
        ..Faults::default()
    };
    for (route, status) in fail {
        f.fail_routes.insert(route.to_string(), *status);
    }
    f
}

/// `create` with a token name of its own per output (`leak-OUT-{account}`), so no run meets
/// another's tokens.
fn create_args<'a>(env: &'a Env, inv: &'a str, out: &'a str, report: &'a str) -> Vec<String> {
    let name = format!("leak-{}-{{account}}", out.trim_end_matches(".age"));
    [
        "create",
        "-i",
        inv,
        "--name",
        name.as_str(),
        "-r",
        env.recipient.as_str(),
        "-o",
        out,
        "--report",
        report,
        "--retries",
        "1",
        "--timeout",
        "10",
        "--progress",
        "never",
        "-v",
    ]
    .map(String::from)
    .to_vec()
}

/// `rotate` of the `old-*` tokens to `new-OUT-{account}`.
fn rotate_args<'a>(env: &'a Env, inv: &'a str, out: &'a str, report: &'a str) -> Vec<String> {
    let name = format!("new-{}-{{account}}", out.trim_end_matches(".age"));
    [
        "rotate",
        "-i",
        inv,
        "--name",
        name.as_str(),
        "--revoke",
        "old-*",
        "-r",
        env.recipient.as_str(),
        "-o",
        out,
        "--report",
        report,
        "--retries",
        "1",
        "--timeout",
        "10",
        "--progress",
        "never",
        "-v",
    ]
    .map(String::from)
    .to_vec()
}

fn list_args<'a>(inv: &'a str, report: &'a str) -> Vec<&'a str> {
    vec![
        "list",
        "-i",
        inv,
        "--format",
        "json",
        "--report",
        report,
        "--retries",
        "1",
        "--progress",
        "never",
        "-v",
    ]
}

/// Seed an `old-ci` token on every account of every host (what `rotate` replaces).
fn seed_old(env: &Env) {
    for h in env.fleet.hosts() {
        for a in h.accounts() {
            h.add_account_token(&a, "old-ci", None);
        }
    }
}

/// One echoing host (web001) next to a healthy one, every command: the root credential, a wrong
/// credential, the new tokens a failed verify sends and the accounts' own credentials are all
/// quoted back by the server, and none of them reaches an output.
fn echo_case(mode: EchoAuth, status: u16) {
    let env = Env::start(small_fleet(2, 2));
    seed_old(&env);
    let h = env.fleet.host("web001");
    let toml = env.toml().to_string();
    // "reason" refuses every create by itself (quoting the credential in the create's failure
    // envelope); the status modes need the create routes refused.
    let reason = mode == EchoAuth::Reason;
    let refused = |routes: &[&'static str]| -> Vec<(&'static str, u16)> {
        if reason {
            Vec::new()
        } else {
            routes.iter().map(|r| (*r, status)).collect()
        }
    };
    let create_routes = refused(&[
        "whm/uapi_cpanel/Tokens/create_full_access",
        "whm/api_token_create",
    ]);
    let mut runs: Vec<(&str, Run)> = Vec::new();
    let mut files: Vec<&str> = Vec::new();

    h.set_faults(echo(mode, &create_routes));
    let run = run_strings(&env, &create_args(&env, &toml, "c.age", "c.json"));
    assert_failed("create", &run);
    runs.push(("create", run));
    files.extend(["c.json", "c.age.journal"]);

    let mut whm = create_args(&env, &toml, "w.age", "w.json");
    whm.extend(["--scope".to_string(), "whm".to_string()]);
    let run = run_strings(&env, &whm);
    assert_failed("create --scope whm", &run);
    runs.push(("create --scope whm", run));
    files.extend(["w.json", "w.age.journal"]);

    // The verify of a rotation authenticates with the new token on the cPanel port: refused
    // there, the echo quotes the new token.
    let verify = [("cpanel/Tokens/list", status)];
    h.set_faults(echo(mode, &verify));
    let run = run_strings(&env, &rotate_args(&env, &toml, "r.age", "r.json"));
    assert_failed("rotate", &run);
    runs.push(("rotate", run));
    files.extend(["r.json", "r.age.journal"]);

    h.set_faults(echo(mode, &[("whm/uapi_cpanel/Tokens/list", status)]));
    let run = env.run(&list_args(&toml, "l.json"));
    assert_failed("list", &run);
    runs.push(("list", run));
    files.push("l.json");

    // A wrong credential is refused by the login check itself (one failure per host: far
    // below cPHulk's limit), and echoed.
    h.set_faults(echo(mode, &[]));
    let run = env.run_env(&list_args(&toml, "lw.json"), &[("WHM_TOKEN", WRONG_ROOT)]);
    assert_failed("list with a wrong credential", &run);
    runs.push(("list with a wrong credential", run));
    files.push("lw.json");

    // Accounts with their own credentials (`api = "cpanel"`): the echo quotes them.
    env.cpanel_inventory("own.toml");
    h.set_faults(echo(mode, &[("cpanel/Tokens/list", status)]));
    let run = env.run(&list_args("own.toml", "lo.json"));
    assert_failed("list with account credentials", &run);
    runs.push(("list with account credentials", run));
    files.push("lo.json");
    h.set_faults(echo(mode, &refused(&["cpanel/Tokens/create_full_access"])));
    let run = run_strings(&env, &create_args(&env, "own.toml", "o.age", "o.json"));
    assert_failed("create with account credentials", &run);
    runs.push(("create with account credentials", run));
    files.extend(["o.json", "o.age.journal"]);

    let runs: Vec<(&str, &Run)> = runs.iter().map(|(l, r)| (*l, r)).collect();
    assert_nothing_leaked(&env, &runs, &files, &[WRONG_ROOT.to_string()]);
    assert_redacted_somewhere(&env, &runs, &files);
    // The healthy host did its work: live tokens whose secrets were just checked.
    assert!(
        env.fleet
            .host("web002")
            .live_tokens()
            .iter()
            .any(|t| t.name.starts_with("leak-") || t.name.starts_with("new-")),
        "web002 minted tokens"
    );
}

#[test]
fn an_echoed_header_in_a_401_body_leaks_nothing() {
    echo_case(EchoAuth::Unauthorized, 401);
}

#[test]
fn an_echoed_header_in_a_403_json_error_leaks_nothing() {
    echo_case(EchoAuth::Forbidden, 403);
}

#[test]
fn an_echoed_header_in_metadata_reason_leaks_nothing() {
    echo_case(EchoAuth::Reason, 401);
}

/// Every create on web001 is performed and answered with an inner error quoting the new token:
/// through `uapi_cpanel`, on the cPanel port (account credentials) and for WHM tokens. The
/// tokens exist on the server (live, or revoked by a reconcile); none of them, and no
/// credential, reaches an output.
#[test]
fn inner_errors_quoting_new_tokens_leak_nothing() {
    let env = Env::start(small_fleet(2, 3));
    seed_old(&env);
    let h = env.fleet.host("web001");
    let toml = env.toml().to_string();
    let inner = |n: u32| Faults {
        inner_error_after_create: n,
        ..Faults::default()
    };
    let mut runs: Vec<(&str, Run)> = Vec::new();
    let mut files: Vec<&str> = Vec::new();

    h.set_faults(inner(100));
    let run = run_strings(&env, &create_args(&env, &toml, "c.age", "c.json"));
    assert_failed("create", &run);
    runs.push(("create", run));
    files.extend(["c.json", "c.age.journal"]);

    let mut whm = create_args(&env, &toml, "w.age", "w.json");
    whm.extend(["--scope".to_string(), "whm".to_string()]);
    let run = run_strings(&env, &whm);
    assert_failed("create --scope whm", &run);
    runs.push(("create --scope whm", run));
    files.extend(["w.json", "w.age.journal"]);

    h.set_faults(inner(100));
    let run = run_strings(&env, &rotate_args(&env, &toml, "r.age", "r.json"));
    assert_failed("rotate", &run);
    runs.push(("rotate", run));
    files.extend(["r.json", "r.age.journal"]);

    // `list` sees whatever the failed runs left; it creates nothing, so it may succeed.
    let run = env.run(&list_args(&toml, "l.json"));
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    runs.push(("list", run));
    files.push("l.json");

    env.cpanel_inventory("own.toml");
    h.set_faults(inner(100));
    let run = run_strings(&env, &create_args(&env, "own.toml", "o.age", "o.json"));
    assert_failed("create with account credentials", &run);
    runs.push(("create with account credentials", run));
    files.extend(["o.json", "o.age.journal"]);
    let run = run_strings(&env, &rotate_args(&env, "own.toml", "or.age", "or.json"));
    assert_failed("rotate with account credentials", &run);
    runs.push(("rotate with account credentials", run));
    files.extend(["or.json", "or.age.journal"]);

    let made = h.live_tokens().len() + h.revoked_tokens().len();
    assert!(
        made > 2 * 3,
        "the creates were performed on web001 ({made} tokens live or revoked)"
    );
    let runs: Vec<(&str, &Run)> = runs.iter().map(|(l, r)| (*l, r)).collect();
    assert_nothing_leaked(&env, &runs, &files, &[]);
}

/// Answers the client cannot read (over the body cap) or cannot trust (an odd-shaped `token`,
/// which may hold the real secret nested or re-cased) after tokens were made: nothing of them
/// reaches an output either.
#[test]
fn oversized_and_odd_create_answers_leak_nothing() {
    let env = Env::start(small_fleet(3, 4));
    env.fleet.host("web001").set_faults(Faults {
        oversized_after_create: 100,
        ..Faults::default()
    });
    env.fleet.host("web002").set_faults(Faults {
        odd_token_after_create: 100,
        ..Faults::default()
    });
    let run = run_strings(&env, &create_args(&env, env.toml(), "c.age", "c.json"));
    assert_failed("create", &run);
    let secrets = forbidden(&env, &[]);
    // The odd shapes include the secret in lower case: look for that too.
    let lower: Vec<String> = secrets.iter().map(|s| s.to_ascii_lowercase()).collect();
    assert_nothing_leaked(
        &env,
        &[("create", &run)],
        &["c.json", "c.age.journal"],
        &lower,
    );
}

/// A journal is plaintext JSON Lines around sealed secrets: a leak check that searched only the
/// report would miss a `failed` record quoting the server, so the check must see the journal's
/// text. Guard that the journal is a file of JSON lines, not itself sealed.
#[test]
fn the_journal_is_searchable_plaintext() {
    // web002 mints, so the journal (which holds web001's `failed` record) is kept.
    let env = Env::start(small_fleet(2, 1));
    env.fleet.host("web001").set_faults(Faults {
        inner_error_after_create: 1,
        ..Faults::default()
    });
    let run = run_strings(&env, &create_args(&env, env.toml(), "c.age", "c.json"));
    assert_failed("create", &run);
    let journal = std::fs::read_to_string(env.path("c.age.journal")).unwrap();
    assert!(
        journal
            .lines()
            .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()),
        "{journal}"
    );
    assert!(Path::new(&env.path("c.json")).exists());
    assert_nothing_leaked(&env, &[("create", &run)], &["c.json", "c.age.journal"], &[]);
}
