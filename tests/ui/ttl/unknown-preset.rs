use cache_core::cached;

#[cached(ttl = "mediun")]
async fn get(id: u64) -> u64 {
    id
}

fn main() {}
