//! The CRC of a delete record, from its job id alone.
//!
//! A delete record's checksummed bytes are always the same five (its
//! length and type) followed by the id's eight, so its CRC is the state
//! after those five, fixed, carried through eight bytes: one step of the
//! "slice-by-8" table method, eight table looks-ups in all. crc32fast takes
//! inputs under 16 bytes a byte at a time (64 instructions for a delete's
//! 13, callgrind); this takes some 25. A delete is the one record of a
//! reserve and delete, so this is a tenth of what `-b` adds to them.

use super::{DELETE_RECORD_LEN, FRAME_LEN, TYPE_DELETE};

/// The reflected CRC-32 (IEEE) polynomial.
const POLY: u32 = 0xEDB8_8320;

/// `TABLES[k][b]`: the CRC register's change from byte `b` followed by `k`
/// zero bytes.
static TABLES: [[u32; 256]; 8] = tables();

/// The register after the bytes every delete record starts with: its
/// payload's length, four bytes, and its type.
const AFTER_PREFIX: u32 = {
    let prefix = ((DELETE_RECORD_LEN - FRAME_LEN) as u32).to_le_bytes();
    let bytes = [prefix[0], prefix[1], prefix[2], prefix[3], TYPE_DELETE];
    let table = byte_table();
    let mut register = !0u32;
    let mut i = 0;
    while i < bytes.len() {
        register = table[((register ^ bytes[i] as u32) & 0xff) as usize] ^ (register >> 8);
        i += 1;
    }
    register
};

/// The CRC of a delete record of job `id`: of its bytes from offset 4 on,
/// as [`super::seal`] would put it.
#[inline]
pub fn delete_record_crc(id: u64) -> u32 {
    let x = id ^ u64::from(AFTER_PREFIX);
    let byte = |i: u32| (x >> (8 * i)) as u8 as usize;
    let register = TABLES[7][byte(0)]
        ^ TABLES[6][byte(1)]
        ^ TABLES[5][byte(2)]
        ^ TABLES[4][byte(3)]
        ^ TABLES[3][byte(4)]
        ^ TABLES[2][byte(5)]
        ^ TABLES[1][byte(6)]
        ^ TABLES[0][byte(7)];
    !register
}

const fn byte_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut b = 0;
    while b < 256 {
        let mut register = b as u32;
        let mut bit = 0;
        while bit < 8 {
            register = if register & 1 == 1 { (register >> 1) ^ POLY } else { register >> 1 };
            bit += 1;
        }
        table[b] = register;
        b += 1;
    }
    table
}

const fn tables() -> [[u32; 256]; 8] {
    let mut tables = [[0u32; 256]; 8];
    tables[0] = byte_table();
    let mut k = 1;
    while k < 8 {
        let mut b = 0;
        while b < 256 {
            let previous = tables[k - 1][b];
            tables[k][b] = (previous >> 8) ^ tables[0][(previous & 0xff) as usize];
            b += 1;
        }
        k += 1;
    }
    tables
}

#[cfg(test)]
mod tests {
    use super::super::unsealed_delete_record;
    use super::*;

    fn by_crc32fast(id: u64) -> u32 {
        crc32fast::hash(&unsealed_delete_record(id)[4..])
    }

    #[test]
    fn every_delete_record_gets_the_crc_of_its_bytes() {
        let mut id = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..100_000 {
            id ^= id << 13;
            id ^= id >> 7;
            id ^= id << 17;
            assert_eq!(delete_record_crc(id), by_crc32fast(id), "id {id}");
        }
        for bit in 0..64 {
            for id in [1u64 << bit, !(1u64 << bit), (1u64 << bit) - 1] {
                assert_eq!(delete_record_crc(id), by_crc32fast(id), "id {id:#x}");
            }
        }
        assert_eq!(delete_record_crc(0), by_crc32fast(0));
        assert_eq!(delete_record_crc(u64::MAX), by_crc32fast(u64::MAX));
    }
}
