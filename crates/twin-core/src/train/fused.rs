//! Fused CPU kernels for the trainer's operations other than its projections: RMSNorm, rotary
//! position embedding, SwiGLU, attention over the examples of a packed sequence and the
//! cross-entropy loss, each one graph node with a hand-written backward pass.
//!
//! Why: built from candle's basic ops, each of these is 5–10 tensors in the forward pass, and
//! candle's backward pass then computes a gradient for every argument of every node (the frozen
//! norm weights and the rotary tables included), each one zero-filled and then added to. On two
//! CPU cores that bookkeeping cost as much time as the matrix products. Gradients flow only to
//! the activations here: norm weights and rotary tables are frozen.
//!
//! Each public function falls back to the same maths in basic ops off the CPU (CUDA, Metal),
//! where candle's kernels are fused differently; `tests` check the kernels against that maths,
//! values and gradients.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, CustomOp3, Layout, Shape, Storage, Tensor, D};
// The kernels split their rows over rayon's pool, the one candle's matrix products use.
use rayon::prelude::*;

fn msg(op: &str, what: &str) -> candle_core::Error {
    candle_core::Error::Msg(format!("{op}: {what}"))
}

/// The f32 values of contiguous CPU storage.
fn values<'a>(
    op: &str,
    storage: &'a CpuStorage,
    layout: &Layout,
) -> candle_core::Result<&'a [f32]> {
    let (start, end) = layout
        .contiguous_offsets()
        .ok_or_else(|| msg(op, "input not contiguous"))?;
    Ok(&storage.as_slice::<f32>()?[start..end])
}

/// Runs `f` on the f32 values of a tensor that an op captured (a frozen weight or table).
fn with_values<R>(
    op: &str,
    t: &Tensor,
    f: impl FnOnce(&[f32]) -> candle_core::Result<R>,
) -> candle_core::Result<R> {
    let t = t.contiguous()?;
    let (stored, layout) = t.storage_and_layout();
    match &*stored {
        Storage::Cpu(cpu) => f(values(op, cpu, layout)?),
        _ => Err(msg(op, "expected CPU storage")),
    }
}

fn out(v: Vec<f32>, shape: &Shape) -> (CpuStorage, Shape) {
    (CpuStorage::F32(v), shape.clone())
}

// ---------------------------------------------------------------------------------------------
// RMSNorm

/// `x / sqrt(mean(x²) + eps) · weight` over the last dimension; `weight` is frozen.
pub fn rms_norm(x: &Tensor, weight: &Tensor, eps: f64) -> candle_core::Result<Tensor> {
    if x.device().is_cpu() {
        x.contiguous()?.apply_op1(RmsNorm {
            weight: weight.clone(),
            eps,
        })
    } else {
        rms_norm_basic(x, weight, eps)
    }
}

fn rms_norm_basic(x: &Tensor, weight: &Tensor, eps: f64) -> candle_core::Result<Tensor> {
    let mean_square = x.sqr()?.mean_keepdim(D::Minus1)?;
    x.broadcast_div(&(mean_square + eps)?.sqrt()?)?
        .broadcast_mul(weight)
}

struct RmsNorm {
    weight: Tensor,
    eps: f64,
}

/// 1 / sqrt(mean(row²) + eps), accumulated in f64 as ggml does.
fn inverse_rms(row: &[f32], eps: f64) -> f32 {
    let sum: f64 = row.iter().map(|&v| f64::from(v) * f64::from(v)).sum();
    (1.0 / (sum / row.len() as f64 + eps).sqrt()) as f32
}

impl CustomOp1 for RmsNorm {
    fn name(&self) -> &'static str {
        "twin-rms-norm"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = values(self.name(), storage, layout)?;
        with_values(self.name(), &self.weight, |w| {
            let n = w.len();
            if n == 0 || x.len() % n != 0 {
                return Err(msg(self.name(), "weight does not match the last dimension"));
            }
            let mut y = vec![0f32; x.len()];
            y.par_chunks_exact_mut(n)
                .zip(x.par_chunks_exact(n))
                .for_each(|(yr, xr)| {
                    let r = inverse_rms(xr, self.eps);
                    for ((yv, &xv), &wv) in yr.iter_mut().zip(xr).zip(w) {
                        *yv = xv * r * wv;
                    }
                });
            Ok(out(y, layout.shape()))
        })
    }

    fn bwd(
        &self,
        arg: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(arg.apply_op2_no_bwd(
            &grad.contiguous()?,
            &RmsNormGrad {
                weight: self.weight.clone(),
                eps: self.eps,
            },
        )?))
    }
}

/// (x, dy) → dx = r·w·dy − x·r³·(Σ dy·w·x)/n, with r the row's inverse RMS.
struct RmsNormGrad {
    weight: Tensor,
    eps: f64,
}

impl CustomOp2 for RmsNormGrad {
    fn name(&self) -> &'static str {
        "twin-rms-norm-grad"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = values(self.name(), xs, xl)?;
        let g = values(self.name(), gs, gl)?;
        with_values(self.name(), &self.weight, |w| {
            let n = w.len();
            if n == 0 || x.len() % n != 0 || g.len() != x.len() {
                return Err(msg(self.name(), "shapes do not match"));
            }
            let mut dx = vec![0f32; x.len()];
            dx.par_chunks_exact_mut(n)
                .zip(x.par_chunks_exact(n).zip(g.par_chunks_exact(n)))
                .for_each(|(dr, (xr, gr))| {
                    let r = inverse_rms(xr, self.eps);
                    let dot: f64 = xr
                        .iter()
                        .zip(gr)
                        .zip(w)
                        .map(|((&xv, &gv), &wv)| f64::from(xv) * f64::from(gv) * f64::from(wv))
                        .sum();
                    let c = (f64::from(r).powi(3) * dot / n as f64) as f32;
                    for (((d, &xv), &gv), &wv) in dr.iter_mut().zip(xr).zip(gr).zip(w) {
                        *d = r * wv * gv - xv * c;
                    }
                });
            Ok(out(dx, xl.shape()))
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Rotary position embedding

/// Which dimensions rotate together, as llama.cpp's rope types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RopeStyle {
    /// `LLAMA_ROPE_TYPE_NORM` (llama): adjacent pairs (2i, 2i+1).
    Pairs,
    /// `LLAMA_ROPE_TYPE_NEOX` (Qwen): (i, i + hd/2).
    Halves,
}

/// Rotates `x` (t, heads, hd) by its tokens' angles: `cos`/`sin` are (t, hd/2).
pub fn rope(
    x: &Tensor,
    cos: &Tensor,
    sin: &Tensor,
    style: RopeStyle,
) -> candle_core::Result<Tensor> {
    if x.device().is_cpu() {
        x.contiguous()?.apply_op1(Rope {
            cos: cos.clone(),
            sin: sin.clone(),
            style,
            inverse: false,
        })
    } else {
        rope_basic(&x.transpose(0, 1)?, cos, sin, style)?.transpose(0, 1)
    }
}

/// The same rotation from basic ops, on (heads, t, hd).
fn rope_basic(
    x: &Tensor,
    cos: &Tensor,
    sin: &Tensor,
    style: RopeStyle,
) -> candle_core::Result<Tensor> {
    let (h, t, hd) = x.dims3()?;
    let x = x.contiguous()?;
    match style {
        RopeStyle::Pairs => {
            let (cos, sin) = (
                cos.reshape((1, t, hd / 2, 1))?,
                sin.reshape((1, t, hd / 2, 1))?,
            );
            let x = x.reshape((h, t, hd / 2, 2))?;
            let x0 = x.narrow(3, 0, 1)?;
            let x1 = x.narrow(3, 1, 1)?;
            let y0 = (x0.broadcast_mul(&cos)? - x1.broadcast_mul(&sin)?)?;
            let y1 = (x0.broadcast_mul(&sin)? + x1.broadcast_mul(&cos)?)?;
            Tensor::cat(&[y0, y1], 3)?.reshape((h, t, hd))
        }
        RopeStyle::Halves => {
            let (cos, sin) = (cos.reshape((1, t, hd / 2))?, sin.reshape((1, t, hd / 2))?);
            let x0 = x.narrow(2, 0, hd / 2)?;
            let x1 = x.narrow(2, hd / 2, hd / 2)?;
            let y0 = (x0.broadcast_mul(&cos)? - x1.broadcast_mul(&sin)?)?;
            let y1 = (x0.broadcast_mul(&sin)? + x1.broadcast_mul(&cos)?)?;
            Tensor::cat(&[y0, y1], 2)?.reshape((h, t, hd))
        }
    }
}

/// The rotation on (t, heads, hd); its inverse (the transpose, angle −θ) is its gradient.
struct Rope {
    cos: Tensor,
    sin: Tensor,
    style: RopeStyle,
    inverse: bool,
}

impl CustomOp1 for Rope {
    fn name(&self) -> &'static str {
        "twin-rope"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = values(self.name(), storage, layout)?;
        let (t, heads, hd) = layout.shape().dims3()?;
        let half = hd / 2;
        with_values(self.name(), &self.cos, |cos| {
            with_values(self.name(), &self.sin, |sin| {
                if cos.len() != t * half || sin.len() != t * half || hd % 2 != 0 {
                    return Err(msg(self.name(), "angle tables do not match the input"));
                }
                let sign = if self.inverse { -1.0 } else { 1.0 };
                let mut y = vec![0f32; x.len()];
                let token = heads * hd;
                y.par_chunks_exact_mut(token)
                    .zip(x.par_chunks_exact(token))
                    .enumerate()
                    .for_each(|(p, (yt, xt))| {
                        let (c, s) = (&cos[p * half..][..half], &sin[p * half..][..half]);
                        for h in 0..heads {
                            let (xr, yr) = (&xt[h * hd..][..hd], &mut yt[h * hd..][..hd]);
                            for i in 0..half {
                                let (a, b) = match self.style {
                                    RopeStyle::Pairs => (2 * i, 2 * i + 1),
                                    RopeStyle::Halves => (i, i + half),
                                };
                                let (ci, si) = (c[i], sign * s[i]);
                                yr[a] = xr[a] * ci - xr[b] * si;
                                yr[b] = xr[a] * si + xr[b] * ci;
                            }
                        }
                    });
                Ok(out(y, layout.shape()))
            })
        })
    }

    fn bwd(
        &self,
        _arg: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(grad.contiguous()?.apply_op1_no_bwd(&Rope {
            cos: self.cos.clone(),
            sin: self.sin.clone(),
            style: self.style,
            inverse: !self.inverse,
        })?))
    }
}

// ---------------------------------------------------------------------------------------------
// Causal softmax

/// Attention weights from raw scores (heads, len, seen + len): `softmax(scale · scores)` where
/// query `i` reads the `seen` shared-prefix keys and its own keys up to itself; the rest get 0.
fn causal_softmax(scores: &Tensor, seen: usize, scale: f64) -> candle_core::Result<Tensor> {
    if scores.device().is_cpu() {
        scores.contiguous()?.apply_op1(CausalSoftmax {
            seen,
            scale: scale as f32,
        })
    } else {
        let (_, len, _) = scores.dims3()?;
        let mask = causal_mask(seen, len, scores.device())?;
        candle_nn::ops::softmax(&(scores * scale)?.broadcast_add(&mask)?, D::Minus1)
    }
}

/// 0 where query `i` may read key `j`, −∞ elsewhere: (len, seen + len).
fn causal_mask(
    seen: usize,
    len: usize,
    device: &candle_core::Device,
) -> candle_core::Result<Tensor> {
    let values: Vec<f32> = (0..len)
        .flat_map(|i| {
            (0..seen + len).map(move |j| if j > seen + i { f32::NEG_INFINITY } else { 0.0 })
        })
        .collect();
    Tensor::from_vec(values, (len, seen + len), device)
}

#[derive(Clone, Copy)]
struct CausalSoftmax {
    seen: usize,
    scale: f32,
}

impl CausalSoftmax {
    fn for_span(span: &AttentionSpan, scale: f64) -> Self {
        CausalSoftmax {
            seen: span.seen(),
            scale: scale as f32,
        }
    }

    /// Keys row `row` of a (heads, len, keys) block may read.
    fn visible(&self, row: usize, len: usize) -> usize {
        self.seen + row % len + 1
    }
}

impl CustomOp1 for CausalSoftmax {
    fn name(&self) -> &'static str {
        "twin-causal-softmax"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let s = values(self.name(), storage, layout)?;
        let (_, len, keys) = layout.shape().dims3()?;
        if keys != self.seen + len {
            return Err(msg(self.name(), "scores do not match the prefix and span"));
        }
        let mut y = vec![0f32; s.len()];
        y.par_chunks_exact_mut(keys)
            .zip(s.par_chunks_exact(keys))
            .enumerate()
            .for_each(|(row, (yr, sr))| {
                let n = self.visible(row, len);
                let max = sr[..n].iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v)) * self.scale;
                let mut sum = 0f32;
                for (yv, &sv) in yr[..n].iter_mut().zip(&sr[..n]) {
                    *yv = (sv * self.scale - max).exp();
                    sum += *yv;
                }
                let inv = 1.0 / sum;
                yr[..n].iter_mut().for_each(|v| *v *= inv);
            });
        Ok(out(y, layout.shape()))
    }

    fn bwd(
        &self,
        _arg: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(res.contiguous()?.apply_op2_no_bwd(
            &grad.contiguous()?,
            &CausalSoftmaxGrad(*self),
        )?))
    }
}

/// (y, dy) → d scores = scale · y · (dy − Σ dy·y); masked entries have y = 0 and get 0.
struct CausalSoftmaxGrad(CausalSoftmax);

impl CustomOp2 for CausalSoftmaxGrad {
    fn name(&self) -> &'static str {
        "twin-causal-softmax-grad"
    }

    fn cpu_fwd(
        &self,
        ys: &CpuStorage,
        yl: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let y = values(self.name(), ys, yl)?;
        let g = values(self.name(), gs, gl)?;
        let (_, len, keys) = yl.shape().dims3()?;
        let softmax = self.0;
        if g.len() != y.len() || keys != softmax.seen + len {
            return Err(msg(self.name(), "shapes do not match"));
        }
        let mut ds = vec![0f32; y.len()];
        ds.par_chunks_exact_mut(keys)
            .zip(y.par_chunks_exact(keys).zip(g.par_chunks_exact(keys)))
            .enumerate()
            .for_each(|(row, (dr, (yr, gr)))| {
                let n = softmax.visible(row, len);
                let dot: f32 = yr[..n].iter().zip(&gr[..n]).map(|(a, b)| a * b).sum();
                for ((d, &yv), &gv) in dr[..n].iter_mut().zip(&yr[..n]).zip(&gr[..n]) {
                    *d = softmax.scale * yv * (gv - dot);
                }
            });
        Ok(out(ds, yl.shape()))
    }
}

// ---------------------------------------------------------------------------------------------
// Attention over the examples of a packed sequence

/// One example's rows of a packed sequence, and the shared prompt prefix it also reads.
#[derive(Clone, Copy, Debug)]
pub struct AttentionSpan {
    /// First row.
    pub start: usize,
    /// Rows.
    pub len: usize,
    /// (start, length) of the prefix's rows.
    pub prefix: Option<(usize, usize)>,
}

impl AttentionSpan {
    /// Rows before its own that the span's queries read: the shared prefix's length.
    pub fn seen(&self) -> usize {
        self.prefix.map_or(0, |(_, len)| len)
    }
}

/// Causal attention of `q` (t, heads, hd) over `k`, `v` (t, kv heads, hd), run per span (each
/// example reads its shared prefix and itself, never another example), with grouped-query
/// heads (query head h reads kv head h / (heads / kv heads), as ggml broadcasts). Returns
/// (t, heads · hd). `spans` must cover the rows in order.
///
/// On the CPU this is one graph node. Built from basic ops, every span's slice of q, k and v
/// is a node whose gradient candle pads with zeros to the whole sequence and adds up: many
/// full-size passes per layer for a few small matrix products.
pub fn attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    spans: &[AttentionSpan],
    scale: f64,
) -> candle_core::Result<Tensor> {
    if q.device().is_cpu() {
        q.contiguous()?.apply_op3(
            &k.contiguous()?,
            &v.contiguous()?,
            Attention {
                spans: spans.to_vec(),
                scale,
            },
        )
    } else {
        attention_basic(q, k, v, spans, scale)
    }
}

/// (t, kv heads, hd) → (heads, t, hd): kv head j serves query heads j·n_rep … j·n_rep + n_rep − 1.
fn heads_first(x: &Tensor, heads: usize) -> candle_core::Result<Tensor> {
    let (t, kv, hd) = x.dims3()?;
    let x = x.transpose(0, 1)?.contiguous()?;
    if kv == heads {
        return Ok(x);
    }
    x.unsqueeze(1)?
        .broadcast_as((kv, heads / kv, t, hd))?
        .contiguous()?
        .reshape((heads, t, hd))
}

/// The keys (or values) span `span` reads: its prefix's rows, then its own. `x` is (heads, t, hd).
fn span_rows(x: &Tensor, span: &AttentionSpan) -> candle_core::Result<Tensor> {
    let own = x.narrow(1, span.start, span.len)?;
    match span.prefix {
        Some((start, len)) => Tensor::cat(&[&x.narrow(1, start, len)?, &own], 1),
        None => Ok(own),
    }
}

/// The same attention from basic ops (and the reference the tests hold the kernel to).
fn attention_basic(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    spans: &[AttentionSpan],
    scale: f64,
) -> candle_core::Result<Tensor> {
    let (t, heads, hd) = q.dims3()?;
    let q = q.transpose(0, 1)?;
    let (k, v) = (heads_first(k, heads)?, heads_first(v, heads)?);
    let outs = spans
        .iter()
        .map(|span| {
            let q = q.narrow(1, span.start, span.len)?;
            let att = causal_softmax(&q.matmul(&span_rows(&k, span)?.t()?)?, span.seen(), scale)?;
            att.matmul(&span_rows(&v, span)?)
        })
        .collect::<candle_core::Result<Vec<_>>>()?;
    Tensor::cat(&outs, 1)?
        .transpose(0, 1)?
        .reshape((t, heads * hd))
}

struct Attention {
    spans: Vec<AttentionSpan>,
    scale: f64,
}

impl Attention {
    /// A span's queries, the keys it reads, and its attention weights, from (heads, t, hd)
    /// queries and keys. The backward pass recomputes them rather than keeping them.
    fn span_weights(
        &self,
        q: &Tensor,
        k: &Tensor,
        span: &AttentionSpan,
    ) -> candle_core::Result<(Tensor, Tensor, Tensor)> {
        let qs = q.narrow(1, span.start, span.len)?;
        let ks = span_rows(k, span)?;
        let att = qs
            .matmul(&ks.t()?)?
            .apply_op1_no_bwd(&CausalSoftmax::for_span(span, self.scale))?;
        Ok((qs, ks, att))
    }
}

/// A (t, heads, hd) input of a custom op as a (heads, t, hd) tensor of its own.
fn heads_first_copy(
    op: &str,
    storage: &CpuStorage,
    layout: &Layout,
    heads: usize,
) -> candle_core::Result<Tensor> {
    let x = Tensor::from_slice(
        values(op, storage, layout)?,
        layout.shape(),
        &candle_core::Device::Cpu,
    )?;
    heads_first(&x, heads)
}

/// Adds `part` (heads, rows, hd) into `sum` (heads, t, hd) at row `start`.
fn add_rows(sum: &mut [f32], t: usize, part: &Tensor, start: usize) -> candle_core::Result<()> {
    let (heads, rows, hd) = part.dims3()?;
    let part = part.flatten_all()?.to_vec1::<f32>()?;
    for h in 0..heads {
        let to = &mut sum[(h * t + start) * hd..][..rows * hd];
        let from = &part[h * rows * hd..][..rows * hd];
        to.iter_mut().zip(from).for_each(|(a, b)| *a += b);
    }
    Ok(())
}

/// (heads, t, hd) gradient → (t, kv heads, hd): the query heads sharing a kv head add up.
fn kv_grad(
    sum: Vec<f32>,
    heads: usize,
    kv: usize,
    t: usize,
    hd: usize,
) -> candle_core::Result<Tensor> {
    Tensor::from_vec(sum, (kv, heads / kv, t, hd), &candle_core::Device::Cpu)?
        .sum(1)?
        .transpose(0, 1)?
        .contiguous()
}

impl CustomOp3 for Attention {
    fn name(&self) -> &'static str {
        "twin-attention"
    }

    fn cpu_fwd(
        &self,
        qs: &CpuStorage,
        ql: &Layout,
        ks: &CpuStorage,
        kl: &Layout,
        vs: &CpuStorage,
        vl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (t, heads, hd) = ql.shape().dims3()?;
        let (kt, kv, khd) = kl.shape().dims3()?;
        let covered: usize = self.spans.iter().map(|s| s.len).sum();
        if kt != t
            || khd != hd
            || kv == 0
            || heads % kv != 0
            || vl.shape() != kl.shape()
            || covered != t
        {
            return Err(msg(self.name(), "q, k, v and spans do not fit together"));
        }
        let q = heads_first_copy(self.name(), qs, ql, heads)?;
        let k = heads_first_copy(self.name(), ks, kl, heads)?;
        let v = heads_first_copy(self.name(), vs, vl, heads)?;
        let mut y = vec![0f32; t * heads * hd];
        for span in &self.spans {
            let (_, _, att) = self.span_weights(&q, &k, span)?;
            // (heads, len, hd) → rows of the (t, heads · hd) output.
            let o = att
                .matmul(&span_rows(&v, span)?)?
                .transpose(0, 1)?
                .contiguous()?;
            let o = o.flatten_all()?.to_vec1::<f32>()?;
            y[span.start * heads * hd..][..o.len()].copy_from_slice(&o);
        }
        Ok(out(y, &Shape::from((t, heads * hd))))
    }

    fn bwd(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (t, heads, hd) = q.dims3()?;
        let kv = k.dim(1)?;
        let qh = q.detach().transpose(0, 1)?.contiguous()?;
        let (kh, vh) = (
            heads_first(&k.detach(), heads)?,
            heads_first(&v.detach(), heads)?,
        );
        let g = grad
            .detach()
            .reshape((t, heads, hd))?
            .transpose(0, 1)?
            .contiguous()?;
        let full = heads * t * hd;
        let (mut dq, mut dk, mut dv) = (vec![0f32; full], vec![0f32; full], vec![0f32; full]);
        for span in &self.spans {
            let (qs, ks, att) = self.span_weights(&qh, &kh, span)?;
            let vs = span_rows(&vh, span)?;
            let gs = g.narrow(1, span.start, span.len)?;
            let d_att = gs.matmul(&vs.t()?)?;
            let d_vs = att.t()?.matmul(&gs)?;
            let softmax = CausalSoftmax::for_span(span, self.scale);
            let d_scores = att.apply_op2_no_bwd(&d_att, &CausalSoftmaxGrad(softmax))?;
            add_rows(&mut dq, t, &d_scores.matmul(&ks)?, span.start)?;
            let d_ks = d_scores.t()?.matmul(&qs)?;
            let seen = span.seen();
            if let Some((p_start, p_len)) = span.prefix {
                add_rows(&mut dk, t, &d_ks.narrow(1, 0, p_len)?, p_start)?;
                add_rows(&mut dv, t, &d_vs.narrow(1, 0, p_len)?, p_start)?;
            }
            add_rows(&mut dk, t, &d_ks.narrow(1, seen, span.len)?, span.start)?;
            add_rows(&mut dv, t, &d_vs.narrow(1, seen, span.len)?, span.start)?;
        }
        let dq = Tensor::from_vec(dq, (heads, t, hd), &candle_core::Device::Cpu)?
            .transpose(0, 1)?
            .contiguous()?;
        Ok((
            Some(dq),
            Some(kv_grad(dk, heads, kv, t, hd)?),
            Some(kv_grad(dv, heads, kv, t, hd)?),
        ))
    }
}

// ---------------------------------------------------------------------------------------------
// Cross-entropy

/// Mean negative log-likelihood of `targets` under `logits` (rows, vocabulary): the training
/// loss. Fused because the logits are the largest tensor of a step (rows × 49k floats for
/// SmolLM2), and log-softmax from basic ops passes over them some twenty times.
pub fn cross_entropy(logits: &Tensor, targets: &[u32]) -> candle_core::Result<Tensor> {
    if logits.device().is_cpu() {
        logits.contiguous()?.apply_op1(CrossEntropy {
            targets: targets.to_vec(),
        })
    } else {
        let expected = Tensor::new(targets, logits.device())?;
        candle_nn::loss::cross_entropy(logits, &expected)
    }
}

struct CrossEntropy {
    targets: Vec<u32>,
}

/// log Σ exp(row), computed stably (shifted by the maximum, summed in f64).
fn log_sum_exp(row: &[f32]) -> f64 {
    let max = row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    let sum: f64 = row.iter().map(|&v| f64::from((v - max).exp())).sum();
    f64::from(max) + sum.ln()
}

impl CustomOp1 for CrossEntropy {
    fn name(&self) -> &'static str {
        "twin-cross-entropy"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let logits = values(self.name(), storage, layout)?;
        let (n, v) = layout.shape().dims2()?;
        if n == 0 || n != self.targets.len() || self.targets.iter().any(|&t| t as usize >= v) {
            return Err(msg(self.name(), "targets do not match the logits"));
        }
        let total: f64 = logits
            .par_chunks_exact(v)
            .zip(self.targets.par_iter())
            .map(|(row, &t)| log_sum_exp(row) - f64::from(row[t as usize]))
            .sum();
        Ok(out(vec![(total / n as f64) as f32], &Shape::from(())))
    }

    fn bwd(
        &self,
        arg: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(arg.apply_op2_no_bwd(
            grad,
            &CrossEntropyGrad {
                targets: self.targets.clone(),
            },
        )?))
    }
}

/// (logits, d loss) → d logits = d loss · (softmax(row) − one-hot(target)) / rows.
struct CrossEntropyGrad {
    targets: Vec<u32>,
}

impl CustomOp2 for CrossEntropyGrad {
    fn name(&self) -> &'static str {
        "twin-cross-entropy-grad"
    }

    fn cpu_fwd(
        &self,
        ls: &CpuStorage,
        ll: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let logits = values(self.name(), ls, ll)?;
        let g = values(self.name(), gs, gl)?;
        let (n, v) = ll.shape().dims2()?;
        if g.len() != 1 || n == 0 || n != self.targets.len() {
            return Err(msg(self.name(), "shapes do not match"));
        }
        let scale = g[0] / n as f32;
        let mut d = vec![0f32; logits.len()];
        d.par_chunks_exact_mut(v)
            .zip(logits.par_chunks_exact(v).zip(self.targets.par_iter()))
            .for_each(|(dr, (row, &t))| {
                let lse = log_sum_exp(row) as f32;
                for (dv, &x) in dr.iter_mut().zip(row) {
                    *dv = scale * (x - lse).exp();
                }
                if let Some(dt) = dr.get_mut(t as usize) {
                    *dt -= scale;
                }
            });
        Ok(out(d, ll.shape()))
    }
}

// ---------------------------------------------------------------------------------------------
// SwiGLU

/// `silu(gate) · up`, the feed-forward activation, elementwise on two tensors of one shape.
pub fn swiglu(gate: &Tensor, up: &Tensor) -> candle_core::Result<Tensor> {
    if gate.device().is_cpu() {
        gate.contiguous()?.apply_op2(&up.contiguous()?, Swiglu)
    } else {
        gate.silu()? * up
    }
}

struct Swiglu;

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

impl CustomOp2 for Swiglu {
    fn name(&self) -> &'static str {
        "twin-swiglu"
    }

    fn cpu_fwd(
        &self,
        gs: &CpuStorage,
        gl: &Layout,
        us: &CpuStorage,
        ul: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (g, u) = (values(self.name(), gs, gl)?, values(self.name(), us, ul)?);
        if g.len() != u.len() {
            return Err(msg(self.name(), "gate and up differ in shape"));
        }
        let y = g
            .par_iter()
            .zip(u.par_iter())
            .map(|(&g, &u)| g * sigmoid(g) * u)
            .collect();
        Ok(out(y, gl.shape()))
    }

    fn bwd(
        &self,
        gate: &Tensor,
        up: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let d_gate = gate.apply_op3_no_bwd(up, &grad, &SwigluGrad::Gate)?;
        let d_up = gate.apply_op3_no_bwd(up, &grad, &SwigluGrad::Up)?;
        Ok((Some(d_gate), Some(d_up)))
    }
}

/// (gate, up, dy) → d gate = dy·up·σ(g)·(1 + g·(1 − σ(g))), or d up = dy·silu(g).
enum SwigluGrad {
    Gate,
    Up,
}

impl CustomOp3 for SwigluGrad {
    fn name(&self) -> &'static str {
        "twin-swiglu-grad"
    }

    fn cpu_fwd(
        &self,
        gs: &CpuStorage,
        gl: &Layout,
        us: &CpuStorage,
        ul: &Layout,
        ds: &CpuStorage,
        dl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (g, u) = (values(self.name(), gs, gl)?, values(self.name(), us, ul)?);
        let dy = values(self.name(), ds, dl)?;
        if g.len() != u.len() || g.len() != dy.len() {
            return Err(msg(self.name(), "shapes do not match"));
        }
        let d = g.par_iter().zip(u.par_iter()).zip(dy.par_iter());
        let d = match self {
            SwigluGrad::Gate => d
                .map(|((&g, &u), &dy)| {
                    let s = sigmoid(g);
                    dy * u * s * (1.0 + g * (1.0 - s))
                })
                .collect(),
            SwigluGrad::Up => d.map(|((&g, _), &dy)| dy * g * sigmoid(g)).collect(),
        };
        Ok(out(d, gl.shape()))
    }
}

/// max |a − b| / max |b|: how far a kernel's result is from its reference, for tests.
#[cfg(test)]
pub(crate) fn relative_difference(a: &Tensor, b: &Tensor) -> f32 {
    let max_abs = |t: &Tensor| {
        t.abs()
            .and_then(|t| t.max_all())
            .and_then(|t| t.to_scalar::<f32>())
            .unwrap_or(f32::NAN)
    };
    (a - b).map_or(f32::NAN, |d| max_abs(&d)) / max_abs(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    /// Asserts that `fused` and `basic` agree on the same input, in values and in input
    /// gradients for a random upstream gradient (a weighted sum: every output element counts).
    fn assert_agree(
        case: &str,
        x: &Tensor,
        fused: impl Fn(&Tensor) -> candle_core::Result<Tensor>,
        basic: impl Fn(&Tensor) -> candle_core::Result<Tensor>,
    ) {
        let run = |f: &dyn Fn(&Tensor) -> candle_core::Result<Tensor>| {
            let v = Var::from_tensor(x).unwrap();
            let y = f(v.as_tensor()).unwrap();
            (y, v)
        };
        let (yf, vf) = run(&fused);
        let (yb, vb) = run(&basic);
        let w = Tensor::rand(-1f32, 1., yb.shape(), &Device::Cpu).unwrap();
        let loss = |y: &Tensor| (y * &w).unwrap().sum_all().unwrap();
        let (gf, gb) = (loss(&yf).backward().unwrap(), loss(&yb).backward().unwrap());
        let (gf, gb) = (
            gf.get(vf.as_tensor()).unwrap(),
            gb.get(vb.as_tensor()).unwrap(),
        );
        let (dy, dg) = (relative_difference(&yf, &yb), relative_difference(gf, gb));
        assert!(
            dy < 1e-5 && dg < 1e-5,
            "{case}: values differ by {dy}, gradients by {dg}"
        );
    }

    #[test]
    fn rms_norm_matches_the_basic_ops_in_values_and_gradients() {
        let dev = Device::Cpu;
        let x = Tensor::randn(0f32, 2., (7, 3, 16), &dev).unwrap();
        let w = Tensor::randn(1f32, 0.3, 16, &dev).unwrap();
        assert_agree(
            "rms norm",
            &x,
            |x| rms_norm(x, &w, 1e-5),
            |x| rms_norm_basic(x, &w, 1e-5),
        );
    }

    #[test]
    fn rope_matches_the_basic_ops_in_both_styles() {
        let dev = Device::Cpu;
        let (t, heads, hd) = (5, 3, 8);
        let angles = Tensor::rand(0f32, 6.0, (t, hd / 2), &dev).unwrap();
        let (cos, sin) = (angles.cos().unwrap(), angles.sin().unwrap());
        let x = Tensor::randn(0f32, 1., (t, heads, hd), &dev).unwrap();
        for style in [RopeStyle::Pairs, RopeStyle::Halves] {
            assert_agree(
                &format!("rope {style:?}"),
                &x,
                |x| rope(x, &cos, &sin, style),
                |x| rope_basic(&x.transpose(0, 1)?, &cos, &sin, style)?.transpose(0, 1),
            );
        }
    }

    #[test]
    fn cross_entropy_matches_candles_in_value_and_gradient() {
        let dev = Device::Cpu;
        let logits = Tensor::randn(0f32, 4., (5, 50), &dev).unwrap();
        let targets = [3u32, 0, 49, 17, 3];
        let expected = Tensor::new(&targets, &dev).unwrap();
        assert_agree(
            "cross-entropy",
            &logits,
            |l| cross_entropy(l, &targets),
            |l| candle_nn::loss::cross_entropy(l, &expected),
        );
        assert!(cross_entropy(&logits, &[1, 2]).is_err());
        assert!(cross_entropy(&logits, &[3, 0, 50, 17, 3]).is_err());
    }

    #[test]
    fn swiglu_matches_silu_times_up_for_both_inputs() {
        let dev = Device::Cpu;
        let gate = Tensor::randn(0f32, 3., (4, 24), &dev).unwrap();
        let up = Tensor::randn(0f32, 1., (4, 24), &dev).unwrap();
        assert_agree(
            "gradient of the gate",
            &gate,
            |g| swiglu(g, &up),
            |g| g.silu()? * &up,
        );
        assert_agree(
            "gradient of up",
            &up,
            |u| swiglu(&gate, u),
            |u| gate.silu()? * u,
        );
    }

    #[test]
    fn attention_matches_the_basic_ops_for_queries_keys_and_values() {
        let dev = Device::Cpu;
        let (t, heads, kv, hd) = (11, 4, 2, 8);
        // A lone example (rows 0..2), then a prefix (2..5) shared by two examples (5..9, 9..11).
        let span = |start, len, prefix| AttentionSpan { start, len, prefix };
        let spans = [
            span(0, 2, None),
            span(2, 3, None),
            span(5, 4, Some((2, 3))),
            span(9, 2, Some((2, 3))),
        ];
        let q = Tensor::randn(0f32, 1., (t, heads, hd), &dev).unwrap();
        let k = Tensor::randn(0f32, 1., (t, kv, hd), &dev).unwrap();
        let v = Tensor::randn(0f32, 1., (t, kv, hd), &dev).unwrap();
        let scale = 0.35;
        assert_agree(
            "queries",
            &q,
            |q| attention(q, &k, &v, &spans, scale),
            |q| attention_basic(q, &k, &v, &spans, scale),
        );
        assert_agree(
            "keys",
            &k,
            |k| attention(&q, k, &v, &spans, scale),
            |k| attention_basic(&q, k, &v, &spans, scale),
        );
        assert_agree(
            "values",
            &v,
            |v| attention(&q, &k, v, &spans, scale),
            |v| attention_basic(&q, &k, v, &spans, scale),
        );
    }

    #[test]
    fn causal_softmax_matches_a_masked_softmax_with_and_without_a_prefix() {
        let dev = Device::Cpu;
        for seen in [0, 4] {
            let (heads, len) = (3, 6);
            let x = Tensor::randn(0f32, 3., (heads, len, seen + len), &dev).unwrap();
            let mask = causal_mask(seen, len, &dev).unwrap();
            assert_agree(
                &format!("prefix of {seen}"),
                &x,
                |s| causal_softmax(s, seen, 0.125),
                |s| candle_nn::ops::softmax(&(s * 0.125)?.broadcast_add(&mask)?, D::Minus1),
            );
            // A query never reads a key after its own position.
            let y = causal_softmax(&x, seen, 0.125)
                .unwrap()
                .to_vec3::<f32>()
                .unwrap();
            assert!(y[0][0][seen + 1..].iter().all(|&v| v == 0.0));
        }
    }
}
