//! Bad input: exit 2, a message naming file, line or key, field and fix; nothing contacted.

use crate::common::*;

fn refused(env: &Env, name: &str, content: &str, args: &[&str]) -> Run {
    std::fs::write(env.path(name), content).unwrap();
    let mut all = vec![
        "create",
        "-i",
        name,
        "--name",
        "x-{account}",
        "-r",
        env.recipient.as_str(),
        "-o",
        "o.age",
    ];
    all.extend_from_slice(args);
    let run = env.run(&all);
    run.expect(2);
    assert_eq!(env.total_requests(), 0, "nothing contacted");
    assert!(!env.path("o.age").exists());
    run
}

#[test]
fn unknown_csv_column_names_line_and_suggests() {
    let env = Env::start(small_fleet(1, 1));
    let h = &env.fleet.hosts()[0];
    let csv = format!(
        "host,address,whm_prot,account\nweb001,127.0.0.1,{},a\n",
        h.whm_port()
    );
    let run = refused(&env, "bad.csv", &csv, &[]);
    assert!(run.stderr.contains("bad.csv"), "{}", run.stderr);
    assert!(
        run.stderr.contains("whm_prot") && run.stderr.contains("whm_port"),
        "{}",
        run.stderr
    );
}

#[test]
fn missing_env_credential_is_reported_before_any_request() {
    let env = Env::start(small_fleet(1, 1));
    let text = std::fs::read_to_string(&env.files.toml)
        .unwrap()
        .replace("env:WHM_TOKEN", "env:NOT_SET_ANYWHERE");
    let run = refused(&env, "noenv.toml", &text, &[]);
    assert!(run.stderr.contains("NOT_SET_ANYWHERE"), "{}", run.stderr);
}

#[test]
fn literal_secret_is_refused_and_not_echoed() {
    let env = Env::start(small_fleet(1, 1));
    let literal = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";
    let text = std::fs::read_to_string(&env.files.toml)
        .unwrap()
        .replace("env:WHM_TOKEN", literal);
    let run = refused(&env, "literal.toml", &text, &[]);
    assert!(
        run.stderr.contains("env:"),
        "hint names env: {}",
        run.stderr
    );
    assert!(!run.stderr.contains(literal), "the literal is not echoed");
}

#[test]
fn invalid_expanded_name_is_refused() {
    let env = Env::start(small_fleet(1, 1));
    let text = std::fs::read_to_string(&env.files.toml).unwrap();
    std::fs::write(env.path("ok.toml"), text).unwrap();
    let long = "n".repeat(49) + "-{account}";
    let run = env.run(&[
        "create",
        "-i",
        "ok.toml",
        "--name",
        &long,
        "-r",
        &env.recipient,
        "-o",
        "o.age",
    ]);
    run.expect(2);
    assert!(run.stderr.contains("50"), "{}", run.stderr);
    assert_eq!(env.total_requests(), 0);
}

#[test]
fn bad_recipient_and_past_expiry_are_usage_errors() {
    let env = Env::start(small_fleet(1, 1));
    let run = env.run(&[
        "create",
        "-i",
        env.toml(),
        "--name",
        "x",
        "-r",
        "age1notakey",
        "-o",
        "o.age",
    ]);
    run.expect(2);
    let run = env.run(&[
        "create",
        "-i",
        env.toml(),
        "--name",
        "x",
        "-r",
        &env.recipient,
        "-o",
        "o.age",
        "--expires-at",
        "2001-01-01",
    ]);
    run.expect(2);
    assert!(run.stderr.contains("past"), "{}", run.stderr);
    let run = env.run(&["create", "-i", env.toml(), "--name", "x", "-o", "o.age"]);
    run.expect(2);
    assert_eq!(env.total_requests(), 0);
}
