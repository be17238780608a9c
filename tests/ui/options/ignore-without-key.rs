use cache_core::cached;

#[cached(ignore = [db])]
async fn employee(id: u64, db: u8) -> u64 {
    let _ = db;
    id
}

fn main() {}
