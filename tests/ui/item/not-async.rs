use cache_core::cached;

#[cached(key = "a:<id>")]
fn get(id: u64) -> u64 {
    id
}

fn main() {}
