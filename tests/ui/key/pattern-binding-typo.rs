use cache_core::cached;

struct Path<T>(T);

#[cached(key = "employee:<idd>")]
async fn employee(Path(id): Path<u64>) -> u64 {
    id
}

fn main() {}
