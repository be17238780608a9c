use cache_core::cached;

#[cached(key = "a:<id>", cache_none)]
async fn get(id: u64) -> Result<u64, String> {
    Ok(id)
}

fn main() {}
