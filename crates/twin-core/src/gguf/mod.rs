//! A minimal GGUF v3 writer and header reader.
//!
//! Why our own: llama.cpp's writer needs a live `ggml_context` and unsafe FFI, and candle's writes
//! v2 only. The format is small (header, key/values, tensor infos, 32-byte aligned data), so a plain
//! writer is less code and is shared by the embedding-model converter and the LoRA adapter export.
//! The reader validates a file before llama.cpp sees it, so a truncated or foreign file gets a clear
//! error naming the file instead of a null pointer from the C side.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 4] = b"GGUF";
const VERSION: u32 = 3;
const ALIGNMENT: u64 = 32;

/// Errors from reading or writing GGUF files; each names the file concerned.
#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The file is not a GGUF file, or it is damaged.
    #[error("{path}: not a valid GGUF file: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

crate::error::classify!(GgufError {
    kind: Self::Io { .. } => Io, Self::Invalid { .. } => BadInput;
    path: Self::Io { path, .. } | Self::Invalid { path, .. } => path.as_path();
});

/// A metadata value, in the subset of GGUF types Twin writes.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// `GGUF_TYPE_UINT32`.
    U32(u32),
    /// `GGUF_TYPE_INT32`.
    I32(i32),
    /// `GGUF_TYPE_FLOAT32`.
    F32(f32),
    /// `GGUF_TYPE_BOOL`.
    Bool(bool),
    /// `GGUF_TYPE_STRING`.
    Str(String),
    /// An array of strings.
    StrArray(Vec<String>),
    /// An array of `i32`.
    I32Array(Vec<i32>),
}

impl Value {
    fn type_id(&self) -> u32 {
        match self {
            Value::U32(_) => 4,
            Value::I32(_) => 5,
            Value::F32(_) => 6,
            Value::Bool(_) => 7,
            Value::Str(_) => 8,
            Value::StrArray(_) | Value::I32Array(_) => 9,
        }
    }
}

/// Element type of a tensor Twin writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TensorType {
    /// 32-bit float.
    F32,
    /// 16-bit IEEE float.
    F16,
}

impl TensorType {
    fn ggml_id(self) -> u32 {
        match self {
            TensorType::F32 => 0,
            TensorType::F16 => 1,
        }
    }
}

/// A tensor to write: name, shape in ggml order (`ne[0]` varies fastest) and raw little-endian data.
pub struct Tensor {
    /// GGUF tensor name, e.g. `blk.0.attn_q.weight`.
    pub name: String,
    /// Dimensions in ggml order: the reverse of the row-major (numpy) shape.
    pub ne: Vec<u64>,
    /// Element type of `data`.
    pub ty: TensorType,
    /// Raw element bytes, little-endian.
    pub data: Vec<u8>,
}

impl Tensor {
    /// A tensor from `f32` values and a row-major shape, stored as `ty`.
    pub fn from_f32(
        name: impl Into<String>,
        shape: &[usize],
        values: &[f32],
        ty: TensorType,
    ) -> Self {
        let data = match ty {
            TensorType::F32 => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            TensorType::F16 => values
                .iter()
                .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
                .collect(),
        };
        Self {
            name: name.into(),
            ne: shape.iter().rev().map(|&d| d as u64).collect(),
            ty,
            data,
        }
    }
}

fn padding(n: u64) -> u64 {
    (ALIGNMENT - n % ALIGNMENT) % ALIGNMENT
}

struct CountingWriter<W: Write> {
    inner: W,
    written: u64,
}

impl<W: Write> Write for CountingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn write_str(w: &mut impl Write, s: &str) -> io::Result<()> {
    w.write_all(&(s.len() as u64).to_le_bytes())?;
    w.write_all(s.as_bytes())
}

fn write_value(w: &mut impl Write, v: &Value) -> io::Result<()> {
    w.write_all(&v.type_id().to_le_bytes())?;
    match v {
        Value::U32(x) => w.write_all(&x.to_le_bytes()),
        Value::I32(x) => w.write_all(&x.to_le_bytes()),
        Value::F32(x) => w.write_all(&x.to_le_bytes()),
        Value::Bool(x) => w.write_all(&[u8::from(*x)]),
        Value::Str(s) => write_str(w, s),
        Value::StrArray(items) => {
            w.write_all(&8u32.to_le_bytes())?;
            w.write_all(&(items.len() as u64).to_le_bytes())?;
            items.iter().try_for_each(|s| write_str(w, s))
        }
        Value::I32Array(items) => {
            w.write_all(&5u32.to_le_bytes())?;
            w.write_all(&(items.len() as u64).to_le_bytes())?;
            items.iter().try_for_each(|x| w.write_all(&x.to_le_bytes()))
        }
    }
}

/// Write a GGUF v3 file atomically: to a temporary sibling first, renamed into place at the end, so
/// a crash never leaves a half-written model where Twin would load it.
pub fn write(
    path: &Path,
    metadata: &[(String, Value)],
    tensors: &[Tensor],
) -> Result<(), GgufError> {
    let io_err = |source| GgufError::Io {
        path: path.to_path_buf(),
        source,
    };
    let tmp = path.with_extension("gguf.partial");
    let file = File::create(&tmp).map_err(io_err)?;
    let mut w = CountingWriter {
        inner: BufWriter::new(file),
        written: 0,
    };
    (|| -> io::Result<()> {
        w.write_all(MAGIC)?;
        w.write_all(&VERSION.to_le_bytes())?;
        w.write_all(&(tensors.len() as u64).to_le_bytes())?;
        w.write_all(&(metadata.len() as u64).to_le_bytes())?;
        for (key, value) in metadata {
            write_str(&mut w, key)?;
            write_value(&mut w, value)?;
        }
        let mut offset = 0u64;
        for t in tensors {
            write_str(&mut w, &t.name)?;
            w.write_all(&(t.ne.len() as u32).to_le_bytes())?;
            for d in &t.ne {
                w.write_all(&d.to_le_bytes())?;
            }
            w.write_all(&t.ty.ggml_id().to_le_bytes())?;
            w.write_all(&offset.to_le_bytes())?;
            let len = t.data.len() as u64;
            offset += len + padding(len);
        }
        let pad = padding(w.written);
        w.write_all(&vec![0u8; pad as usize])?;
        for t in tensors {
            w.write_all(&t.data)?;
            w.write_all(&vec![0u8; padding(t.data.len() as u64) as usize])?;
        }
        w.flush()?;
        w.inner.get_ref().sync_all()
    })()
    .map_err(io_err)?;
    std::fs::rename(&tmp, path).map_err(io_err)
}

/// What Twin needs to know about a GGUF file before loading it.
#[derive(Clone, Debug)]
pub struct Header {
    /// `general.architecture`, e.g. `llama` or `bert`.
    pub architecture: Option<String>,
    /// `general.name`, if present.
    pub name: Option<String>,
    /// `general.type` (`model` or `adapter`), if present.
    pub file_type: Option<String>,
    /// Number of tensors.
    pub n_tensors: u64,
    /// Bytes the tensor data needs after the header, by the tensor infos.
    pub data_bytes: u64,
    /// Every metadata key, in file order.
    pub keys: Vec<String>,
    /// Whether a classification head (`cls.*` tensors) is present, as in rerankers.
    pub has_classifier: bool,
}

/// Bytes per block and elements per block for ggml types, enough to check a file's length.
fn ggml_type_size(ty: u32) -> Option<(u64, u64)> {
    Some(match ty {
        0 => (4, 1),     // F32
        1 => (2, 1),     // F16
        2 => (18, 32),   // Q4_0
        3 => (20, 32),   // Q4_1
        6 => (22, 32),   // Q5_0
        7 => (24, 32),   // Q5_1
        8 => (34, 32),   // Q8_0
        9 => (36, 32),   // Q8_1
        10 => (84, 256), // Q2_K
        11 => (110, 256),
        12 => (144, 256),
        13 => (176, 256),
        14 => (210, 256),
        15 => (292, 256),
        16 => (66, 256), // IQ2_XXS
        17 => (74, 256),
        18 => (98, 256),
        19 => (50, 256),
        20 => (18, 32), // IQ4_NL
        21 => (110, 256),
        22 => (82, 256),
        23 => (136, 256),
        24 => (1, 1), // I8
        25 => (2, 1),
        26 => (4, 1),
        27 => (8, 1),
        28 => (8, 1), // F64
        29 => (56, 256),
        30 => (2, 1), // BF16
        34 => (54, 256),
        35 => (66, 256),
        39 => (17, 32), // MXFP4
        _ => return None,
    })
}

/// Arrays of arrays a GGUF header may nest (llama.cpp's own files use one level).
const MAX_ARRAY_NESTING: u32 = 4;

struct Reader<R: Read> {
    inner: R,
}

impl<R: Read> Reader<R> {
    fn bytes<const N: usize>(&mut self) -> io::Result<[u8; N]> {
        let mut buf = [0u8; N];
        self.inner.read_exact(&mut buf)?;
        Ok(buf)
    }
    fn u32(&mut self) -> io::Result<u32> {
        Ok(u32::from_le_bytes(self.bytes()?))
    }
    fn u64(&mut self) -> io::Result<u64> {
        Ok(u64::from_le_bytes(self.bytes()?))
    }
    fn string(&mut self) -> io::Result<String> {
        let len = self.u64()?;
        if len > 1 << 24 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "string length out of range",
            ));
        }
        let mut buf = vec![0u8; len as usize];
        self.inner.read_exact(&mut buf)?;
        Ok(String::from_utf8_lossy(&buf).into_owned())
    }
    /// Reads a value of `ty`; returns it as a string when it is one, and skips it otherwise.
    fn value(&mut self, ty: u32) -> io::Result<Option<String>> {
        self.value_at(ty, 0)
    }

    /// [`Reader::value`] inside `depth` enclosing arrays: arrays of arrays are allowed, but not
    /// nested without end (a crafted header would otherwise recurse until the stack overflows).
    fn value_at(&mut self, ty: u32, depth: u32) -> io::Result<Option<String>> {
        let invalid = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_string());
        let fixed = |ty| match ty {
            0 | 1 | 7 => Some(1u64),
            2 | 3 => Some(2),
            4..=6 => Some(4),
            10..=12 => Some(8),
            _ => None,
        };
        match ty {
            8 => self.string().map(Some),
            9 => {
                if depth >= MAX_ARRAY_NESTING {
                    return Err(invalid("arrays nested too deep"));
                }
                let elem = self.u32()?;
                let n = self.u64()?;
                if let Some(size) = fixed(elem) {
                    let bytes = size
                        .checked_mul(n)
                        .ok_or_else(|| invalid("array length out of range"))?;
                    let skipped = io::copy(&mut (&mut self.inner).take(bytes), &mut io::sink())?;
                    if skipped < bytes {
                        return Err(io::ErrorKind::UnexpectedEof.into());
                    }
                } else {
                    for _ in 0..n {
                        self.value_at(elem, depth + 1)?;
                    }
                }
                Ok(None)
            }
            t => match fixed(t) {
                Some(size) => {
                    io::copy(&mut (&mut self.inner).take(size), &mut io::sink())?;
                    Ok(None)
                }
                None => Err(invalid(&format!("unknown value type {t}"))),
            },
        }
    }
}

/// Read and check a GGUF file's header: magic, version, metadata and tensor infos, and that the file
/// is long enough to hold every tensor. Catches truncated downloads and files that are not GGUF.
pub fn read_header(path: &Path) -> Result<Header, GgufError> {
    let invalid = |reason: String| GgufError::Invalid {
        path: path.to_path_buf(),
        reason,
    };
    let file = File::open(path).map_err(|source| GgufError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let file_len = file
        .metadata()
        .map_err(|source| GgufError::Io {
            path: path.to_path_buf(),
            source,
        })?
        .len();
    let mut r = Reader {
        inner: BufReader::new(file),
    };
    let eof = |e: io::Error| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            invalid("the file ends inside its header (truncated?)".into())
        } else {
            invalid(e.to_string())
        }
    };
    let magic: [u8; 4] = r.bytes().map_err(eof)?;
    if &magic != MAGIC {
        return Err(invalid(
            "it does not start with the GGUF magic bytes".into(),
        ));
    }
    let version = r.u32().map_err(eof)?;
    if !(2..=3).contains(&version) {
        return Err(invalid(format!("unsupported GGUF version {version}")));
    }
    let n_tensors = r.u64().map_err(eof)?;
    let n_kv = r.u64().map_err(eof)?;
    if n_tensors > 1 << 20 || n_kv > 1 << 20 {
        return Err(invalid("implausible tensor or metadata count".into()));
    }
    let (mut architecture, mut name, mut file_type) = (None, None, None);
    let mut alignment = ALIGNMENT;
    let mut keys = Vec::with_capacity(n_kv as usize);
    let mut has_classifier = false;
    for _ in 0..n_kv {
        let key = r.string().map_err(eof)?;
        keys.push(key.clone());
        let ty = r.u32().map_err(eof)?;
        if key == "general.alignment" && ty == 4 {
            alignment = u64::from(r.u32().map_err(eof)?).max(1);
            continue;
        }
        let value = r.value(ty).map_err(eof)?;
        match key.as_str() {
            "general.architecture" => architecture = value,
            "general.name" => name = value,
            "general.type" => file_type = value,
            _ => {}
        }
    }
    let mut data_end = 0u64;
    for _ in 0..n_tensors {
        let tname = r.string().map_err(eof)?;
        has_classifier |= tname.starts_with("cls.");
        let n_dims = r.u32().map_err(eof)?;
        if n_dims > 4 {
            return Err(invalid(format!("tensor {tname} has {n_dims} dimensions")));
        }
        let mut elements = 1u64;
        for _ in 0..n_dims {
            elements = elements.saturating_mul(r.u64().map_err(eof)?);
        }
        let ty = r.u32().map_err(eof)?;
        let offset = r.u64().map_err(eof)?;
        let (block_bytes, block_elems) = ggml_type_size(ty)
            .ok_or_else(|| invalid(format!("tensor {tname} has unknown type {ty}")))?;
        let bytes = elements.div_ceil(block_elems).saturating_mul(block_bytes);
        data_end = data_end.max(offset.saturating_add(bytes));
    }
    let header_end = r
        .inner
        .stream_position()
        .map_err(|e| invalid(e.to_string()))?;
    let data_start = header_end + (alignment - header_end % alignment) % alignment;
    let needed = data_start
        .checked_add(data_end)
        .ok_or_else(|| invalid("tensor offsets out of range".into()))?;
    if needed > file_len {
        return Err(invalid(format!(
            "the tensors need {needed} bytes but the file has {file_len} (truncated download?)"
        )));
    }
    let _ = r.inner.seek(SeekFrom::Start(0));
    Ok(Header {
        architecture,
        name,
        file_type,
        n_tensors,
        data_bytes: data_end,
        keys,
        has_classifier,
    })
}

#[cfg(test)]
mod tests;
