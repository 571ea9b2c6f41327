#[test]
fn dates_from_unix_time() {
    assert_eq!(super::date_of(0), "1970-01-01");
    assert_eq!(super::date_of(1_709_596_800 * 1_000_000_000), "2024-03-05");
}
