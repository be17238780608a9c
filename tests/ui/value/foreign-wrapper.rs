use cache_core::cached;

/// Stands for `axum::Json<T>`: a wrapper type from another crate.
#[derive(Clone)]
struct Json<T>(T);

#[cached(key = "employee:<id>")]
async fn handler(id: u64) -> Json<u64> {
    Json(id)
}

fn main() {}
