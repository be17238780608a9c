use cache_core::cached;

struct Path<T>(T);

// `org` is bound by the pattern but missing from the key.
#[cached(key = "employee:<id>")]
async fn employee(Path((org, id)): Path<(String, u64)>) -> String {
    format!("{org}/{id}")
}

fn main() {}
