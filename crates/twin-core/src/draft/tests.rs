use super::*;

#[test]
fn a_revision_may_keep_its_draft_s_lines_but_not_echo_its_instructions() {
    let templates = Templates::load(None).unwrap();
    let kept = "Price the whole shop, not just the cut, every single time.";
    let ctx = minijinja::context! {
        topic => "pricing", author => "Nell", format_name => "LinkedIn post", words => 150,
        rules => Format::Linkedin.rules(), draft => kept, critique => "Too long overall, cut it.",
    };
    let source = echo_source(&templates, "revise", &ctx).unwrap();
    assert!(
        !source.contains(kept) && source.contains("Rewrite the draft"),
        "{source}"
    );
    let reply = format!("{kept}\nRewrite the draft so that it is shorter:");
    assert_eq!(format::drop_echoes(&reply, &source), kept);
}

#[test]
fn only_a_topic_naming_a_platform_or_a_year_needs_the_self_query() {
    let platforms: Vec<String> = ["linkedin", "x", "blog", "newsletter"]
        .map(String::from)
        .to_vec();
    for topic in [
        "my 2024 posts on estimates",
        "A LinkedIn post about code review",
        "a thread on jigs",
        "what my blogs say about rest",
        "An X thread on small pull requests",
    ] {
        assert!(may_name_filters(topic, &platforms), "{topic}");
    }
    for topic in [
        "How to price a small software product",
        "the next complex fix",
        "shipping 300 small pull requests",
    ] {
        assert!(!may_name_filters(topic, &platforms), "{topic}");
    }
}

#[test]
fn links_and_read_back_instructions_are_not_search_queries() {
    // The expansion step's answers from the 135M model (traces of 2026-12-03).
    for junk in [
        "https://github.com/john-doe/handling_a_codebase_to_another_m",
        "http://www.w3c.org/2014/07/handling_a_codebase_to_another_m.",
        "with other words than the request, concrete examples of how ",
    ] {
        assert!(!gather::reads_as_query(junk), "{junk}");
    }
    for query in [
        "pricing by the hour",
        "quotes for small clients",
        "handover notes",
    ] {
        assert!(gather::reads_as_query(query), "{query}");
    }
}
