use cache_core::cached;

#[derive(Clone)]
struct Employee {
    id: u64,
}

#[cached(key = "employee:<id>")]
async fn get(id: u64) -> Employee {
    Employee { id }
}

fn main() {}
