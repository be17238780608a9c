use cache_core::cache_put;

#[cache_put(key = "employee:<id>", refresh = 0.8)]
async fn update(id: u64) -> u64 {
    id
}

fn main() {}
