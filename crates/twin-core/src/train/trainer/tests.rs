#[test]
fn a_damaged_checkpoint_starts_the_run_over_instead_of_failing_every_retry() {
    let dir = tempfile::tempdir().unwrap();
    let device = candle_core::Device::Cpu;
    std::fs::write(dir.path().join("checkpoint.json"), "{\"step\": 3, \"tens").unwrap();
    assert!(super::read_checkpoint(dir.path(), &device)
        .unwrap()
        .is_none());
}

use super::*;

#[test]
fn settings_no_run_should_start_with_are_refused_with_a_reason() {
    assert!(TrainParams::default().validate().is_ok());
    let mut p = TrainParams::default();
    p.lora.rank = 1_000_000;
    assert!(p
        .validate()
        .unwrap_err()
        .to_string()
        .contains("rank 1000000"));
    let p = TrainParams {
        sequence_tokens: 1 << 30,
        ..TrainParams::default()
    };
    assert!(p
        .validate()
        .unwrap_err()
        .to_string()
        .contains("sequence length"));
    let p = TrainParams {
        epochs: f64::NAN,
        ..TrainParams::default()
    };
    assert!(p.validate().is_err());
    let p = TrainParams {
        max_steps: Some(0),
        ..TrainParams::default()
    };
    assert!(p.validate().is_err());
}

#[test]
fn packing_keeps_examples_whole_and_under_the_limit() {
    let a = EncodedExample {
        tokens: (0..10).collect(),
        prompt_len: 6,
    };
    let b = EncodedExample {
        tokens: (100..108).collect(),
        prompt_len: 3,
    };
    let c = EncodedExample {
        tokens: (200..215).collect(),
        prompt_len: 5,
    };
    let seqs = pack(&[&a, &b, &c], 20);
    assert_eq!(seqs.len(), 2);
    assert_eq!(seqs[0].len(), 9 + 7);
    assert_eq!(seqs[0].positions[9], 0, "positions restart per example");
    assert_eq!(seqs[0].segments[9], 1);
    // Targets: predictions of tokens[prompt_len..] only.
    assert_eq!(seqs[0].targets.len(), (10 - 6) + (8 - 3));
    assert_eq!(seqs[0].targets[0], (5, 6));
    assert_eq!(seqs[1].targets.len(), 15 - 5);
}

#[test]
fn examples_with_a_common_prompt_share_it_and_unlike_ones_fill_the_gaps() {
    let prompt = |topic: u32| -> Vec<u32> { (0..20).chain([topic]).collect() };
    let example = |topic: u32, reply: u32| EncodedExample {
        tokens: prompt(topic).into_iter().chain(reply..reply + 9).collect(),
        prompt_len: 21,
    };
    let (a, b, c) = (example(500, 600), example(501, 700), example(502, 800));
    let other = EncodedExample {
        tokens: (900..930).collect(),
        prompt_len: 10,
    };
    // Alone: 29 input tokens each.
    let seqs = pack(&[&a, &other, &b, &c], 70);
    assert_eq!(seqs.len(), 2);
    // a, b and c share their first 20 tokens: 20 + 3 × 9 = 47 tokens, not 87.
    assert_eq!(seqs[0].len(), 20 + 3 * 9);
    assert_eq!(seqs[0].shared.len(), 3);
    assert_eq!(seqs[0].targets.len(), 3 * 9);
    // Each example continues at the positions it has alone.
    assert_eq!(seqs[0].positions[20], 20);
    assert_eq!(seqs[0].positions[29], 20);
    assert_eq!(seqs[1].len(), 29);
    assert!(seqs[1].shared.is_empty());
    // With room for two only, c starts a group of its own, and a small unlike example
    // fills the gap c leaves rather than a sequence of its own.
    let small = EncodedExample {
        tokens: (950..962).collect(),
        prompt_len: 4,
    };
    let seqs = pack(&[&a, &b, &c, &small], 45);
    let lens: Vec<usize> = seqs.iter().map(Sequence::len).collect();
    assert_eq!(lens, [20 + 2 * 9, 29 + 11]);
}

#[test]
fn a_shared_prefix_never_exceeds_what_the_examples_have_in_common() {
    let mut seq = Sequence::default();
    seq.push_shared(&[(&[1, 2, 3, 4, 5], 4), (&[1, 2, 9, 9, 9], 4)], 10);
    // Two tokens in common: stored once, then 2 + 2 input tokens of each example.
    assert_eq!(seq.tokens, [1, 2, 3, 4, 9, 9]);
    assert_eq!(seq.positions, [0, 1, 2, 3, 2, 3]);
    assert_eq!(seq.shared, [(1, 0), (2, 0)]);
    assert_eq!(seq.targets, [(3, 5), (5, 9)]);
}

#[test]
fn shuffle_is_a_seeded_permutation() {
    let items: Vec<u32> = (0..50).collect();
    let a = shuffled(&items, 3);
    let mut sorted = a.clone();
    sorted.sort();
    assert_eq!(sorted, items);
    assert_eq!(a, shuffled(&items, 3));
    assert_ne!(a, shuffled(&items, 4));
}
