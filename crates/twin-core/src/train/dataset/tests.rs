use super::*;

fn stored(prompt: &str, format: Option<&str>, topic: Option<&str>) -> ExampleRecord {
    ExampleRecord {
        idx: 0,
        split: Split::Test,
        kind: ExampleKind::User,
        document_path: Some("a.md".into()),
        messages: serde_json::to_value([
            ChatMessage::user(prompt),
            ChatMessage::assistant("My own words."),
        ])
        .unwrap(),
        format: format.map(str::to_string),
        topic: topic.map(str::to_string),
    }
}

#[test]
fn an_example_keeps_its_request_as_data_whatever_the_prompt_says() {
    // A customised `draft` template renders no "Write a … about:" line: the stored request
    // still comes back, and round-trips through the record.
    let record = stored(
        "Compose something on hand planes.",
        Some("thread"),
        Some("hand planes"),
    );
    let example = Example::from_record(&record).unwrap();
    assert_eq!(
        example.request,
        Some((Format::Thread, "hand planes".into()))
    );
    assert_eq!(example.to_record(0), record);
    // A dataset stored before the request was kept as data falls back to the stock line.
    let old = stored(
        "Write a LinkedIn post about: sharpening\nAbout 120 words.",
        None,
        None,
    );
    assert_eq!(
        Example::from_record(&old).unwrap().request,
        Some((Format::Linkedin, "sharpening".into()))
    );
}

#[test]
fn passages_keep_own_prose_and_drop_quotes_code_and_boilerplate() {
    let body = "# Title\n\nFirst paragraph of my own words, long enough to count as a real passage of text here.\n\n> Someone else said this clever thing.\n\n```\nfn main() {\n\n    println!(\"hi\");\n}\n```\n\n\"A whole quoted paragraph from a famous person.\"\n\nSubscribe to my newsletter!\n\nSecond paragraph, also mine, which adds a few more words so the passage is comfortably long.";
    let params = DatasetParams {
        min_words: 10,
        ..Default::default()
    };
    let mut filtered = FilterCounts::default();
    let out = passages(body, &params, &mut filtered);
    assert_eq!(out.len(), 1, "{out:?}");
    let text = &out[0].text;
    assert_eq!(out[0].heading.as_deref(), Some("Title"));
    assert!(text.starts_with("First paragraph"));
    assert!(text.contains("Second paragraph"));
    assert!(!text.contains("clever") && !text.contains("println") && !text.contains("Subscribe"));
    assert_eq!(
        (filtered.quotes, filtered.code, filtered.boilerplate),
        (2, 1, 1)
    );
}

#[test]
fn long_documents_split_at_paragraphs_within_the_word_limit() {
    let para = "word ".repeat(80);
    let body = [para.as_str(); 5].join("\n\n");
    let params = DatasetParams {
        max_words: 200,
        ..Default::default()
    };
    let out = passages(&body, &params, &mut FilterCounts::default());
    let counts: Vec<usize> = out.iter().map(|p| word_count(&p.text)).collect();
    assert!(counts.iter().all(|&n| n <= 200), "{counts:?}");
    assert_eq!(counts.iter().sum::<usize>(), 400);
}

#[test]
fn requests_are_phrases_from_the_passage_not_stuck_or_scrambled_words() {
    let passage = "The rule of three: a cabinetmaker inspects a piece three times. \
                   Trick after trick, the Japanese joinery book says the same.";
    assert_eq!(
        usable_topic("The Rule of Three", passage).as_deref(),
        Some("the rule of three")
    );
    // Names the passage always capitalises keep their capital.
    assert_eq!(
        usable_topic("a book on Japanese joinery", passage).as_deref(),
        Some("a book on Japanese joinery")
    );
    assert_eq!(usable_topic("trick trick", passage), None, "stuck");
    assert_eq!(
        usable_topic("the piece of the trick", passage),
        None,
        "no phrase of the passage"
    );
    assert_eq!(usable_topic("how to", passage), None, "no content");
}

#[test]
fn request_words_come_from_the_piece_without_the_authors_name() {
    let words = topic_words(
        "Nell Hart",
        "Pricing the shop",
        Some("Nell's rule"),
        "Nell priced the whole shop.",
    );
    assert_eq!(words, ["pricing", "shop", "rule", "priced", "whole"]);
    assert!(is_title_request(
        "Pricing the shop: Nell's rule",
        "Pricing the shop"
    ));
    assert!(!is_title_request("the whole shop", "Pricing the shop"));
    assert_eq!(
        title_request("Pricing the shop", Some("Rule")),
        "Pricing the shop: Rule"
    );
}

#[test]
fn echoed_or_ungrounded_topics_are_refused() {
    let passage = "Pricing a small product is mostly about courage and arithmetic.";
    assert_eq!(
        usable_topic(
            "The main subject of this text is pricing a small product.",
            passage
        ),
        Some("pricing a small product".into())
    );
    assert_eq!(usable_topic("The topic of the JSON that", passage), None);
    assert_eq!(
        usable_topic("What is the main subject of this text?", passage),
        None
    );
    assert_eq!(usable_topic("The 2019-2023 World Cup", passage), None);
    assert_eq!(usable_topic("Pricing", passage), None);
}

#[test]
fn held_out_split_is_by_document_and_per_platform() {
    let texts: Vec<String> = (0..21).map(|i| format!("Post number {i}.")).collect();
    let docs_under = |root: &str| -> Vec<SplitDocument<'_>> {
        (0..20)
            .map(|i| {
                (
                    format!("{root}/{i}.md"),
                    Some(if i < 10 { "a" } else { "b" }.to_string()),
                    texts[i].as_str(),
                )
            })
            .chain([(
                format!("{root}/only.md"),
                Some("c".to_string()),
                texts[20].as_str(),
            )])
            .collect()
    };
    let params = DatasetParams::default();
    let held = held_out_paths(&docs_under("/d"), &params, &HashMap::new());
    assert_eq!(held.len(), 4, "{held:?}");
    assert!(!held.contains("/d/only.md"));
    assert_eq!(
        held,
        held_out_paths(&docs_under("/d"), &params, &HashMap::new()),
        "the split is deterministic"
    );
    let moved: HashSet<String> =
        held_out_paths(&docs_under("/elsewhere/d"), &params, &HashMap::new())
            .into_iter()
            .map(|p| p.replacen("/elsewhere", "", 1))
            .collect();
    assert_eq!(held, moved, "moving the library keeps the split");
}

#[test]
fn a_rebuilt_dataset_keeps_each_document_on_its_side_and_tops_up_with_new_ones() {
    let texts: Vec<String> = (0..40).map(|i| format!("Post number {i}.")).collect();
    let docs = |n: usize| -> Vec<SplitDocument<'_>> {
        (0..n)
            .map(|i| {
                (
                    format!("/d/{i}.md"),
                    Some("a".to_string()),
                    texts[i].as_str(),
                )
            })
            .collect()
    };
    let params = DatasetParams::default();
    let first = held_out_paths(&docs(20), &params, &HashMap::new());
    assert_eq!(first.len(), 3);
    let previous: HashMap<String, Split> = docs(20)
        .iter()
        .map(|(p, _, _)| {
            let side = if first.contains(p) {
                Split::Test
            } else {
                Split::Train
            };
            (p.clone(), side)
        })
        .collect();
    // Twenty new posts: the old held-out ones stay held out, no old training document moves
    // over (an adapter trained on it would be scored on its own training text), and new ones
    // top the share up to 15% of 40.
    let second = held_out_paths(&docs(40), &params, &previous);
    assert!(first.is_subset(&second), "{first:?} {second:?}");
    assert_eq!(second.len(), 6);
    for p in second.difference(&first) {
        assert!(!previous.contains_key(p), "{p} was trained on before");
    }
    // Without the earlier split, the text order alone would have moved documents across.
    let fresh = held_out_paths(&docs(40), &params, &HashMap::new());
    assert_eq!(fresh.len(), 6);
}
