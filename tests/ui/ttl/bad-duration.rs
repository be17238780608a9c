use cache_core::cached;

#[cached(ttl = "15x")]
async fn get(id: u64) -> u64 {
    id
}

fn main() {}
