//! Dense attribute storage (HDF5 ≥ 1.8 object headers, h5py `libver='latest'` or many / large
//! attributes): the attribute messages are objects of a fractal heap, found through the v2
//! B-tree that indexes them by name — the path `H5Aopen_by_name` (h5py's `attrs[name]`) takes.
//! Read: the name B-tree (leaf and internal nodes, any depth up to a bound) and managed heap
//! objects in a root direct block or under the root indirect block (nested indirect blocks
//! followed to a bound); tiny objects. Not read (an error, so the caller fails closed):
//! filtered heaps, huge objects. Checksums are not verified (HDF5 would refuse a file mlsign
//! still reads).

use super::{uint, undefined, H5Error, F, MAX_VALUE};

/// Records (attributes) and nodes read from one B-tree before giving up.
const MAX_RECORDS: usize = 1 << 16;
const MAX_NODES: usize = 1 << 14;
const MAX_DEPTH: u16 = 8;
const MAX_NODE: u64 = 1 << 20;
/// Signature, version, type and checksum around a B-tree node's records.
const NODE_PREFIX: u64 = 10;

fn heap_err(at: u64, what: &'static str) -> H5Error {
    H5Error::FractalHeap { at, what }
}

fn tree_err(at: u64, what: &'static str) -> H5Error {
    H5Error::BTree2 { at, what }
}

/// `floor(log2(n))` for n > 0.
fn log2(n: u64) -> u32 {
    63 - n.leading_zeros()
}

/// Bytes HDF5 uses to encode values up to `n` (`H5VM_limit_enc_size`).
fn enc_size(n: u64) -> usize {
    (log2(n.max(1)) / 8 + 1) as usize
}

struct Heap {
    at: u64,
    id_len: usize,
    checksummed_blocks: bool,
    width: u64,
    start: u64,
    max_direct: u64,
    off_size: usize,
    len_size: usize,
    root: u64,
    cur_rows: u64,
}

impl Heap {
    fn read(f: &F<'_>, at: u64) -> Result<Heap, H5Error> {
        let (o, l) = (f.o, f.l);
        let size = 4 + 1 + 2 + 2 + 1 + 4 + 10 * l + 2 * o + 2 + 2 * l + 2 + 2 + o + 2;
        let h = f.read(at, size as u64, "fractal heap header")?;
        if !h.starts_with(b"FRHP") || h[4] != 0 {
            return Err(heap_err(
                at,
                "no fractal heap header (FRHP, version 0) there",
            ));
        }
        let u = |p: usize, n: usize| uint(&h, p, n).ok_or(heap_err(at, "header truncated"));
        let id_len = u(5, 2)? as usize;
        if u(7, 2)? != 0 {
            return Err(heap_err(
                at,
                "heap objects are filtered (compressed): not read",
            ));
        }
        let flags = h[9];
        let max_man = u(10, 4)?;
        let mut p = 14 + 10 * l + 2 * o;
        let width = u(p, 2)?;
        p += 2;
        let start = u(p, l)?;
        let max_direct = u(p + l, l)?;
        p += 2 * l;
        let heap_bits = u(p, 2)?;
        p += 4; // maximum heap size (bits), starting rows of the root indirect block
        let root = u(p, o)?;
        let cur_rows = u(p + o, 2)?;
        let pow2 = |v: u64| v != 0 && v.is_power_of_two();
        if !pow2(width) || !pow2(start) || !pow2(max_direct) || max_direct < start {
            return Err(heap_err(
                at,
                "table width or block sizes are not powers of two",
            ));
        }
        if !(1..=64).contains(&heap_bits) || max_man == 0 || !(1..=64).contains(&id_len) {
            return Err(heap_err(
                at,
                "heap size, object size or ID length out of range",
            ));
        }
        if undefined(root, o) {
            return Err(heap_err(at, "heap has no root block"));
        }
        Ok(Heap {
            at,
            id_len,
            checksummed_blocks: flags & 2 != 0,
            width,
            start,
            max_direct,
            off_size: (heap_bits as usize).div_ceil(8),
            len_size: (log2(max_direct) as usize)
                .div_ceil(8)
                .min(enc_size(max_man)),
            root: f.addr(root)?,
            cur_rows,
        })
    }

    /// The object a heap ID names: its bytes and file offset.
    fn object(&self, f: &F<'_>, id: &[u8]) -> Result<(Vec<u8>, u64), H5Error> {
        let b0 = *id.first().ok_or(heap_err(self.at, "empty heap ID"))?;
        if b0 >> 6 != 0 {
            return Err(heap_err(self.at, "heap ID of an unknown version"));
        }
        match (b0 >> 4) & 3 {
            0 => {
                let off =
                    uint(id, 1, self.off_size).ok_or(heap_err(self.at, "heap ID truncated"))?;
                let len = uint(id, 1 + self.off_size, self.len_size)
                    .ok_or(heap_err(self.at, "heap ID truncated"))?;
                if len == 0 || len > MAX_VALUE {
                    return Err(heap_err(self.at, "heap object length out of range"));
                }
                let addr = self.locate(f, off, len)?;
                Ok((f.read(addr, len, "fractal heap object")?, addr))
            }
            1 => Err(heap_err(
                self.at,
                "huge heap objects (outside the heap's blocks) are not read",
            )),
            2 => {
                let n = (b0 & 0x0f) as usize + 1;
                let d = id
                    .get(1..1 + n)
                    .ok_or(heap_err(self.at, "tiny heap object truncated"))?;
                Ok((d.to_vec(), self.at))
            }
            _ => Err(heap_err(self.at, "heap ID of an unknown type")),
        }
    }

    /// File offset of managed-space bytes `off..off+len` (within one direct block).
    fn locate(&self, f: &F<'_>, off: u64, len: u64) -> Result<u64, H5Error> {
        let end = off
            .checked_add(len)
            .ok_or(heap_err(self.at, "object offset overflows"))?;
        let header =
            (4 + 1 + f.o + self.off_size) as u64 + if self.checksummed_blocks { 4 } else { 0 };
        let in_block = |addr: u64, block_off: u64, size: u64| -> Result<u64, H5Error> {
            if off < block_off + header || end > block_off + size {
                return Err(heap_err(
                    self.at,
                    "heap object runs outside its direct block",
                ));
            }
            let h = f.read(addr, 5, "fractal heap direct block")?;
            if !h.starts_with(b"FHDB") || h[4] != 0 {
                return Err(heap_err(addr, "no direct block (FHDB) there"));
            }
            addr.checked_add(off - block_off)
                .ok_or(heap_err(self.at, "object address overflows"))
        };
        if self.cur_rows == 0 {
            return in_block(self.root, 0, self.start);
        }
        let (addr, block_off, size) = self.in_indirect(f, self.root, 0, self.cur_rows, 0, off)?;
        in_block(addr, block_off, size)
    }

    /// The direct block (address, heap offset, size) holding `off` under the indirect block at
    /// `addr` (heap offset `base`, `rows` rows): rows 0 and 1 hold blocks of the starting size,
    /// then each row doubles; rows past the maximum direct block size hold indirect blocks
    /// spanning their row's block size.
    fn in_indirect(
        &self,
        f: &F<'_>,
        addr: u64,
        base: u64,
        rows: u64,
        depth: u32,
        off: u64,
    ) -> Result<(u64, u64, u64), H5Error> {
        if depth > 8 || rows > 64 {
            return Err(heap_err(
                addr,
                "indirect blocks nested deeper than mlsign follows",
            ));
        }
        let direct_rows = u64::from(log2(self.max_direct) - log2(self.start)) + 2;
        let entries = rows
            .checked_mul(self.width)
            .filter(|n| *n <= 1 << 16)
            .ok_or(heap_err(addr, "indirect block too large"))?;
        let hdr = (4 + 1 + f.o + self.off_size) as u64;
        let ib = f.read(
            addr,
            hdr + entries * f.o as u64,
            "fractal heap indirect block",
        )?;
        if !ib.starts_with(b"FHIB") || ib[4] != 0 {
            return Err(heap_err(addr, "no indirect block (FHIB) there"));
        }
        let mut block_off = base;
        for r in 0..rows {
            let size = if r == 0 {
                self.start
            } else {
                self.start
                    .checked_shl((r - 1) as u32)
                    .filter(|s| *s != 0)
                    .ok_or(heap_err(addr, "row block size overflows"))?
            };
            for c in 0..self.width {
                let end = block_off
                    .checked_add(size)
                    .ok_or(heap_err(addr, "heap offsets overflow"))?;
                if off >= block_off && off < end {
                    let e = hdr as usize + ((r * self.width + c) as usize) * f.o;
                    let a = uint(&ib, e, f.o).ok_or(heap_err(addr, "indirect block truncated"))?;
                    if undefined(a, f.o) {
                        return Err(heap_err(addr, "heap object in a block never allocated"));
                    }
                    let a = f.addr(a)?;
                    if r < direct_rows {
                        return Ok((a, block_off, size));
                    }
                    let child_rows = u64::from(log2(size))
                        .checked_sub(u64::from(log2(self.start) + log2(self.width)))
                        .ok_or(heap_err(addr, "indirect row smaller than a row of blocks"))?
                        + 1;
                    return self.in_indirect(f, a, block_off, child_rows, depth + 1, off);
                }
                block_off = end;
            }
        }
        Err(heap_err(
            self.at,
            "heap object offset past the heap's blocks",
        ))
    }
}

/// The attribute messages of an object whose attribute-info message is `ainfo`, in name-index
/// order, each with its file offset.
pub(super) fn attribute_messages(
    f: &F<'_>,
    ainfo: &[u8],
    at: u64,
) -> Result<Vec<(Vec<u8>, u64)>, H5Error> {
    if ainfo.first() != Some(&0) {
        return Err(heap_err(at, "attribute info message of an unknown version"));
    }
    let flags = *ainfo
        .get(1)
        .ok_or(heap_err(at, "attribute info truncated"))?;
    let p = 2 + if flags & 1 != 0 { 2 } else { 0 };
    let heap = uint(ainfo, p, f.o).ok_or(heap_err(at, "attribute info truncated"))?;
    let tree = uint(ainfo, p + f.o, f.o).ok_or(heap_err(at, "attribute info truncated"))?;
    let heap = Heap::read(f, f.addr(heap)?)?;
    let ids = name_index(f, f.addr(tree)?, heap.id_len)?;
    ids.iter().map(|id| heap.object(f, id)).collect()
}

/// The heap IDs of a v2 B-tree of type 8 (attribute names), in order.
fn name_index(f: &F<'_>, at: u64, id_len: usize) -> Result<Vec<Vec<u8>>, H5Error> {
    let (o, l) = (f.o, f.l);
    let h = f.read(
        at,
        (4 + 1 + 1 + 4 + 2 + 2 + 1 + 1 + o + 2 + l) as u64,
        "v2 B-tree header",
    )?;
    if !h.starts_with(b"BTHD") || h[4] != 0 {
        return Err(tree_err(at, "no v2 B-tree header (BTHD, version 0) there"));
    }
    if h[5] != 8 {
        return Err(tree_err(at, "not an attribute name index (type 8)"));
    }
    let u = |p: usize, n: usize| uint(&h, p, n).ok_or(tree_err(at, "header truncated"));
    let node_size = u(6, 4)?;
    let rec = u(10, 2)?;
    let depth = u(12, 2)? as u16;
    let root = u(16, o)?;
    let root_nrec = u(16 + o, 2)?;
    if rec < id_len as u64 + 9 || !(NODE_PREFIX + rec..=MAX_NODE).contains(&node_size) {
        return Err(tree_err(at, "record or node size out of range"));
    }
    if depth > MAX_DEPTH {
        return Err(tree_err(at, "deeper than mlsign follows"));
    }
    // Encoded sizes of child pointers (H5B2__hdr_init): records in a child, and below it.
    let leaf_max = (node_size - NODE_PREFIX) / rec;
    let nrec_size = enc_size(leaf_max);
    let mut cum: Vec<(u64, usize)> = vec![(leaf_max, 0)];
    for d in 1..=depth as usize {
        let ptr = (o + nrec_size + cum[d - 1].1) as u64;
        let max = node_size
            .checked_sub(NODE_PREFIX + ptr)
            .map(|n| n / (rec + ptr))
            .ok_or(tree_err(at, "node too small for its pointers"))?;
        let total = (max + 1).saturating_mul(cum[d - 1].0).saturating_add(max);
        cum.push((total, enc_size(total)));
    }
    let mut out = vec![];
    let mut nodes = 0usize;
    // Depth-first, children before the record that follows them (the tree's order).
    enum Step {
        Node(u64, u64, u16),
        Record(Vec<u8>),
    }
    let mut todo = vec![];
    if !undefined(root, o) && root_nrec > 0 {
        todo.push(Step::Node(f.addr(root)?, root_nrec, depth));
    }
    while let Some(step) = todo.pop() {
        let (addr, nrec, d) = match step {
            Step::Record(id) => {
                if out.len() >= MAX_RECORDS {
                    return Err(tree_err(at, "more attributes than mlsign reads"));
                }
                out.push(id);
                continue;
            }
            Step::Node(a, n, d) => (a, n, d),
        };
        nodes += 1;
        if nodes > MAX_NODES {
            return Err(tree_err(at, "more nodes than mlsign reads"));
        }
        let b = f.read(addr, node_size, "v2 B-tree node")?;
        let sig: &[u8] = if d == 0 { b"BTLF" } else { b"BTIN" };
        if !b.starts_with(sig) || b[4] != 0 || b[5] != 8 {
            return Err(tree_err(
                addr,
                "node signature, version or type does not match the tree",
            ));
        }
        let recs = 6 + (nrec * rec) as usize;
        let ptr = o + nrec_size + if d > 1 { cum[d as usize - 1].1 } else { 0 };
        let need = recs as u64 + if d > 0 { (nrec + 1) * ptr as u64 } else { 0 } + 4;
        if nrec == 0 || need > node_size {
            return Err(tree_err(addr, "node holds more records than fit"));
        }
        let record = |i: u64| b[6 + (i * rec) as usize..][..id_len].to_vec();
        if d == 0 {
            for i in (0..nrec).rev() {
                todo.push(Step::Record(record(i)));
            }
            continue;
        }
        // Children and records interleaved: child 0, record 0, child 1, … (pushed reversed).
        let child = |i: u64| -> Result<Step, H5Error> {
            let p = recs + i as usize * ptr;
            let a = uint(&b, p, o).ok_or(tree_err(addr, "node truncated"))?;
            let n = uint(&b, p + o, nrec_size).ok_or(tree_err(addr, "node truncated"))?;
            Ok(Step::Node(f.addr(a)?, n, d - 1))
        };
        todo.push(child(nrec)?);
        for i in (0..nrec).rev() {
            todo.push(Step::Record(record(i)));
            todo.push(child(i)?);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::root_attrs;

    /// 12 attributes and a model_config written by h5py with `libver='latest'`: dense storage
    /// with a root direct block and a one-leaf name index.
    const FILE: &[u8] = include_bytes!("../../../../testdata/scan/h5/dense-attrs.h5");

    #[test]
    fn dense_attributes_are_read_through_the_name_index() {
        let a = root_attrs(&FILE, &["model_config"]).unwrap();
        assert!(!a.dense, "{:?}", a.unreadable);
        assert_eq!(a.text.len(), 1);
        assert!(a.text[0].1.starts_with(b"{\"class_name\": \"Sequential\""));
    }

    #[test]
    fn broken_structures_are_reported_not_guessed() {
        for (sig, what) in [
            (&b"BTLF"[..], "v2 B-tree"),
            (b"BTHD", "v2 B-tree"),
            (b"FRHP", "fractal heap"),
            (b"FHDB", "fractal heap"),
        ] {
            let at = FILE.windows(4).position(|w| w == sig).unwrap();
            let mut d = FILE.to_vec();
            d[at] ^= 0xff;
            let a = root_attrs(&&d[..], &["model_config"]).unwrap();
            assert!(a.dense && a.text.is_empty(), "{sig:?}");
            assert!(
                a.unreadable
                    .iter()
                    .any(|(_, e)| e.to_string().contains(what)),
                "{sig:?}: {:?}",
                a.unreadable
            );
        }
    }

    #[test]
    fn every_byte_flip_is_survived() {
        // Hostile headers: any single corrupted byte gives a result or an error, never a panic.
        for i in 0..FILE.len() {
            for x in [0xffu8, 0x80, 0x01] {
                let mut d = FILE.to_vec();
                d[i] ^= x;
                let _ = root_attrs(&&d[..], &["model_config"]);
            }
        }
    }
}
