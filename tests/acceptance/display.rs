//! What an operator sees during and at the end of a run: the live display on a terminal (the
//! binary driven in a pseudo-terminal, its frames rendered with vt100), the heartbeat and
//! per-host lines when piped, `--progress always` and `--color`, one line for a Ctrl-C, and the
//! recap at the end, each troubled host said once.

use crate::common::*;
use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const ROWS: u16 = 30;
const COLS: u16 = 120;

/// The lines of a rendered screen, trailing blanks trimmed.
fn screen_lines(screen: &vt100::Screen) -> Vec<String> {
    screen
        .rows(0, COLS)
        .map(|r| r.trim_end().to_string())
        .collect()
}

/// The colour of the first cell of `word` on the first line of `screen` that contains it.
fn colour_of(screen: &vt100::Screen, word: &str) -> Option<vt100::Color> {
    for (row, line) in screen_lines(screen).iter().enumerate() {
        if let Some(at) = line.find(word) {
            let col = line[..at].chars().count() as u16;
            return screen.cell(row as u16, col).map(|c| c.fgcolor());
        }
    }
    None
}

/// Run tokenfleet with its stderr on a pseudo-terminal of ROWS × COLS (stdout to a file), feed
/// what it draws to a vt100 screen, and call `frame` after each chunk. Bounded: the process is
/// killed past 90 s. Returns the exit code and the last screen.
fn run_in_pty(
    env: &Env,
    args: &[&str],
    vars: &[(&str, &str)],
    mut frame: impl FnMut(&vt100::Screen),
) -> (i32, vt100::Screen) {
    let (mut master, mut slave) = (0, 0);
    let size = libc::winsize {
        ws_row: ROWS,
        ws_col: COLS,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            &size,
        )
    };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    let master = unsafe { OwnedFd::from_raw_fd(master) };
    let slave = unsafe { OwnedFd::from_raw_fd(slave) };
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tokenfleet"));
    cmd.current_dir(env.dir.path())
        .env("WHM_TOKEN", env.fleet.root_token())
        .env("TERM", "xterm-256color")
        .env_remove("NO_COLOR")
        .env_remove("CLICOLOR")
        .env_remove("CLICOLOR_FORCE")
        .env_remove("TOKENFLEET_PASSPHRASE")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(env.path("pty.stdout")).unwrap())
        .stderr(Stdio::from(slave));
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let mut child = cmd.args(args).spawn().expect("tokenfleet starts");
    // Our copy of the terminal's end: closed, so the reader sees the end when the child exits.
    drop(cmd);
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    let mut reader = std::fs::File::from(master);
    let pump = std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        // Ends at EIO (the child's end closed) or EOF.
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut parser = vt100::Parser::new(ROWS, COLS, 0);
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(bytes) => {
                parser.process(&bytes);
                frame(parser.screen());
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) if Instant::now() > deadline => {
                let _ = child.kill();
                break;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
    }
    let code = wait_within(&mut child, Duration::from_secs(10)).expect("tokenfleet ended");
    let _ = pump.join();
    (code, parser.screen().clone())
}

/// A fleet of `hosts` × `accounts` whose every request takes `latency_ms`, host `hung` (by
/// index) never answering.
fn fleet_with_a_hung_host(
    hosts: usize,
    accounts: usize,
    latency_ms: u64,
    hung: usize,
) -> cpanel_sim::FleetSpec {
    let mut spec = slow_fleet(hosts, accounts, latency_ms);
    spec.hosts[hung].faults.hang = true;
    spec
}

/// `create_cmd` of `name` into `out`, with `--progress` set to `progress`, then `extra`: a flag
/// `create_cmd` has already (`-j`, `--per-host`) has its value replaced, others are added.
fn create_with<'a>(
    env: &'a Env,
    name: &'a str,
    out: &'a str,
    progress: &'a str,
    extra: &[&'a str],
) -> Vec<&'a str> {
    let mut args = create_cmd(env, name, out);
    let mut rest = Vec::new();
    for pair in [&["--progress", progress][..], extra].concat().chunks(2) {
        match (pair, args.iter().position(|a| *a == pair[0])) {
            ([_, value], Some(at)) => args[at + 1] = value,
            _ => rest.extend_from_slice(pair),
        }
    }
    args.extend(rest);
    args
}

#[test]
fn on_a_terminal_the_bars_show_counts_rate_eta_a_waiting_host_and_more_hosts_then_a_recap() {
    // 12 hosts: more than the 8 bars that fit; web003 never answers.
    let env = Env::start(fleet_with_a_hung_host(12, 4, 150, 2));
    let args = create_with(
        &env,
        "ui-{account}",
        "ui.age",
        "auto",
        // One call per request: the bars are checked target by target.
        &[
            "--timeout",
            "10",
            "--retries",
            "0",
            "--per-host",
            "1",
            "--batch",
            "1",
        ],
    );
    let mut overall = None::<String>;
    let mut waiting = None::<String>;
    let mut more = None::<String>;
    let mut host_bar_before_its_first_target_done = false;
    let mut created_colour = None;
    let (code, last) = run_in_pty(&env, &args, &[], |screen| {
        let lines = screen_lines(screen);
        for l in &lines {
            if l.contains("/48 targets") && l.contains(" created") && l.contains("ETA") {
                overall.get_or_insert_with(|| l.clone());
                if created_colour.is_none() {
                    created_colour = colour_of(screen, " created").map(|_| {
                        // The count before the word: "12 created" starts at the number.
                        let at = l.find(" created").unwrap();
                        let start = l[..at].rfind(' ').map_or(0, |i| i + 1);
                        let col = l[..start].chars().count() as u16;
                        let row = lines.iter().position(|x| x == l).unwrap() as u16;
                        screen.cell(row, col).unwrap().fgcolor()
                    });
                }
            }
            if l.contains("web003") && l.contains("no answer for") {
                waiting.get_or_insert_with(|| l.clone());
            }
            if l.contains("more hosts") || l.contains("not started") {
                more.get_or_insert_with(|| l.clone());
            }
            // A host bar at 0/4: shown from its first start, before any target finished.
            if l.trim_start().starts_with("web") && l.contains("] 0/4") {
                host_bar_before_its_first_target_done = true;
            }
        }
    });
    assert_eq!(code, 1, "{}", last.contents());
    let overall = overall.expect("an overall bar with counts, rate and ETA was drawn");
    assert!(overall.contains("/s"), "a rate: {overall}");
    assert!(
        overall.trim_start().starts_with("create ["),
        "the verb, then the bar: {overall}"
    );
    let waiting = waiting.expect("the hung host was shown by name while it waited");
    assert!(
        waiting.contains("(u003a0001)"),
        "what it waits on: {waiting}"
    );
    let more = more.expect("a line counts the hosts without a bar");
    assert!(more.contains("+") || more.contains("not started"), "{more}");
    assert!(host_bar_before_its_first_target_done);
    assert_eq!(
        created_colour,
        Some(vt100::Color::Idx(2)),
        "created counts in green on a terminal"
    );
    // The end: bars gone, the recap names the hung host once, the totals last.
    let lines = screen_lines(&last);
    let text = lines.join("\n");
    assert!(
        !text.contains("ETA"),
        "the bars are cleared at the end:\n{text}"
    );
    let recap = lines
        .iter()
        .position(|l| l == "recap (hosts that did not fully succeed):")
        .unwrap_or_else(|| panic!("a recap:\n{text}"));
    assert!(
        lines[recap + 1]
            .starts_with("  web003  1 failed (timed out), 3 skipped (no answer: timed out)"),
        "{text}"
    );
    assert_eq!(text.matches("web003").count(), 1, "said once:\n{text}");
    let last_line = lines.iter().rev().find(|l| !l.is_empty()).unwrap();
    assert_eq!(
        last_line,
        "create: 12 hosts (1 in the recap), 48 targets: 44 created, 1 failed, 3 skipped"
    );
    assert_eq!(colour_of(&last, "1 failed"), Some(vt100::Color::Idx(1)));
}

#[test]
fn no_color_and_color_never_keep_the_terminal_plain() {
    let env = Env::start(small_fleet(2, 2));
    for (vars, flag, name) in [
        (vec![("NO_COLOR", "1")], "auto", "nc-{account}"),
        (vec![], "never", "cn-{account}"),
    ] {
        let args = create_with(&env, name, "ui.age", "auto", &["--color", flag, "--force"]);
        let (code, last) = run_in_pty(&env, &args, &vars, |_| {});
        assert_eq!(code, 0, "{}", last.contents());
        assert_eq!(
            colour_of(&last, "4 created"),
            Some(vt100::Color::Default),
            "{vars:?} --color {flag}: {}",
            last.contents()
        );
    }
}

#[test]
fn piped_a_heartbeat_one_line_per_finished_host_and_the_recap() {
    let env = Env::start(fleet_with_a_hung_host(3, 3, 0, 1));
    let args = create_with(
        &env,
        "ui-{account}",
        "ui.age",
        "auto",
        &["--timeout", "8", "--retries", "0", "--batch", "1"],
    );
    let run = env.run(&args);
    run.expect(1);
    let lines: Vec<&str> = run.stderr.lines().collect();
    // At 5 s the run is still waiting on web002 (its timeout is 8 s).
    let beat = lines
        .iter()
        .find(|l| l.starts_with("create: ") && l.contains("/9 targets"))
        .unwrap_or_else(|| panic!("a heartbeat:\n{}", run.stderr));
    assert!(beat.contains(" created"), "{beat}");
    assert!(beat.contains("/s, ETA "), "{beat}");
    for ok in ["web001: 3 created", "web003: 3 created"] {
        assert_eq!(
            lines.iter().filter(|l| **l == ok).count(),
            1,
            "{ok}:\n{}",
            run.stderr
        );
    }
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("web002: 1 failed, 2 skipped (no answer: timed out)")),
        "{}",
        run.stderr
    );
    // The summary names web002 once, in the recap, and ends with the totals.
    let summary_at = lines
        .iter()
        .position(|l| l.starts_with("recap"))
        .unwrap_or_else(|| panic!("{}", run.stderr));
    let summary = &lines[summary_at..];
    assert_eq!(
        summary.iter().filter(|l| l.contains("web002")).count(),
        1,
        "{summary:#?}"
    );
    assert_eq!(
        summary[1],
        "  web002  1 failed (timed out), 2 skipped (no answer: timed out)"
    );
    assert_eq!(
        *summary.last().unwrap(),
        "create: 3 hosts (1 in the recap), 9 targets: 6 created, 1 failed, 2 skipped"
    );
    assert!(!run.stderr.contains('\x1b'), "no colour when piped");
    env.assert_no_secret_leaked(&[&run], &[]);
}

#[test]
fn progress_always_draws_bars_when_piped_and_color_always_paints_them() {
    let env = Env::start(small_fleet(2, 2));
    let plain = env.run(&create_with(
        &env,
        "a-{account}",
        "a.age",
        "always",
        &["--color", "never"],
    ));
    plain.expect(0);
    assert!(
        plain.stderr.contains("/4 targets"),
        "bars were drawn: {:?}",
        plain.stderr
    );
    assert!(!plain.stderr.contains("\x1b[32m"), "{:?}", plain.stderr);
    let painted = env.run(&create_with(
        &env,
        "b-{account}",
        "b.age",
        "always",
        &["--color", "always"],
    ));
    painted.expect(0);
    assert!(painted.stderr.contains("/4 targets"));
    assert!(
        painted.stderr.contains("\x1b[32m4 created"),
        "{:?}",
        painted.stderr
    );
    let auto = env.run(&create_with(&env, "c-{account}", "c.age", "auto", &[]));
    auto.expect(0);
    assert!(!auto.stderr.contains("/4 targets"), "{}", auto.stderr);
}

#[test]
fn a_ctrl_c_is_said_in_one_line_not_one_per_host() {
    let env = Env::start(slow_fleet(6, 6, 100));
    let args = create_with(
        &env,
        "ui-{account}",
        "ui.age",
        "auto",
        &["-j", "2", "--per-host", "1"],
    );
    let mut child = spawn(&env, &args, "int");
    signal_after_created(&mut child, &env.path("ui.age.journal"), 2, libc::SIGINT);
    assert_eq!(wait_bounded(&mut child), 130);
    let run = read(&env, "int");
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.starts_with("interrupt: finishing requests in flight"))
            .count(),
        1,
        "{}",
        run.stderr
    );
    assert!(
        !lines
            .iter()
            .any(|l| l.starts_with("web") && l.contains("skipped")),
        "no host listed for the interruption:\n{}",
        run.stderr
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("interrupted: ") && l.ends_with("not started")),
        "one line counts what it left:\n{}",
        run.stderr
    );
}

/// The end of a run with a bit of everything: a refused credential, a server error on every
/// create, a suspended account, and a healthy host. Reviewed as text (UPDATE_SNAPSHOTS=1).
#[test]
fn the_recap_of_a_troubled_run() {
    let mut spec = small_fleet(4, 3);
    spec.hosts[2]
        .faults
        .fail_routes
        .insert("whm/uapi_cpanel/Tokens/create_full_access".into(), 500);
    spec.hosts[3].accounts[1].suspended = true;
    let env = Env::start(spec);
    let inv = with_bad_credential(&env, "web002");
    let r = env.recipient.clone();
    let args = [
        "create",
        "-i",
        inv.as_str(),
        "--name",
        "ci",
        "-r",
        r.as_str(),
        "-o",
        "out.age",
        "--jobs",
        "1",
        "--per-host",
        "1",
        "--retries",
        "0",
        "--progress",
        "never",
    ];
    let run = env.run_env(&args, &[("BAD_TOKEN", BAD)]);
    crate::snapshots::assert_snapshot(&env, "recap", &args, &run);
    run.expect(1);
}
