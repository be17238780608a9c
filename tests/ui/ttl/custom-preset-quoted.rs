use cache_core::cached;

#[cached(ttl = "company", key = "company:<id>")]
async fn company(id: u64) -> u64 {
    id
}

fn main() {}
