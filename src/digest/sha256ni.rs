//! SHA-256 with the x86 SHA extensions, two independent messages at a time.
//!
//! One SHA-256 stream is a chain of dependent `sha256rnds2` instructions, so a single stream
//! leaves the SHA unit idle between them. Hashing two files in lock-step interleaves two
//! independent chains and fills those gaps: same digests, more bytes per core. Used when a
//! worker has two files or shards in hand; everything else goes through `sha2`.

#![allow(unsafe_op_in_unsafe_fn)]

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

const H0: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

const K: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];

/// Are the SHA extensions (and the SSE levels the kernel needs) present?
pub(crate) fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("sha")
            && std::is_x86_feature_detected!("sse4.1")
            && std::is_x86_feature_detected!("ssse3")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The SHA-NI register layout of one state: (ABEF, CDGH) plus the message words being built.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
struct Lanes {
    abef: __m128i,
    cdgh: __m128i,
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
unsafe fn load_state(s: &[u32; 8]) -> Lanes {
    let dcba = _mm_loadu_si128(s.as_ptr().cast());
    let hgfe = _mm_loadu_si128(s.as_ptr().add(4).cast());
    let cdab = _mm_shuffle_epi32(dcba, 0xB1);
    let efgh = _mm_shuffle_epi32(hgfe, 0x1B);
    Lanes {
        abef: _mm_alignr_epi8(cdab, efgh, 8),
        cdgh: _mm_blend_epi16(efgh, cdab, 0xF0),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
unsafe fn store_state(l: Lanes, s: &mut [u32; 8]) {
    let feba = _mm_shuffle_epi32(l.abef, 0x1B);
    let dchg = _mm_shuffle_epi32(l.cdgh, 0xB1);
    _mm_storeu_si128(s.as_mut_ptr().cast(), _mm_blend_epi16(feba, dchg, 0xF0));
    _mm_storeu_si128(s.as_mut_ptr().add(4).cast(), _mm_alignr_epi8(dchg, feba, 8));
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
unsafe fn load_words(block: &[u8]) -> [__m128i; 4] {
    let bswap = _mm_set_epi64x(0x0c0d0e0f08090a0b, 0x0405060700010203);
    let p = block.as_ptr().cast::<__m128i>();
    [
        _mm_shuffle_epi8(_mm_loadu_si128(p), bswap),
        _mm_shuffle_epi8(_mm_loadu_si128(p.add(1)), bswap),
        _mm_shuffle_epi8(_mm_loadu_si128(p.add(2)), bswap),
        _mm_shuffle_epi8(_mm_loadu_si128(p.add(3)), bswap),
    ]
}

/// Four rounds with message words `w` (already scheduled) and constants K[4i..4i+4].
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn rounds4(l: &mut Lanes, w: __m128i, i: usize) {
    let k = _mm_loadu_si128(K.as_ptr().add(4 * i).cast());
    let wk = _mm_add_epi32(w, k);
    l.cdgh = _mm_sha256rnds2_epu32(l.cdgh, l.abef, wk);
    l.abef = _mm_sha256rnds2_epu32(l.abef, l.cdgh, _mm_shuffle_epi32(wk, 0x0E));
}

/// Next four message words from the previous sixteen.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn schedule(w: &[__m128i; 4]) -> __m128i {
    let t = _mm_add_epi32(
        _mm_sha256msg1_epu32(w[0], w[1]),
        _mm_alignr_epi8(w[3], w[2], 4),
    );
    _mm_sha256msg2_epu32(t, w[3])
}

/// Compress `n` blocks of `a` into `sa` and, when given, `n` blocks of `b` into `sb`, with the
/// two dependency chains interleaved round group by round group.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
unsafe fn compress(sa: &mut [u32; 8], a: &[u8], mut b: Option<(&mut [u32; 8], &[u8])>) {
    let n = a.len() / 64;
    let mut la = load_state(sa);
    let mut lb = b.as_ref().map(|(s, _)| load_state(s));
    for blk in 0..n {
        let (sa0, mut wa) = (la, load_words(&a[blk * 64..]));
        let (sb0, mut wb) = match (&b, lb) {
            (Some((_, bb)), Some(l)) => (Some(l), Some(load_words(&bb[blk * 64..]))),
            _ => (None, None),
        };
        for i in 0..16 {
            if i >= 4 {
                let na = schedule(&wa);
                wa = [wa[1], wa[2], wa[3], na];
                if let Some(w) = wb.as_mut() {
                    let nb = schedule(w);
                    *w = [w[1], w[2], w[3], nb];
                }
            }
            let (xa, xb) = if i < 4 {
                (wa[i], wb.map(|w| w[i]))
            } else {
                (wa[3], wb.map(|w| w[3]))
            };
            rounds4(&mut la, xa, i);
            if let (Some(l), Some(x)) = (lb.as_mut(), xb) {
                rounds4(l, x, i);
            }
        }
        la.abef = _mm_add_epi32(la.abef, sa0.abef);
        la.cdgh = _mm_add_epi32(la.cdgh, sa0.cdgh);
        if let (Some(l), Some(s0)) = (lb.as_mut(), sb0) {
            l.abef = _mm_add_epi32(l.abef, s0.abef);
            l.cdgh = _mm_add_epi32(l.cdgh, s0.cdgh);
        }
    }
    store_state(la, sa);
    if let (Some((s, _)), Some(l)) = (b.as_mut(), lb) {
        store_state(l, s);
    }
}

/// A streaming SHA-256 whose compression runs on the SHA extensions. Only constructed when
/// [`available`] is true.
#[derive(Clone)]
pub(crate) struct Sha256Ni {
    state: [u32; 8],
    buf: [u8; 64],
    buf_len: usize,
    total: u64,
}

impl Sha256Ni {
    pub(crate) fn new() -> Self {
        debug_assert!(available());
        Sha256Ni {
            state: H0,
            buf: [0; 64],
            buf_len: 0,
            total: 0,
        }
    }

    /// Top up the partial block from `data`; returns the rest, which then starts on a block
    /// boundary (or is empty with the partial block still open).
    fn fill<'d>(&mut self, mut data: &'d [u8]) -> &'d [u8] {
        self.total += data.len() as u64;
        if self.buf_len > 0 {
            let take = (64 - self.buf_len).min(data.len());
            self.buf[self.buf_len..self.buf_len + take].copy_from_slice(&data[..take]);
            self.buf_len += take;
            data = &data[take..];
            if self.buf_len == 64 {
                let block = self.buf;
                self.compress1(&block);
                self.buf_len = 0;
            }
        }
        data
    }

    fn keep_tail(&mut self, tail: &[u8]) {
        // After `fill`, either the buffer is empty or the data was used up (tail empty).
        if tail.is_empty() {
            return;
        }
        self.buf[..tail.len()].copy_from_slice(tail);
        self.buf_len = tail.len();
    }

    fn compress1(&mut self, blocks: &[u8]) {
        #[cfg(target_arch = "x86_64")]
        unsafe {
            compress(&mut self.state, blocks, None)
        }
    }

    pub(crate) fn update(&mut self, data: &[u8]) {
        let rest = self.fill(data);
        let full = rest.len() / 64 * 64;
        self.compress1(&rest[..full]);
        self.keep_tail(&rest[full..]);
    }

    /// Feed `da` to `a` and `db` to `b`, compressing their common whole blocks two at a time.
    pub(crate) fn update2(a: &mut Sha256Ni, da: &[u8], b: &mut Sha256Ni, db: &[u8]) {
        let ra = a.fill(da);
        let rb = b.fill(db);
        // After fill, a non-empty rest starts on a block boundary with an empty buffer.
        let common = (ra.len() / 64).min(rb.len() / 64) * 64;
        #[cfg(target_arch = "x86_64")]
        unsafe {
            compress(
                &mut a.state,
                &ra[..common],
                Some((&mut b.state, &rb[..common])),
            );
        }
        for (h, r) in [(a, &ra[common..]), (b, &rb[common..])] {
            let full = r.len() / 64 * 64;
            h.compress1(&r[..full]);
            h.keep_tail(&r[full..]);
        }
    }

    pub(crate) fn finish(mut self) -> [u8; 32] {
        let bits = self.total.wrapping_mul(8);
        let mut pad = [0u8; 128];
        pad[..self.buf_len].copy_from_slice(&self.buf[..self.buf_len]);
        pad[self.buf_len] = 0x80;
        let len = if self.buf_len < 56 { 64 } else { 128 };
        pad[len - 8..len].copy_from_slice(&bits.to_be_bytes());
        self.compress1(&pad[..len]);
        let mut out = [0u8; 32];
        for (i, w) in self.state.iter().enumerate() {
            out[4 * i..4 * i + 4].copy_from_slice(&w.to_be_bytes());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(d: &[u8]) -> [u8; 32] {
        crate::digest::sha256(d)
    }

    #[test]
    fn matches_reference_single_and_paired() {
        if !available() {
            eprintln!("note: no SHA extensions on this CPU; the sha2 path is used instead");
            return;
        }
        let data: Vec<u8> = (0..5000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        // Every length around block and padding boundaries, and odd split points.
        for len in (0..200).chain([1000, 4095, 4096, 4097, 5000]) {
            let d = &data[..len];
            let mut h = Sha256Ni::new();
            h.update(&d[..len / 3]);
            h.update(&d[len / 3..]);
            assert_eq!(h.finish(), reference(d), "len {len}");
        }
        for (la, lb) in [
            (0, 0),
            (64, 64),
            (5000, 3000),
            (63, 4097),
            (1000, 1),
            (128, 129),
        ] {
            let (da, db) = (&data[..la], &data[5000 - lb..]);
            let (mut a, mut b) = (Sha256Ni::new(), Sha256Ni::new());
            // Uneven chunking on both sides.
            let (ca, cb) = (da.len() / 2 + 7, db.len() / 3 + 1);
            Sha256Ni::update2(
                &mut a,
                &da[..ca.min(da.len())],
                &mut b,
                &db[..cb.min(db.len())],
            );
            Sha256Ni::update2(
                &mut a,
                &da[ca.min(da.len())..],
                &mut b,
                &db[cb.min(db.len())..],
            );
            assert_eq!(a.finish(), reference(da), "a {la}/{lb}");
            assert_eq!(b.finish(), reference(db), "b {la}/{lb}");
        }
    }
}
