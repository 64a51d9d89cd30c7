//! Unit tests of resume: classification of journal events, plan fingerprints and their diff.

