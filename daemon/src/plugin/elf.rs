//! A structural check of an ELF shared object before it reaches `dlopen`:
//! every header and segment the loader will map must lie inside the file,
//! because the loader maps past the end of a truncated file and faults
//! (SIGBUS) when it touches those pages, taking the daemon with it.

const HEADER_LEN: usize = 64;
const ET_DYN: u16 = 3;

fn u16_at(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([bytes[at], bytes[at + 1]])
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(word)
}

/// Whether the table of `count` entries of `size` bytes at `offset` fits.
fn fits(len: usize, offset: u64, count: u16, size: u16) -> bool {
    let end = u64::from(count)
        .checked_mul(u64::from(size))
        .and_then(|n| n.checked_add(offset));
    end.is_some_and(|end| end <= len as u64)
}

/// `Ok` for a complete 64-bit little-endian ELF shared object.
pub(super) fn check(bytes: &[u8]) -> Result<(), String> {
    let len = bytes.len();
    if len < HEADER_LEN || &bytes[..4] != b"\x7fELF" {
        return Err("not an ELF file".to_owned());
    }
    if bytes[4] != 2 || bytes[5] != 1 {
        return Err("not a 64-bit little-endian ELF file".to_owned());
    }
    if u16_at(bytes, 0x10) != ET_DYN {
        return Err("not an ELF shared object".to_owned());
    }
    let (phoff, phentsize, phnum) = (
        u64_at(bytes, 0x20),
        u16_at(bytes, 0x36),
        u16_at(bytes, 0x38),
    );
    let (shoff, shentsize, shnum) = (
        u64_at(bytes, 0x28),
        u16_at(bytes, 0x3a),
        u16_at(bytes, 0x3c),
    );
    if phnum == 0 || phentsize < 56 || !fits(len, phoff, phnum, phentsize) {
        return Err(format!(
            "truncated ELF file ({len} bytes): program headers out of bounds"
        ));
    }
    if shnum > 0 && !fits(len, shoff, shnum, shentsize) {
        return Err(format!(
            "truncated ELF file ({len} bytes): section headers out of bounds"
        ));
    }
    for index in 0..usize::from(phnum) {
        let header = phoff as usize + index * usize::from(phentsize);
        let (offset, file_size) = (u64_at(bytes, header + 8), u64_at(bytes, header + 0x20));
        if offset
            .checked_add(file_size)
            .is_none_or(|end| end > len as u64)
        {
            return Err(format!(
                "truncated ELF file ({len} bytes): segment {index} out of bounds"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn this_test_binary_or_a_library() -> Vec<u8> {
        // libc is a shared object present wherever the tests run.
        let path = [
            "/lib/x86_64-linux-gnu/libc.so.6",
            "/usr/lib/x86_64-linux-gnu/libc.so.6",
        ]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("libc.so.6");
        std::fs::read(path).unwrap()
    }

    #[test]
    fn a_complete_shared_object_passes_and_any_truncation_fails() {
        let bytes = this_test_binary_or_a_library();
        assert_eq!(check(&bytes), Ok(()));
        for cut in [3000, bytes.len() / 2, bytes.len() - 1] {
            let error = check(&bytes[..cut]).unwrap_err();
            assert!(error.starts_with("truncated ELF file"), "{cut}: {error}");
        }
        assert_eq!(check(b"hello").unwrap_err(), "not an ELF file");
        assert_eq!(check(&[0u8; 100]).unwrap_err(), "not an ELF file");
    }
}
