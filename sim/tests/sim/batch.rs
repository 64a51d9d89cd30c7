//! WHM API 1 `batch`: commands run in order as if sent alone (same auth, state and per-route
//! faults), one envelope per command in `data.result`, partial failure, `abort_on_error`, the
//! cap, the lost answer after the batch ran, and the counters.

use cpanel_sim::{Faults, FleetSpec, MAX_BATCH_COMMANDS};
use serde_json::json;

use super::*;

fn env() -> Env {
    Env::start(FleetSpec::uniform(1, 3))
}

fn list(account: &str) -> String {
    format!("uapi_cpanel?cpanel.user={account}&cpanel.module=Tokens&cpanel.function=list")
}

fn create(account: &str, name: &str) -> String {
    format!(
        "uapi_cpanel?cpanel.user={account}&cpanel.module=Tokens&cpanel.function=create_full_access&name={name}"
    )
}

fn send(env: &Env, h: &SimHost, commands: &[String], abort: bool) -> Reply {
    let mut form: Vec<(&str, &str)> = commands.iter().map(|c| ("command", c.as_str())).collect();
    if abort {
        form.push(("abort_on_error", "1"));
    }
    whm_post(&env.client, h, Some(&env.root_auth()), "batch", &form)
}

#[test]
fn each_command_runs_as_if_alone_and_answers_in_order() {
    let env = env();
    let h = env.fleet.hosts()[0].clone();
    let accts = h.accounts();
    h.reset_stats();
    let cmds = vec![
        create(&accts[0], "ci-a"),
        list(&accts[0]),
        create(&accts[1], "ci-b"),
        "version".to_string(),
    ];
    let v = send(&env, &h, &cmds, false).json();
    assert_eq!(v["metadata"]["command"], "batch");
    assert_eq!(v["metadata"]["result"], 1, "{v}");
    let r = v["data"]["result"].as_array().unwrap();
    assert_eq!(r.len(), 4);
    assert_eq!(r[0]["metadata"]["command"], "uapi_cpanel");
    let secret = r[0]["data"]["uapi"]["data"]["token"].as_str().unwrap();
    assert!(h.token_valid(&accts[0], secret));
    // The list after the create sees it: commands run in order on the same state.
    let names: Vec<&str> = r[1]["data"]["uapi"]["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["ci-a"]);
    assert_eq!(h.account_tokens(&accts[1]).len(), 1);
    assert!(r[3]["data"]["version"].as_str().unwrap().starts_with("11."));
    let s = h.stats();
    assert_eq!((s.batches, s.batch_commands), (1, 4));
    assert_eq!(s.total_requests, 1, "one HTTPS request");
    assert_eq!(s.count("whm/batch"), 1);
    assert_eq!(s.count("whm/uapi_cpanel/Tokens/create_full_access"), 2);
    assert_eq!(s.mutations(), 2);
}

#[test]
fn partial_failure_answers_every_command_and_abort_on_error_stops_at_the_first() {
    let env = env();
    let h = env.fleet.hosts()[0].clone();
    let accts = h.accounts();
    let cmds = vec![
        create(&accts[0], "ci"),
        create("nosuchuser", "ci"),
        create(&accts[1], "ci"),
        // A duplicate: the inner UAPI call fails, metadata.result stays 1 (as uapi_cpanel does).
        create(&accts[0], "ci"),
    ];
    let v = send(&env, &h, &cmds, false).json();
    assert_eq!(v["metadata"]["result"], 0, "a command failed: {v}");
    let r = v["data"]["result"].as_array().unwrap();
    assert_eq!(r.len(), 4);
    assert_eq!(r[1]["metadata"]["result"], 0);
    assert!(
        r[1]["metadata"]["reason"]
            .as_str()
            .unwrap()
            .contains("nosuchuser")
    );
    assert_eq!(r[2]["data"]["uapi"]["status"], 1);
    assert_eq!(r[3]["metadata"]["result"], 1);
    assert_eq!(r[3]["data"]["uapi"]["status"], 0);
    assert_eq!(h.account_tokens(&accts[1]).len(), 1);

    let cmds = vec![
        create(&accts[2], "a"),
        create("nosuchuser", "a"),
        create(&accts[2], "b"),
    ];
    let v = send(&env, &h, &cmds, true).json();
    let r = v["data"]["result"].as_array().unwrap();
    assert_eq!(r.len(), 2, "the command after the failure is absent: {v}");
    let names: Vec<String> = h
        .account_tokens(&accts[2])
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(names, vec!["a".to_string()], "b never ran");
}

#[test]
fn auth_is_the_batch_s_and_faults_apply_per_command() {
    let env = env();
    let h = env.fleet.hosts()[0].clone();
    let accts = h.accounts();
    let cmds = [list(&accts[0])];
    let form = [("command", cmds[0].as_str())];
    let r = whm_post(
        &env.client,
        &h,
        Some("whm root:WRONGWRONGWRONG"),
        "batch",
        &form,
    );
    assert_eq!(r.status, 401);
    assert_eq!(
        h.stats().failed_auth,
        1,
        "one failed login for the whole batch"
    );
    assert_eq!(h.stats().batches, 0);

    let mut f = Faults::default();
    f.fail_routes
        .insert("whm/uapi_cpanel/Tokens/create_full_access".into(), 503);
    h.set_faults(f);
    let v = send(&env, &h, &[list(&accts[0]), create(&accts[0], "x")], false).json();
    let r = v["data"]["result"].as_array().unwrap();
    assert_eq!(r[0]["data"]["uapi"]["status"], 1);
    assert_eq!(r[1]["metadata"]["result"], 0);
    assert!(
        h.account_tokens(&accts[0]).is_empty(),
        "the failed route did nothing"
    );

    // A refusal is the request's: the whole batch is refused, nothing runs.
    let mut f = Faults::default();
    f.fail_routes
        .insert("whm/uapi_cpanel/Tokens/create_full_access".into(), 401);
    h.set_faults(f);
    let r = send(&env, &h, &[list(&accts[0]), create(&accts[0], "x")], false);
    assert_eq!(r.status, 401);
    assert!(h.account_tokens(&accts[0]).is_empty());

    let mut f = Faults::default();
    f.fail_routes.insert("whm/batch".into(), 503);
    h.set_faults(f);
    assert_eq!(send(&env, &h, &[list(&accts[0])], false).status, 503);
}

#[test]
fn a_lost_batch_answer_ran_every_command() {
    let env = env();
    let h = env.fleet.hosts()[0].clone();
    let accts = h.accounts();
    h.set_faults(Faults {
        drop_batch_answers: 1,
        ..Faults::default()
    });
    let cmds = [create(&accts[0], "ci"), create(&accts[1], "ci")];
    let mut form: Vec<(&str, &str)> = cmds.iter().map(|c| ("command", c.as_str())).collect();
    form.push(("abort_on_error", "0"));
    assert!(try_whm_post(&env.client, &h, Some(&env.root_auth()), "batch", &form).is_err());
    assert_eq!(h.account_tokens(&accts[0]).len(), 1);
    assert_eq!(h.account_tokens(&accts[1]).len(), 1);
    // Used up: the next batch answers.
    assert_eq!(send(&env, &h, &[list(&accts[0])], false).status, 200);
}

#[test]
fn too_many_commands_are_refused_whole_and_none_is_an_error() {
    let env = env();
    let h = env.fleet.hosts()[0].clone();
    let accts = h.accounts();
    let cmds: Vec<String> = (0..=MAX_BATCH_COMMANDS)
        .map(|i| create(&accts[0], &format!("t{i}")))
        .collect();
    let v = send(&env, &h, &cmds, false).json();
    assert_eq!(v["metadata"]["result"], 0);
    assert!(
        v["metadata"]["reason"]
            .as_str()
            .unwrap()
            .contains("at most")
    );
    assert!(h.account_tokens(&accts[0]).is_empty(), "nothing ran");
    let v = whm_post(&env.client, &h, Some(&env.root_auth()), "batch", &[]).json();
    assert_eq!(v["metadata"]["result"], 0);
    assert_eq!(
        v["metadata"],
        json!({"command":"batch","reason":v["metadata"]["reason"],"result":0,"version":1})
    );
}

#[test]
fn the_per_command_cost_is_a_fault_key() {
    let file = cpanel_sim::FaultsFile::parse(
        "[default]\nbatch_command_latency = \"3ms\"\ndrop_batch_answers = 2\n",
        "t",
    )
    .unwrap();
    let env = env();
    env.fleet.apply_faults(&file).unwrap();
    let f = env.fleet.hosts()[0].faults();
    assert_eq!(f.batch_command_latency.0, Duration::from_millis(3));
    assert_eq!(f.drop_batch_answers, 2);
    assert_eq!(
        Faults::default().batch_command_latency.0,
        Duration::from_millis(1)
    );
}
