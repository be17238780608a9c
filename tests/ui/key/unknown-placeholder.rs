use cache_core::cached;

#[cached(key = "employee:<idd>")]
async fn get(id: u64, tenant: &str) -> u64 {
    let _ = tenant;
    id
}

fn main() {}
