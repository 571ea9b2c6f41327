/// A header of `GGUF`, version 3, no tensors, one key whose value is arrays nested `depth`
/// deep (each holding one array), ending in an empty u8 array.
fn nested_arrays(depth: usize) -> Vec<u8> {
    let mut b = b"GGUF".to_vec();
    b.extend(3u32.to_le_bytes());
    b.extend(0u64.to_le_bytes());
    b.extend(1u64.to_le_bytes());
    b.extend(1u64.to_le_bytes());
    b.push(b'k');
    b.extend(9u32.to_le_bytes());
    for _ in 0..depth {
        b.extend(9u32.to_le_bytes());
        b.extend(1u64.to_le_bytes());
    }
    b.extend(0u32.to_le_bytes());
    b.extend(0u64.to_le_bytes());
    b
}

#[test]
fn crafted_headers_are_refused_without_overflow_or_deep_recursion() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.gguf");
    // Two levels, padded to the data alignment: a valid header.
    let mut ok = nested_arrays(2);
    ok.extend([0u8; 64]);
    std::fs::write(&path, ok).unwrap();
    assert!(read_header(&path).is_ok(), "{:?}", read_header(&path));
    std::fs::write(&path, nested_arrays(200_000)).unwrap();
    let err = read_header(&path).unwrap_err().to_string();
    assert!(err.contains("nested too deep"), "{err}");
    // An array of u64 whose byte length overflows.
    let mut b = nested_arrays(0);
    let n = b.len();
    b.truncate(n - 12);
    b.extend(10u32.to_le_bytes());
    b.extend(u64::MAX.to_le_bytes());
    std::fs::write(&path, b).unwrap();
    let err = read_header(&path).unwrap_err().to_string();
    assert!(err.contains("out of range"), "{err}");
}

use super::*;
use proptest::prelude::*;

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<u32>().prop_map(Value::U32),
        any::<i32>().prop_map(Value::I32),
        (-1e6f32..1e6).prop_map(Value::F32),
        any::<bool>().prop_map(Value::Bool),
        "\\PC{0,20}".prop_map(Value::Str),
        prop::collection::vec("\\PC{0,8}", 0..10).prop_map(Value::StrArray),
        prop::collection::vec(any::<i32>(), 0..10).prop_map(Value::I32Array),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// Whatever Twin writes (adapters, converted embedding models) it reads back: the
    /// same keys in order, architecture, name, tensor count and data size.
    #[test]
    fn what_is_written_reads_back(
        arch in "[a-z][a-z0-9]{0,10}",
        name in "\\PC{0,20}",
        extra in prop::collection::vec(("[a-z]{1,8}\\.[a-z]{1,8}", value()), 0..6),
        shapes in prop::collection::vec((1usize..9, 1usize..9, any::<bool>()), 0..5),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.gguf");
        let mut meta = vec![
            ("general.architecture".to_string(), Value::Str(arch.clone())),
            ("general.name".to_string(), Value::Str(name.clone())),
        ];
        let mut seen = std::collections::HashSet::new();
        for (k, v) in extra {
            if seen.insert(k.clone()) && !k.starts_with("general.") {
                meta.push((k, v));
            }
        }
        let tensors: Vec<Tensor> = shapes
            .iter()
            .enumerate()
            .map(|(i, &(r, c, half))| {
                let ty = if half { TensorType::F16 } else { TensorType::F32 };
                Tensor::from_f32(format!("t{i}"), &[r, c], &vec![0.5; r * c], ty)
            })
            .collect();
        write(&path, &meta, &tensors).unwrap();
        let h = read_header(&path).unwrap();
        prop_assert_eq!(h.architecture.as_deref(), Some(arch.as_str()));
        prop_assert_eq!(h.name.as_deref(), Some(name.as_str()));
        prop_assert_eq!(h.n_tensors, tensors.len() as u64);
        prop_assert_eq!(h.keys, meta.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>());
        let raw: u64 = tensors.iter().map(|t| t.data.len() as u64).sum();
        prop_assert!(h.data_bytes >= raw && h.data_bytes < raw + 32 * (tensors.len() as u64 + 1));
    }
}

#[test]
fn written_file_reads_back_and_truncation_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.gguf");
    let meta = vec![
        (
            "general.architecture".to_string(),
            Value::Str("bert".into()),
        ),
        ("general.name".to_string(), Value::Str("tiny".into())),
        (
            "x.list".to_string(),
            Value::StrArray(vec!["a".into(), "b".into()]),
        ),
    ];
    let t = Tensor::from_f32("w", &[3, 5], &[1.0; 15], TensorType::F16);
    write(&path, &meta, &[t]).unwrap();
    let h = read_header(&path).unwrap();
    assert_eq!(h.architecture.as_deref(), Some("bert"));
    assert_eq!(h.name.as_deref(), Some("tiny"));
    assert_eq!(h.n_tensors, 1);
    assert_eq!(h.data_bytes, 30);

    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 40]).unwrap();
    let err = read_header(&path).unwrap_err().to_string();
    assert!(err.contains("t.gguf") && err.contains("truncated"), "{err}");

    std::fs::write(&path, b"PK\x03\x04 not a model").unwrap();
    let err = read_header(&path).unwrap_err().to_string();
    assert!(err.contains("magic"), "{err}");
}
