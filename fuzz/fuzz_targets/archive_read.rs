//! Any bytes as an archive: reading the manifest, every row and every embedded file ends in a
//! result, never a panic, a hang or memory beyond the caps (libFuzzer's `-rss_limit_mb`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use orgport_core::archive::ArchiveReader;

fuzz_target!(|data: &[u8]| {
    if let Ok(reader) = ArchiveReader::open(data) {
        let _ = reader.check_all();
    }
});
