//! Just enough HDF5 to read the root group's string attributes the way h5py does, which is
//! where legacy Keras `.h5` models keep `model_config` and `training_config` (JSON).
//!
//! Superblock (v0–v3) → root object header (v1, or v2 `OHDR` with `OCHK` continuations) →
//! attribute messages (v1–v3) → fixed-length strings, or variable-length strings in a global
//! heap collection (`GCOL`), which is what h5py writes for a Python `str`. Attributes kept in
//! dense storage (a fractal heap indexed by a v2 B-tree) are read too ([`dense`]); what that
//! reader cannot follow is reported, so the caller fails closed.
//! Every offset from the file is checked; each way a header can be wrong is its own error.

use super::source::Source;

mod dense;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum H5Error {
    #[error("no HDF5 superblock at offsets 0, 512, 1024, …")]
    NoSuperblock,
    #[error("superblock version {0} is not supported")]
    SuperblockVersion(u8),
    #[error("size of offsets/lengths {0} is not 2, 4 or 8")]
    FieldSize(u8),
    #[error("{what} at offset {at} is past the end of the file")]
    PastEnd { what: &'static str, at: u64 },
    #[error("address {addr} + base {base} overflows")]
    AddressOverflow { addr: u64, base: u64 },
    #[error("object header at {0}: unknown version or signature")]
    ObjectHeader(u64),
    #[error("object header at {0}: more than {MAX_BLOCKS} continuation blocks")]
    TooManyBlocks(u64),
    #[error("object header block at {at} of {len} bytes is larger than {MAX_BLOCK} bytes")]
    BlockTooLarge { at: u64, len: u64 },
    #[error("attribute message at {0}: malformed")]
    Attribute(u64),
    #[error("attribute {name:?}: datatype is shared or not a string (class {class})")]
    NotAString { name: String, class: u8 },
    #[error("attribute {name:?}: global heap collection at {at} is malformed")]
    GlobalHeap { name: String, at: u64 },
    #[error("attribute {name:?}: heap object {index} not found in the collection at {at}")]
    HeapObject { name: String, index: u32, at: u64 },
    #[error("attribute {name:?}: value of {len} bytes exceeds {MAX_VALUE} bytes")]
    ValueTooLarge { name: String, len: u64 },
    #[error("fractal heap at {at}: {what}")]
    FractalHeap { at: u64, what: &'static str },
    #[error("v2 B-tree at {at}: {what}")]
    BTree2 { at: u64, what: &'static str },
    #[error("I/O error: {0}")]
    Io(String),
}

const MAX_BLOCK: u64 = 4 << 20;
const MAX_BLOCKS: usize = 256;
const MAX_VALUE: u64 = 64 << 20;
const SIG: &[u8; 8] = b"\x89HDF\r\n\x1a\n";

/// What the root group holds.
#[derive(Debug, Default)]
pub struct RootAttrs {
    /// Wanted string attributes found, with their values.
    pub text: Vec<(String, Vec<u8>)>,
    /// Attributes of the wanted names that are not strings this reader decodes.
    pub unreadable: Vec<(String, H5Error)>,
    /// The root group keeps its attributes in dense storage that could not be read (the
    /// reason is in `unreadable`, under an empty name).
    pub dense: bool,
}

struct F<'a> {
    src: &'a dyn Source,
    o: usize,
    l: usize,
    base: u64,
}

fn uint(b: &[u8], at: usize, n: usize) -> Option<u64> {
    let s = b.get(at..at.checked_add(n)?)?;
    Some(s.iter().rev().fold(0u64, |a, x| (a << 8) | u64::from(*x)))
}

fn undefined(v: u64, n: usize) -> bool {
    n >= 8 && v == u64::MAX || n < 8 && v == (1u64 << (8 * n)) - 1
}

impl F<'_> {
    fn read(&self, at: u64, len: u64, what: &'static str) -> Result<Vec<u8>, H5Error> {
        if at.checked_add(len).is_none_or(|e| e > self.src.len()) {
            return Err(H5Error::PastEnd { what, at });
        }
        self.src
            .read_vec(at, len, MAX_VALUE.max(MAX_BLOCK))
            .map_err(|e| H5Error::Io(e.to_string()))
    }
    fn addr(&self, a: u64) -> Result<u64, H5Error> {
        a.checked_add(self.base).ok_or(H5Error::AddressOverflow {
            addr: a,
            base: self.base,
        })
    }
}

/// Read the named string attributes of the root group.
pub fn root_attrs(src: &dyn Source, wanted: &[&str]) -> Result<RootAttrs, H5Error> {
    // The superblock sits at 0 or a power of two from 512 (after a user block).
    let mut sb_at = None;
    let mut at = 0u64;
    while at < src.len() {
        if src.read_vec(at, 8, 8).is_ok_and(|s| s == SIG) {
            sb_at = Some(at);
            break;
        }
        at = if at == 0 { 512 } else { at.saturating_mul(2) };
    }
    let sb_at = sb_at.ok_or(H5Error::NoSuperblock)?;
    let head = src
        .read_vec(sb_at, src.len().saturating_sub(sb_at).min(128), 128)
        .map_err(|e| H5Error::Io(e.to_string()))?;
    let version = *head.get(8).ok_or(H5Error::NoSuperblock)?;
    let (o, l, root_at) = match version {
        0 | 1 => {
            let (o, l) = (head.get(13).copied(), head.get(14).copied());
            let (o, l) = (
                o.ok_or(H5Error::NoSuperblock)?,
                l.ok_or(H5Error::NoSuperblock)?,
            );
            let start = if version == 0 { 24 } else { 28 };
            // base, free-space, EOF, driver addresses, then the root symbol table entry:
            // link name offset, object header address.
            (o, l, start + 5 * o as usize)
        }
        2 | 3 => {
            let o = *head.get(9).ok_or(H5Error::NoSuperblock)?;
            let l = *head.get(10).ok_or(H5Error::NoSuperblock)?;
            (o, l, 12 + 3 * o as usize)
        }
        v => return Err(H5Error::SuperblockVersion(v)),
    };
    for s in [o, l] {
        if !matches!(s, 2 | 4 | 8) {
            return Err(H5Error::FieldSize(s));
        }
    }
    let (o, l) = (o as usize, l as usize);
    let base_off = if version < 2 {
        if version == 0 {
            24
        } else {
            28
        }
    } else {
        12
    };
    let base = uint(&head, base_off, o).ok_or(H5Error::NoSuperblock)?;
    let f = F {
        src,
        o,
        l,
        // A base address of 0 with a user block means "the superblock's position".
        base: if base == 0 { sb_at } else { base },
    };
    let root = uint(&head, root_at, o).ok_or(H5Error::NoSuperblock)?;
    let root = f.addr(root)?;
    let mut out = RootAttrs::default();
    let mut attrs = vec![];
    for (ty, data, at) in messages(&f, root)? {
        match ty {
            0x000C => attrs.push((data, at)),
            0x0015 => {
                // Attribute info: a defined fractal heap address means dense storage, where
                // HDF5 (and so h5py) looks the names up.
                let flags = *data.get(1).unwrap_or(&0);
                let off = 2 + if flags & 1 != 0 { 2 } else { 0 };
                if uint(&data, off, o).is_some_and(|a| !undefined(a, o)) {
                    match dense::attribute_messages(&f, &data, at) {
                        Ok(found) => attrs.extend(found),
                        Err(e) => {
                            out.dense = true;
                            out.unreadable.push((String::new(), e));
                        }
                    }
                }
            }
            _ => {}
        }
    }
    // Every attribute message found, compact or dense: a name present twice (both storages,
    // or twice in the index) is kept twice, since which one a reader gets depends on its path.
    for (data, at) in attrs {
        let (name, value) = match attribute(&f, &data, at) {
            Ok(x) => x,
            Err(e) => {
                out.unreadable.push((String::new(), e));
                continue;
            }
        };
        if !wanted.contains(&name.as_str()) {
            continue;
        }
        match value {
            Ok(v) => out.text.push((name, v)),
            Err(e) => out.unreadable.push((name, e)),
        }
    }
    Ok(out)
}

/// All messages of an object header (following continuations): (type, data, file offset).
fn messages(f: &F<'_>, at: u64) -> Result<Vec<(u16, Vec<u8>, u64)>, H5Error> {
    let first = f.read(at, 16.min(f.src.len().saturating_sub(at)), "object header")?;
    let mut out = vec![];
    let mut blocks: Vec<(u64, u64)> = vec![];
    let v2 = first.starts_with(b"OHDR");
    let mut hflags = 0u8;
    if v2 {
        let h = f.read(at, 6, "object header")?;
        if h[4] != 2 {
            return Err(H5Error::ObjectHeader(at));
        }
        hflags = h[5];
        let mut p = 6u64;
        if hflags & 0x20 != 0 {
            p += 16;
        }
        if hflags & 0x10 != 0 {
            p += 4;
        }
        let n = 1usize << (hflags & 3);
        let sz = f.read(at + p, n as u64, "object header chunk size")?;
        let size = uint(&sz, 0, n).unwrap_or(0);
        blocks.push((at + p + n as u64, size));
    } else {
        if first.first() != Some(&1) || first.len() < 16 {
            return Err(H5Error::ObjectHeader(at));
        }
        let size = uint(&first, 8, 4).unwrap_or(0);
        blocks.push((at + 16, size));
    }
    let mut i = 0;
    while i < blocks.len() {
        if i >= MAX_BLOCKS {
            return Err(H5Error::TooManyBlocks(at));
        }
        let (start, len) = blocks[i];
        i += 1;
        if len > MAX_BLOCK {
            return Err(H5Error::BlockTooLarge { at: start, len });
        }
        let b = f.read(start, len, "object header block")?;
        let mut p = 0usize;
        if v2 {
            // Continuation chunks start with OCHK; every v2 chunk ends with a checksum.
            if i > 1 {
                if !b.starts_with(b"OCHK") {
                    return Err(H5Error::ObjectHeader(start));
                }
                p = 4;
            }
            let end = b.len().saturating_sub(4);
            let hdr = 4 + if hflags & 0x04 != 0 { 2 } else { 0 };
            while p + hdr <= end {
                let ty = b[p] as u16;
                let size = uint(&b, p + 1, 2).unwrap_or(0) as usize;
                let data_at = p + hdr;
                let Some(data) = b.get(data_at..data_at + size) else {
                    break;
                };
                out.push((ty, data.to_vec(), start + data_at as u64));
                p = data_at + size;
            }
        } else {
            while p + 8 <= b.len() {
                let ty = uint(&b, p, 2).unwrap_or(0) as u16;
                let size = uint(&b, p + 2, 2).unwrap_or(0) as usize;
                let Some(data) = b.get(p + 8..p + 8 + size) else {
                    break;
                };
                out.push((ty, data.to_vec(), start + p as u64 + 8));
                p += 8 + size;
            }
        }
        // Continuations found in this block.
        let conts: Vec<(u64, u64)> = out
            .iter()
            .filter(|(ty, _, at)| *ty == 0x0010 && *at >= start && *at < start + len)
            .filter_map(|(_, d, _)| Some((uint(d, 0, f.o)?, uint(d, f.o, f.l)?)))
            .collect();
        for (a, n) in conts {
            blocks.push((f.addr(a)?, n));
        }
    }
    Ok(out)
}

fn pad8(n: usize) -> usize {
    n.div_ceil(8) * 8
}

type AttrValue = Result<Vec<u8>, H5Error>;

/// Decode an attribute message: its name and (for strings) its value.
fn attribute(f: &F<'_>, d: &[u8], at: u64) -> Result<(String, AttrValue), H5Error> {
    let bad = || H5Error::Attribute(at);
    let version = *d.first().ok_or_else(bad)?;
    let flags = *d.get(1).ok_or_else(bad)?;
    let nlen = uint(d, 2, 2).ok_or_else(bad)? as usize;
    let tlen = uint(d, 4, 2).ok_or_else(bad)? as usize;
    let slen = uint(d, 6, 2).ok_or_else(bad)? as usize;
    let (name_at, padded) = match version {
        1 => (8, true),
        2 => (8, false),
        3 => (9, false),
        _ => return Err(bad()),
    };
    let p = |n: usize| if padded { pad8(n) } else { n };
    let name = d.get(name_at..name_at + nlen).ok_or_else(bad)?;
    let name = String::from_utf8_lossy(name.split(|b| *b == 0).next().unwrap_or(&[])).into_owned();
    let dt_at = name_at + p(nlen);
    let dt = d.get(dt_at..dt_at + tlen).ok_or_else(bad)?;
    let data_at = dt_at + p(tlen) + p(slen);
    let data = d.get(data_at..).ok_or_else(bad)?;
    let class = dt.first().map(|b| b & 0x0f).unwrap_or(0xff);
    // Shared datatypes (flag bit 0) hold a reference, not the type.
    if flags & 1 != 0 || dt.len() < 8 {
        return Ok((name.clone(), Err(H5Error::NotAString { name, class })));
    }
    let size = uint(dt, 4, 4).unwrap_or(0) as usize;
    let value = match class {
        3 => data
            .get(..size)
            .map(|v| {
                let end = v.iter().position(|b| *b == 0).unwrap_or(v.len());
                v[..end].to_vec()
            })
            .ok_or_else(bad),
        9 if dt[1] & 0x0f == 1 => vlen_string(f, &name, data),
        _ => Err(H5Error::NotAString {
            name: name.clone(),
            class,
        }),
    };
    Ok((name, value))
}

/// A variable-length string: length, then (collection address, object index) in the global heap.
fn vlen_string(f: &F<'_>, name: &str, data: &[u8]) -> AttrValue {
    let heap_err = |at| H5Error::GlobalHeap {
        name: name.to_string(),
        at,
    };
    let len = uint(data, 0, 4).ok_or_else(|| heap_err(0))?;
    let coll = uint(data, 4, f.o).ok_or_else(|| heap_err(0))?;
    let index = uint(data, 4 + f.o, 4).ok_or_else(|| heap_err(coll))? as u32;
    if len > MAX_VALUE {
        return Err(H5Error::ValueTooLarge {
            name: name.to_string(),
            len,
        });
    }
    let coll = f.addr(coll)?;
    let head = f.read(coll, 8 + f.l as u64, "global heap collection")?;
    if !head.starts_with(b"GCOL") {
        return Err(heap_err(coll));
    }
    let csize = uint(&head, 8, f.l).ok_or_else(|| heap_err(coll))?;
    if csize > MAX_VALUE + MAX_BLOCK {
        return Err(H5Error::ValueTooLarge {
            name: name.to_string(),
            len: csize,
        });
    }
    let c = f.read(coll, csize, "global heap collection")?;
    let mut p = 8 + f.l;
    while p + 8 + f.l <= c.len() {
        let idx = uint(&c, p, 2).unwrap_or(0) as u32;
        let osize = uint(&c, p + 8, f.l).unwrap_or(0);
        let body = p + 8 + f.l;
        if idx == 0 {
            break; // free space: no objects after it
        }
        let end = usize::try_from(osize)
            .ok()
            .and_then(|n| body.checked_add(n))
            .filter(|e| *e <= c.len())
            .ok_or_else(|| heap_err(coll))?;
        if idx == index {
            let v = &c[body..end];
            return Ok(v[..(len as usize).min(v.len())].to_vec());
        }
        p = body + pad8(end - body);
    }
    Err(H5Error::HeapObject {
        name: name.to_string(),
        index,
        at: coll,
    })
}
