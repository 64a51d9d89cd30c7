//! Why this module exists: the fan-out. A rayon pool of `--jobs` threads takes targets from
//! per-host lanes so that no server has more than `per_host` requests in flight, retries what is
//! safe to retry, stops a host at its first refused credential (cPHulk), and turns every outcome,
//! good or bad, into a result. It emits progress events and knows nothing of output formats.
