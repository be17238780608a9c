use cache_core::cached;

#[cached(ttl = 0)]
async fn get(id: u64) -> u64 {
    id
}

fn main() {}
