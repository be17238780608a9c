use cache_core::cached;

#[cached(key = "n:<id>", ttl_from = |n| *n)]
async fn n(id: u64) -> u64 {
    id
}

fn main() {}
