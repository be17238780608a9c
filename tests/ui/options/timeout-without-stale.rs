use cache_core::cached;

#[cached(key = "a:<id>", timeout = "2s")]
async fn get(id: u64) -> Result<u64, String> {
    Ok(id)
}

fn main() {}
