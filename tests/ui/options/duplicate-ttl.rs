use cache_core::cached;

#[cached(ttl = "short", key = "a:<id>", ttl = "long")]
async fn get(id: u64) -> u64 {
    id
}

fn main() {}
