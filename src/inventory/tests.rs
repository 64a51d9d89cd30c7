use super::*;

fn csv(text: &str) -> Result<Inventory, InputError> {
    parse_bytes(text.as_bytes(), Format::Csv, "inv.csv", Path::new("/inv"))
}
fn tml(text: &str) -> Result<Inventory, InputError> {
    parse_bytes(text.as_bytes(), Format::Toml, "inv.toml", Path::new("/inv"))
}
fn problems(r: Result<Inventory, InputError>) -> Vec<Problem> {
    match r {
        Ok(inv) => panic!("expected problems, got {:#?}", inv.hosts),
        Err(e) => e.problems,
    }
}

#[test]
fn csv_lines_count_comments_and_blank_lines() {
    let p = problems(csv(
        "# fleet\nhost,account,whm_port\n\n# web1\nweb1,alice,99999\n",
    ));
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0].location, "inv.csv:5");
}
