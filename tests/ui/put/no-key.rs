use cache_core::cache_put;

#[cache_put(ttl = "medium")]
async fn update(id: u64) -> u64 {
    id
}

fn main() {}
