//! Model files: converting embedding models to GGUF, and (later) the model registry.

pub mod bert_convert;

pub use bert_convert::{
    convert_sentence_transformer, ConvertError, ConvertOptions, ConvertedModel,
};
