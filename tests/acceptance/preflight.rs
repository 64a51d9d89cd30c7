//! Pre-flight checks of the output side: what would fail only after tokens exist is refused
//! before the first request (exit 2, nothing contacted, nothing written).

use crate::common::*;

/// A dangling `-o` symlink (its target's folder is gone: an unmounted volume) used to pass the
/// pre-flight checks; the run then minted every token and failed to write the handoff (exit 3).
/// It is refused up front, `--force` or not, and nothing is sent or written.
#[test]
fn a_dangling_output_symlink_is_refused_before_any_request() {
    let env = Env::start(small_fleet(1, 2));
    let link = env.path("out.age");
    std::os::unix::fs::symlink(env.path("unmounted/out.age"), &link).unwrap();
    let requests = env.total_requests();
    for force in [false, true] {
        let mut args = vec![
            "create",
            "-i",
            env.toml(),
            "--name",
            "dangling",
            "-r",
            &env.recipient,
            "-o",
            "out.age",
        ];
        if force {
            args.push("--force");
        }
        let run = env.run(&args);
        run.expect(2);
        assert!(
            run.stderr.contains("error: -o: out.age is a symlink to ")
                && run
                    .stderr
                    .contains("unmounted/out.age, which does not exist")
                && run.stderr.contains("nothing was contacted"),
            "--force {force}: {}",
            run.stderr
        );
        assert_eq!(env.total_requests(), requests, "no request sent");
        let mut left: Vec<String> = std::fs::read_dir(env.dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("out.age"))
            .collect();
        left.sort();
        assert_eq!(
            left,
            ["out.age"],
            "no journal, no lock file, the link untouched"
        );
        assert!(
            std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
    }
}
