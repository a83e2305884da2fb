//! The pickle opcode table, protocols 0–5 (all 68 opcodes of CPython's `pickletools`).

/// How an opcode's argument is encoded after the opcode byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arg {
    None,
    U8,
    U16,
    I32,
    U32,
    U64,
    F64,
    /// One `\n`-terminated line.
    Line,
    /// Two `\n`-terminated lines (GLOBAL, INST).
    TwoLines,
    /// A length prefix (bytes given) followed by that many bytes.
    Len1,
    Len4,
    /// BINSTRING: signed 4-byte length.
    Len4Signed,
    Len8,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Op {
    pub code: u8,
    pub name: &'static str,
    pub arg: Arg,
    pub proto: u8,
}

macro_rules! ops {
    ($($code:expr, $name:ident, $arg:ident, $proto:expr;)*) => {
        pub mod code { $(pub const $name: u8 = $code;)* }
        pub const OPS: &[Op] = &[$(Op { code: $code, name: stringify!($name), arg: Arg::$arg, proto: $proto },)*];
    };
}

ops! {
    b'(', MARK, None, 0;
    b'.', STOP, None, 0;
    b'0', POP, None, 0;
    b'1', POP_MARK, None, 1;
    b'2', DUP, None, 0;
    b'F', FLOAT, Line, 0;
    b'I', INT, Line, 0;
    b'J', BININT, I32, 1;
    b'K', BININT1, U8, 1;
    b'L', LONG, Line, 0;
    b'M', BININT2, U16, 1;
    b'N', NONE, None, 0;
    b'P', PERSID, Line, 0;
    b'Q', BINPERSID, None, 1;
    b'R', REDUCE, None, 0;
    b'S', STRING, Line, 0;
    b'T', BINSTRING, Len4Signed, 1;
    b'U', SHORT_BINSTRING, Len1, 1;
    b'V', UNICODE, Line, 0;
    b'X', BINUNICODE, Len4, 1;
    b'a', APPEND, None, 0;
    b'b', BUILD, None, 0;
    b'c', GLOBAL, TwoLines, 0;
    b'd', DICT, None, 0;
    b'}', EMPTY_DICT, None, 1;
    b'e', APPENDS, None, 1;
    b'g', GET, Line, 0;
    b'h', BINGET, U8, 1;
    b'i', INST, TwoLines, 0;
    b'j', LONG_BINGET, U32, 1;
    b'l', LIST, None, 0;
    b']', EMPTY_LIST, None, 1;
    b'o', OBJ, None, 1;
    b'p', PUT, Line, 0;
    b'q', BINPUT, U8, 1;
    b'r', LONG_BINPUT, U32, 1;
    b's', SETITEM, None, 0;
    b't', TUPLE, None, 0;
    b')', EMPTY_TUPLE, None, 1;
    b'u', SETITEMS, None, 1;
    b'G', BINFLOAT, F64, 1;
    0x80, PROTO, U8, 2;
    0x81, NEWOBJ, None, 2;
    0x82, EXT1, U8, 2;
    0x83, EXT2, U16, 2;
    0x84, EXT4, I32, 2;
    0x85, TUPLE1, None, 2;
    0x86, TUPLE2, None, 2;
    0x87, TUPLE3, None, 2;
    0x88, NEWTRUE, None, 2;
    0x89, NEWFALSE, None, 2;
    0x8a, LONG1, Len1, 2;
    0x8b, LONG4, Len4Signed, 2;
    b'B', BINBYTES, Len4, 3;
    b'C', SHORT_BINBYTES, Len1, 3;
    0x8c, SHORT_BINUNICODE, Len1, 4;
    0x8d, BINUNICODE8, Len8, 4;
    0x8e, BINBYTES8, Len8, 4;
    0x8f, EMPTY_SET, None, 4;
    0x90, ADDITEMS, None, 4;
    0x91, FROZENSET, None, 4;
    0x92, NEWOBJ_EX, None, 4;
    0x93, STACK_GLOBAL, None, 4;
    0x94, MEMOIZE, None, 4;
    0x95, FRAME, U64, 4;
    0x96, BYTEARRAY8, Len8, 5;
    0x97, NEXT_BUFFER, None, 5;
    0x98, READONLY_BUFFER, None, 5;
}

/// Opcode lookup by byte (None: not a pickle opcode).
pub fn lookup(byte: u8) -> Option<&'static Op> {
    static TABLE: std::sync::OnceLock<[Option<&'static Op>; 256]> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        let mut t = [None; 256];
        for op in OPS {
            t[op.code as usize] = Some(op);
        }
        t
    })[byte as usize]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sixty_eight_distinct_opcodes() {
        assert_eq!(OPS.len(), 68);
        let mut seen = std::collections::HashSet::new();
        for op in OPS {
            assert!(seen.insert(op.code), "{}", op.name);
            assert_eq!(lookup(op.code).unwrap().name, op.name);
        }
        assert!(lookup(0xff).is_none());
    }
}
