use cache_core::cached;

#[cached(key = "employee:<id>", ignore = [id])]
async fn employee(id: u64) -> u64 {
    id
}

fn main() {}
