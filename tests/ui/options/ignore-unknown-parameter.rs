use cache_core::cached;

struct Db;

#[cached(key = "employee:<id>", ignore = [dbb])]
async fn employee(id: u64, db: &Db) -> u64 {
    let _ = db;
    id
}

fn main() {}
