//! Why this module exists: one machine is not enough for every fleet, and the engines people
//! already run (GNU parallel, a Kubernetes Indexed Job, AWX job slicing) start N copies of a
//! command and hand each its index. `--shard K/N` makes each copy a complete run over a disjoint
//! part of the inventory: a host belongs to the shard of highest rendezvous weight
//! (highest-random-weight hashing, SHA-256 of the host's name and the shard number), so the
//! split is the same on every machine and every run, every host is in exactly one shard of N,
//! and adding a host moves only that host. Partitioning is by host, never by account: per-host
//! caps, cPHulk budgets and WHM `batch` grouping stay inside one process. See docs/DESIGN.md §1.

use crate::error::Problem;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The most shards a run may be split into: more than any engine's sensible fan-out for one
/// fleet (AWX advises slices ≤ controller nodes), small enough that placing a host (one hash
/// per shard) stays cheap for a 10,000-host inventory.
pub const MAX_SHARDS: u32 = 1000;

/// The environment variable a Kubernetes Indexed Job sets in each pod: the 0-based index.
pub const INDEX_ENV: &str = "JOB_COMPLETION_INDEX";

/// Shard `k` of `n`, 1-based (AWX's "Job Slice K/N").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Shard {
    pub k: u32,
    pub n: u32,
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.k, self.n)
    }
}

impl Shard {
    /// `--shard K/N`.
    pub fn parse(raw: &str) -> Result<Shard, Problem> {
        let bad = |why: String| {
            Problem::new("--shard", why).hint(format!(
                "give K/N with 1 <= K <= N <= {MAX_SHARDS}, e.g. --shard 3/8 (GNU parallel: --shard {{}}/8; \
                 a Kubernetes Indexed Job: --shard-count 8, which reads {INDEX_ENV})"
            ))
        };
        let (k, n) = raw
            .split_once('/')
            .ok_or_else(|| bad(format!("\"{raw}\" is not K/N")))?;
        let num = |s: &str, what: &str| {
            s.trim()
                .parse::<u32>()
                .map_err(|_| bad(format!("\"{raw}\": {what} \"{s}\" is not a whole number")))
        };
        Shard::new(num(k, "K")?, num(n, "N")?).map_err(bad)
    }

    /// `--shard-count N` with K from `JOB_COMPLETION_INDEX` (0-based, so K = index + 1).
    pub fn from_index(n: u32, index: Option<&str>) -> Result<Shard, Problem> {
        let hint = format!(
            "{INDEX_ENV} is set by a Kubernetes Job with completionMode: Indexed; elsewhere use --shard K/N"
        );
        let Some(raw) = index else {
            return Err(Problem::new(
                "--shard-count",
                format!("needs {INDEX_ENV} in the environment (the 0-based index of this shard)"),
            )
            .hint(hint));
        };
        let index: u32 = raw.trim().parse().map_err(|_| {
            Problem::new(
                INDEX_ENV,
                format!("\"{raw}\" is not a whole number (the 0-based index of this shard)"),
            )
            .hint(hint.clone())
        })?;
        Shard::new(index.saturating_add(1), n).map_err(|why| {
            Problem::new(
                INDEX_ENV,
                format!("{INDEX_ENV}={raw} with --shard-count {n}: {why}"),
            )
            .hint(format!(
                "completions of the Job must equal --shard-count (indexes 0 to {})",
                n.saturating_sub(1)
            ))
        })
    }

    fn new(k: u32, n: u32) -> Result<Shard, String> {
        if n == 0 || n > MAX_SHARDS {
            return Err(format!("N must be 1 to {MAX_SHARDS}, not {n}"));
        }
        if k == 0 || k > n {
            return Err(format!("K must be 1 to {n} (shards count from 1), not {k}"));
        }
        Ok(Shard { k, n })
    }

    /// `3-of-8`: what default file names carry, so shards sharing a folder do not collide.
    pub fn label(&self) -> String {
        format!("{}-of-{}", self.k, self.n)
    }

    /// Whether the host named `name` is in this shard.
    pub fn contains(&self, name: &str) -> bool {
        owner(name, self.n) == self.k
    }
}

/// The shard (1-based) of `n` that the host named `name` belongs to: the one of highest weight
/// SHA-256("tokenfleet-shard\0" name "\0" k), ties to the lowest k.
pub fn owner(name: &str, n: u32) -> u32 {
    let mut base = Sha256::new();
    base.update(b"tokenfleet-shard\0");
    base.update(name.as_bytes());
    base.update(b"\0");
    let mut best = (0u64, 1u32);
    for k in 1..=n.max(1) {
        let mut h = base.clone();
        h.update(k.to_string().as_bytes());
        let d = h.finalize();
        let w = u64::from_be_bytes(d[..8].try_into().expect("8 bytes"));
        if k == 1 || w > best.0 {
            best = (w, k);
        }
    }
    best.1
}

/// `{shard}` in a path (-o, --journal, --report) becomes `K-of-N`, so one command line serves
/// every shard (a Kubernetes Job's pods all share theirs). `None`: the path has no `{shard}`.
/// `Err`: it has one, but the run has no shard.
pub fn expand_path(
    path: &std::path::Path,
    flag: &str,
    shard: Option<Shard>,
) -> Result<Option<std::path::PathBuf>, Problem> {
    let text = path.to_string_lossy();
    if !text.contains("{shard}") {
        return Ok(None);
    }
    match shard {
        Some(s) => Ok(Some(text.replace("{shard}", &s.label()).into())),
        None => Err(Problem::new(
            flag,
            format!("\"{text}\" uses {{shard}}, but this run is not a shard"),
        )
        .hint("add --shard K/N (or --shard-count N with JOB_COMPLETION_INDEX), or drop {shard}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("web{i:04}.example.net")).collect()
    }

    #[test]
    fn every_host_is_in_exactly_one_shard() {
        let hosts = names(500);
        for n in [1, 2, 3, 8, 17] {
            for h in &hosts {
                let inside: Vec<u32> = (1..=n).filter(|&k| Shard { k, n }.contains(h)).collect();
                assert_eq!(inside.len(), 1, "{h} with N={n}: {inside:?}");
            }
        }
    }

    #[test]
    fn the_split_is_even_enough_and_stable() {
        let hosts = names(800);
        let mut counts = [0usize; 8];
        for h in &hosts {
            counts[owner(h, 8) as usize - 1] += 1;
        }
        // 100 expected per shard; a fair hash stays well inside this.
        assert!(
            counts.iter().all(|&c| (60..=140).contains(&c)),
            "{counts:?}"
        );
        // Fixed forever: the same host lands in the same shard on every machine and release
        // (a change here would split a running fleet differently).
        assert_eq!(owner("web1", 8), owner("web1", 8));
        let pinned: Vec<u32> = ["web1", "web2", "db1", "mail.example.com"]
            .iter()
            .map(|h| owner(h, 4))
            .collect();
        assert_eq!(pinned, PINNED_4);
    }

    /// `owner` of web1, web2, db1, mail.example.com for N = 4, computed apart from this code
    /// (Python's hashlib over the same bytes), so a script can place hosts the same way.
    const PINNED_4: [u32; 4] = [2, 1, 3, 4];

    #[test]
    fn adding_a_shard_moves_hosts_only_into_the_new_shard() {
        // Rendezvous: going from N to N+1 shards, a host either stays or moves to shard N+1.
        for h in names(300) {
            let (before, after) = (owner(&h, 5), owner(&h, 6));
            assert!(before == after || after == 6, "{h}: {before} -> {after}");
        }
    }

    #[test]
    fn k_and_n_are_checked() {
        assert_eq!(Shard::parse("3/8").unwrap(), Shard { k: 3, n: 8 });
        assert_eq!(Shard::parse(" 1 / 1 ").unwrap(), Shard { k: 1, n: 1 });
        for bad in ["0/8", "9/8", "3", "a/8", "3/0", "1/1001", "-1/4", "3/8/2"] {
            let p = Shard::parse(bad).unwrap_err();
            assert!(p.to_string().contains("--shard"), "{bad}: {p}");
        }
        assert_eq!(
            Shard::from_index(8, Some("0")).unwrap(),
            Shard { k: 1, n: 8 }
        );
        assert_eq!(
            Shard::from_index(8, Some("7")).unwrap(),
            Shard { k: 8, n: 8 }
        );
        assert!(Shard::from_index(8, Some("8")).is_err());
        assert!(Shard::from_index(8, None).is_err());
        assert!(Shard::from_index(8, Some("x")).is_err());
    }

    #[test]
    fn shard_in_a_path() {
        let s = Some(Shard { k: 3, n: 8 });
        let p = std::path::Path::new("out/ci.{shard}.age");
        assert_eq!(
            expand_path(p, "-o", s).unwrap().unwrap(),
            std::path::PathBuf::from("out/ci.3-of-8.age")
        );
        assert!(
            expand_path(std::path::Path::new("ci.age"), "-o", s)
                .unwrap()
                .is_none()
        );
        assert!(expand_path(p, "-o", None).is_err());
    }
}
