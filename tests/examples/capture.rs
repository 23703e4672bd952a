//! Captures the pgoutput fixtures under tests/fixtures/ (`.hex` files) from a fresh cluster.
//! Run by scripts/capture-fixtures.sh, which then regenerates the `.expected.jsonl` files.

use anyhow::Result;
use walcast_tests::fixtures;

fn main() -> Result<()> {
    let major = match std::env::args().nth(1) {
        Some(m) => m.parse()?,
        None => fixtures::CAPTURE_MAJOR,
    };
    let dir = fixtures::fixtures_dir();
    std::fs::create_dir_all(&dir)?;
    let mut total = 0;
    for (name, msgs) in fixtures::capture_all(major)? {
        fixtures::write_hex(&dir, &name, &msgs)?;
        let size = std::fs::metadata(dir.join(format!("{name}.hex")))?.len();
        total += size;
        println!("{name}.hex: {} messages, {size} bytes", msgs.len());
    }
    println!("total .hex: {total} bytes");
    Ok(())
}
