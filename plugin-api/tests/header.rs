//! The C header and the Rust definitions must describe the same ABI: a C
//! program built with `cc` prints every size, offset and constant as the
//! header declares them, and each must equal its Rust counterpart.

use std::collections::BTreeMap;
use std::mem::{offset_of, size_of};
use std::path::Path;
use std::process::Command;

use warden_plugin_api::ffi::*;

const PROBE: &str = r#"
#include <stdio.h>
#include "warden_plugin.h"
#define SIZE(t) printf("size %s %zu\n", #t, sizeof(t))
#define OFF(t, f) printf("offset %s.%s %zu\n", #t, #f, offsetof(t, f))
#define CONST(c) printf("const %s %llu\n", #c, (unsigned long long)(c))
int main(void) {
    SIZE(WardenAbiHeader); OFF(WardenAbiHeader, magic); OFF(WardenAbiHeader, abi_major);
    OFF(WardenAbiHeader, abi_minor); OFF(WardenAbiHeader, size); OFF(WardenAbiHeader, reserved);
    SIZE(WardenBuf); OFF(WardenBuf, ptr); OFF(WardenBuf, len);
    SIZE(WardenHost); OFF(WardenHost, size); OFF(WardenHost, abi_major); OFF(WardenHost, abi_minor);
    OFF(WardenHost, ctx); OFF(WardenHost, log);
    SIZE(WardenRunContext); OFF(WardenRunContext, size); OFF(WardenRunContext, abi_major);
    OFF(WardenRunContext, abi_minor); OFF(WardenRunContext, timeout_ms);
    OFF(WardenRunContext, deadline_monotonic_ns);
    SIZE(WardenPluginDescriptor); OFF(WardenPluginDescriptor, header);
    OFF(WardenPluginDescriptor, name); OFF(WardenPluginDescriptor, version);
    OFF(WardenPluginDescriptor, create); OFF(WardenPluginDescriptor, check);
    OFF(WardenPluginDescriptor, free_buf); OFF(WardenPluginDescriptor, destroy);
    OFF(WardenPluginDescriptor, description);
    CONST(WARDEN_ABI_MAGIC); CONST(WARDEN_ABI_MAJOR); CONST(WARDEN_ABI_MINOR);
    CONST(WARDEN_OK); CONST(WARDEN_ERROR);
    CONST(WARDEN_LOG_ERROR); CONST(WARDEN_LOG_WARN); CONST(WARDEN_LOG_INFO);
    CONST(WARDEN_LOG_DEBUG); CONST(WARDEN_LOG_TRACE);
    printf("symbol %s\n", WARDEN_PLUGIN_ENTRY_SYMBOL);
    return 0;
}
"#;

fn c_view() -> BTreeMap<String, String> {
    let include = Path::new(env!("CARGO_MANIFEST_DIR")).join("include");
    let dir = std::env::temp_dir().join(format!("warden-header-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let source = dir.join("probe.c");
    let binary = dir.join("probe");
    std::fs::write(&source, PROBE).unwrap();
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_owned());
    let built = Command::new(cc)
        .args(["-std=c11", "-Wall", "-Werror", "-I"])
        .arg(&include)
        .arg(&source)
        .arg("-o")
        .arg(&binary)
        .output()
        .expect("a C compiler (cc) is needed to check the header");
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let output = Command::new(&binary).output().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let (key, value) = line.rsplit_once(' ').unwrap();
            (key.to_owned(), value.to_owned())
        })
        .collect()
}

macro_rules! rust_layout {
    ($map:ident, $t:ident { $($f:ident),* }) => {
        $map.insert(format!("size {}", stringify!($t)), size_of::<$t>().to_string());
        $(
            $map.insert(
                format!("offset {}.{}", stringify!($t), stringify!($f)),
                offset_of!($t, $f).to_string(),
            );
        )*
    };
}

fn rust_view() -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    rust_layout!(
        map,
        WardenAbiHeader {
            magic,
            abi_major,
            abi_minor,
            size,
            reserved
        }
    );
    rust_layout!(map, WardenBuf { ptr, len });
    rust_layout!(
        map,
        WardenHost {
            size,
            abi_major,
            abi_minor,
            ctx,
            log
        }
    );
    rust_layout!(
        map,
        WardenRunContext {
            size,
            abi_major,
            abi_minor,
            timeout_ms,
            deadline_monotonic_ns
        }
    );
    rust_layout!(
        map,
        WardenPluginDescriptor {
            header,
            name,
            version,
            create,
            check,
            free_buf,
            destroy,
            description
        }
    );
    let constants: [(&str, u64); 10] = [
        ("WARDEN_ABI_MAGIC", WARDEN_ABI_MAGIC.into()),
        ("WARDEN_ABI_MAJOR", WARDEN_ABI_MAJOR.into()),
        ("WARDEN_ABI_MINOR", WARDEN_ABI_MINOR.into()),
        ("WARDEN_OK", WARDEN_OK as u64),
        ("WARDEN_ERROR", WARDEN_ERROR as u64),
        ("WARDEN_LOG_ERROR", WARDEN_LOG_ERROR.into()),
        ("WARDEN_LOG_WARN", WARDEN_LOG_WARN.into()),
        ("WARDEN_LOG_INFO", WARDEN_LOG_INFO.into()),
        ("WARDEN_LOG_DEBUG", WARDEN_LOG_DEBUG.into()),
        ("WARDEN_LOG_TRACE", WARDEN_LOG_TRACE.into()),
    ];
    for (name, value) in constants {
        map.insert(format!("const {name}"), value.to_string());
    }
    map.insert("symbol".to_owned(), WARDEN_PLUGIN_ENTRY_SYMBOL.to_owned());
    map
}

#[test]
fn header_matches_the_rust_definitions() {
    let (c, rust) = (c_view(), rust_view());
    let mismatches: Vec<String> = rust
        .iter()
        .filter(|(key, value)| c.get(*key) != Some(value))
        .map(|(key, value)| format!("{key}: rust {value}, header {:?}", c.get(key)))
        .collect();
    assert!(
        mismatches.is_empty(),
        "header drifted from ffi.rs:\n{}",
        mismatches.join("\n")
    );
    assert_eq!(
        c.len(),
        rust.len(),
        "the probe and the Rust view list different items"
    );
}
