use cache_core::cached;

#[cached(key = "employee:<id")]
async fn get(id: u64) -> u64 {
    id
}

fn main() {}
